"""Backups on a Helm target: not supported yet, said plainly wherever one is asked for."""

from __future__ import annotations

from pipeline.backups import BackupFile
from pipeline.engine.cancel import Call
from pipeline.errors import InputError

NOT_CONFIGURED = "database backups are not supported for Helm environments yet (take them in the cluster)"


class HelmBackups:
    """The backup operations of ``HelmTarget``: no unit keeps backups; asking for one is an input error."""

    def backup_units(self) -> list[str]:
        """None: a Helm environment has no ``backup`` key."""
        return []

    def backup(self, unit: str, name: str, version: str, call: Call) -> BackupFile:
        """Refused."""
        raise InputError(NOT_CONFIGURED)

    def backups(self, unit: str, call: Call) -> list[BackupFile]:
        """Refused."""
        raise InputError(NOT_CONFIGURED)

    def restore_backup(self, unit: str, name: str, version: str, call: Call) -> None:
        """Refused."""
        raise InputError(NOT_CONFIGURED)

    def describe_backup(self, unit: str, operation: str, name: str, version: str) -> list[str]:
        """Nothing to describe."""
        return []
