"""The ``pipeline`` console script: the same tasks, for repositories without a tasks.py."""

from __future__ import annotations

import os

from invoke.program import Program

from pipeline.tasks import ns


class _Program(Program):
    """Reads invoke.yaml from the current directory, as a tasks.py beside it would."""

    def parse_collection(self) -> None:
        """Use the bundled tasks, with the current directory as the project."""
        super().parse_collection()
        self.config.set_project_location(os.getcwd())
        self.config.load_project()


def main() -> None:
    """Run the pipeline tasks as ``pipeline preflight``, ``pipeline release`` and so on."""
    _Program(namespace=ns, version=_version(), name="pipeline").run()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("invoke-pipeline")
    except PackageNotFoundError:
        return "unknown"
