"""The deploy engine: stages, strategies, deadlines, cancellation, rollback and records for any target."""
