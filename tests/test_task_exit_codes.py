"""Each task's exit status is the code its operation returns: a failed standalone migration is not exit 0."""

from __future__ import annotations

from typing import Any

import pytest
from invoke.context import Context
from invoke.exceptions import Exit

from pipeline import tasks
from pipeline.errors import ExitCode


@pytest.mark.parametrize(
    ("task", "module", "function", "flags"),
    [
        (tasks.migrate, "pipeline.operate", "migrate", {}),
        (tasks.rollback, "pipeline.operate", "rollback", {}),
        (tasks.health, "pipeline.operate", "health", {}),
        (tasks.restore, "pipeline.backupops", "restore", {"from_": "20261201T041500Z-2.0.0-0003.sql.gz"}),
        (tasks.backup, "pipeline.backupops", "backup", {}),
    ],
    ids=lambda v: getattr(v, "name", None) or "",
)
@pytest.mark.parametrize("code", [ExitCode.ROLLED_BACK, ExitCode.ROLLBACK_FAILED])
def test_the_operations_code_is_the_tasks_exit_status(
    monkeypatch: pytest.MonkeyPatch,
    task: Any,
    module: str,
    function: str,
    flags: dict[str, str],
    code: ExitCode,
) -> None:
    monkeypatch.setattr(tasks, "_config", lambda c: object())
    monkeypatch.setattr(f"{module}.{function}", lambda *args, **kwargs: code)
    with pytest.raises(Exit) as raised:
        task(Context(), env="production", **flags)
    assert raised.value.code == int(code)


def test_a_successful_operation_exits_0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "_config", lambda c: object())
    monkeypatch.setattr("pipeline.operate.migrate", lambda *args, **kwargs: ExitCode.OK)
    assert tasks.migrate(Context(), env="production") is None
