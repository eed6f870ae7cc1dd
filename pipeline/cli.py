"""The ``pipeline`` console script: the same tasks, for repositories without a tasks.py."""

from __future__ import annotations

import os

from invoke.config import Config
from invoke.program import Program

from pipeline.tasks import ns


class _ProjectConfig(Config):
    """Reads invoke.yaml from the current directory, as a tasks.py beside it would."""

    prefix = "invoke"

    def load_project(self, merge: bool = True) -> None:
        """Look for the project's invoke.yaml in the current directory."""
        self.set_project_location(os.getcwd())
        super().load_project(merge=merge)


def main() -> None:
    """Run the pipeline tasks as ``pipeline preflight``, ``pipeline release`` and so on."""
    version = _version()
    Program(namespace=ns, version=version, name="pipeline", config_class=_ProjectConfig).run()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("invoke-pipeline")
    except PackageNotFoundError:
        return "unknown"
