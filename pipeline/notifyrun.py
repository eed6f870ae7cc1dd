"""The notification of a finished deploy: its report, who shipped which commit, and the release notes.

Reading the notes never fails a deploy: the run's outcome is settled before anyone is told.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.executor import Executor
from pipeline.notify import Notification, Notifier, send_all
from pipeline.releasenotes import ReleaseNotes, read_notes, release_commit
from pipeline.secrets import Redactor

if TYPE_CHECKING:
    from pipeline.config import PipelineConfig
    from pipeline.engine.values import Release
    from pipeline.runreport import RunReport


def tell(
    notifiers: Sequence[Notifier],
    executor: Executor,
    root: Path,
    config: PipelineConfig,
    release: Release,
    report: RunReport,
    *,
    tagged: bool,
    who: str,
    run_url: str,
    redactor: Redactor,
    sleep: Callable[[float], None] | None = None,
) -> list[tuple[str, str | None]]:
    """Build the deploy's notification and send it: ``(channel, error or None)`` each; never raises."""
    try:
        notification = deploy_notification(
            executor, root, config, release, report, tagged=tagged, who=who, run_url=run_url
        )
    except Exception as exc:  # a bug of ours: the deploy's outcome stands, the channels say why
        reason = redactor.redact(f"the notification could not be built: {type(exc).__name__}: {exc}")
        return [(n.name, reason) for n in notifiers]
    return send_all(notifiers, notification, redactor, sleep)


def deploy_notification(
    executor: Executor,
    root: Path,
    config: PipelineConfig,
    release: Release,
    report: RunReport,
    *,
    tagged: bool,
    who: str,
    run_url: str,
) -> Notification:
    """What to tell about a deploy run; ``tagged``: the version came from ``--version`` (a tag)."""
    commit = release.commit or _commit(executor, root, config, release.version, tagged)
    notes = None
    if report.outcome == "deployed":
        notes = _notes(executor, root, commit, release.version, config.checklist.changelog)
    return Notification(
        environment=report.environment, version=release.version, outcome=report.outcome,
        summary=report.summary(), details=tuple(report.details()), run_url=run_url,
        report=report.to_data(), commit=commit, who=who, notes=notes, emergency=bool(report.emergency),
    )  # fmt: skip


def _commit(executor: Executor, root: Path, config: PipelineConfig, version: str, tagged: bool) -> str:
    """The release's commit when the release does not carry it (image source): its tag, or HEAD."""
    ref = f"{config.checklist.tag_prefix}{version}" if tagged else "HEAD"
    try:
        return release_commit(executor, root, ref)
    except Exception:  # a missing git, a timeout: the notification goes out without the commit
        return ""


def _notes(executor: Executor, root: Path, commit: str, version: str, path: str) -> ReleaseNotes:
    if not commit:
        return ReleaseNotes(version, missing="the release's commit is unknown")
    try:
        return read_notes(executor, root, commit, version, path)
    except Exception as exc:  # the deploy is done; the notes are a courtesy
        return ReleaseNotes(version, missing=f"{path} could not be read ({type(exc).__name__})")
