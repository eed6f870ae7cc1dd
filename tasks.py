from pipeline.tasks import ns  # noqa: F401
