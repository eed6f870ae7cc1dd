"""Deploy targets: how each operation of the engine is done on a kind of unit."""
