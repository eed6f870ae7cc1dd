"""Emergency deploys: the runbooks' "direct push, document after", with the pipeline's care.

``invoke deploy --emergency --reason TEXT`` runs every checklist item and waives the failures of those a
hotfix cannot meet yet (its CHANGELOG entry, its commit messages, its branch, lint, tests); what makes
the deploy safe or makes it a release is never waived (VERSION, a clean tree, one migration head), and
the safety stages (migrate, health, rollback) always run. The run is marked in the journal, the report
and the notification. A deployed emergency leaves an annotated tag ``emergency/ENV/VERSION`` at its
commit, pushed to the release remote: a record that reaches every clone, so the next ``invoke preflight``
anywhere lists the emergencies whose version has no CHANGELOG section yet (``check_emergencies``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import semver

from pipeline.changelog import parse_changelog
from pipeline.checklist import CheckResult, Facts
from pipeline.config import ChecklistConfig, PipelineConfig
from pipeline.errors import InputError
from pipeline.executor import Command, Executor, Result
from pipeline.files import Location

if TYPE_CHECKING:
    from pipeline.engine.core import Context
    from pipeline.engine.values import Release
    from pipeline.orchestrate import DeployRequest
    from pipeline.runreport import RunReport

REASON_LIMIT = 200  # characters of --reason: a line a notification title and a tag subject can hold
# Items a hotfix cannot meet yet: what documents, names or reviews a change. The rest (VERSION, a clean
# tree, one migration head, and any item not named here) decide what ships and whether it can migrate.
WAIVABLE = ("changelog", "commits", "branch", "lint", "test", "emergency")
SKIPPABLE = ("lint", "test")  # --skip with --emergency: slow local stages, never what is checked remotely
WAIVED = "waived (emergency): "  # how a waived failure's reason starts
TAGS = "emergency"  # the tag namespace: emergency/ENV/VERSION
TAG_SECONDS = 10.0  # deadline of each local git command
PUSH_SECONDS = 30.0  # deadline of the push: a hung remote never holds the report and the notification
_WHY_NOT_SKIPPED = {
    "preflight": "an emergency runs the checklist and waives what a hotfix cannot meet yet",
    "migrate": "migrate, health and rollback always run",
    "health": "migrate, health and rollback always run",
    "notify": "the team is told of every emergency deploy",
}


def reason_of(emergency: bool, reason: str | None) -> str:
    """The reason of an emergency deploy ("" for a normal one); a missing, stray or unprintable one
    is an input error (exit 2), before anything is read or touched."""
    if not emergency:
        if reason is not None:
            raise InputError("--reason: only with --emergency (it is the reason of an emergency deploy)")
        return ""
    text = (reason or "").strip()
    if not text:
        raise InputError('--emergency needs --reason "TEXT": why this deploy cannot wait for the checklist')
    if len(text) > REASON_LIMIT:
        raise InputError(f"--reason: {len(text)} characters; at most {REASON_LIMIT} (one line)")
    if not text.isprintable():
        raise InputError("--reason: one line of printable text (no newline, tab or control character)")
    return text


def check_skip(emergency: str, skip: Sequence[str]) -> None:
    """With ``--emergency``, ``--skip`` may name only lint and test (they are waivable anyway)."""
    for stage in skip if emergency else ():
        if stage not in SKIPPABLE:
            why = _WHY_NOT_SKIPPED.get(stage, "it is not waivable")
            raise InputError(f"--skip {stage}: not with --emergency ({why})")


def waive(results: Sequence[CheckResult]) -> list[CheckResult]:
    """The results with each waivable failure turned into a ``skip`` that says it was waived."""
    return [
        replace(r, status="skip", reason=WAIVED + r.reason) if r.failed and r.name in WAIVABLE else r
        for r in results
    ]


def waived(results: Iterable[CheckResult]) -> list[CheckResult]:
    """The failures an emergency waived."""
    return [r for r in results if r.status == "skip" and r.reason.startswith(WAIVED)]


def describe_waived(results: Iterable[CheckResult]) -> list[str]:
    """The lines an emergency deploy prints before it changes anything: what it lets through, and why."""
    lines = []
    for r in waived(results):
        lines.append(f"{WAIVED}{r.name}: {r.reason.removeprefix(WAIVED)}")
        lines += [f"    {d}" for d in r.details[:5]]
    return lines


def announce(
    request: DeployRequest, version: str, checked: Sequence[CheckResult], say: Callable[[str], None]
) -> None:
    """Before anything changes: that this is an emergency deploy, what it lets through and, in a dry
    run, the tag it would leave."""
    say(f"EMERGENCY deploy: {request.emergency}")
    for line in describe_waived(checked) or [f"{WAIVED}nothing (every item passed)"]:
        say(line)
    if request.dry_run:
        say(f"emergency: once deployed, tag {tag_name(request.environment, version)} at its commit")


def mark(
    executor: Executor,
    root: Path,
    config: PipelineConfig,
    request: DeployRequest,
    release: Release,
    report: RunReport,
    checked: Sequence[CheckResult],
    context: Context,
    redact: Callable[[str], str] = str,
) -> None:
    """The report says it was an emergency and what it waived; a deployed emergency leaves its tag.

    The outcome is settled by now, so whatever goes wrong with the tag (even a bug of ours) becomes a
    failed ``emergency tag`` stage in the report: never another exit code, never a lost notification.
    """
    from pipeline.runreport import StageResult

    report.emergency, report.waived = request.emergency, [r.name for r in waived(checked)]
    if report.outcome != "deployed":
        return
    started = time.monotonic()
    try:
        done = _tag_release(executor, root, config, request, release, context, redact)
    except Exception as exc:  # the deploy is done: a broken tag must not hide it
        name = tag_name(request.environment, release.version)
        done = Recorded(name, False, f"{name} was not made: {type(exc).__name__}: {exc}", 0.0)
    seconds = round(time.monotonic() - started, 3)
    report.stages.append(StageResult("emergency tag", "ok" if done.ok else "failed", seconds, done.detail))


def _tag_release(
    executor: Executor,
    root: Path,
    config: PipelineConfig,
    request: DeployRequest,
    release: Release,
    context: Context,
    redact: Callable[[str], str],
) -> Recorded:
    """Tag the deployed commit (a release's commit, else what ``--version`` or VERSION at HEAD named)."""
    from pipeline import interrupts

    name = tag_name(request.environment, release.version)
    message = tag_message(
        request.environment, release.version, request.emergency, context.who, context.now(), context.run_url
    )
    tagged = f"{config.checklist.tag_prefix}{release.version}" if request.version else "HEAD"
    stop = lambda: bool(interrupts.deferred())  # noqa: E731 - a signal after the deploy ends the push
    return record_tag(
        executor, root, config.release.remote, name, release.commit or tagged, redact(message), stop
    )


# -- the tag that records an emergency where developers see it --------------------------------------


@dataclass(frozen=True)
class EmergencyTag:
    """A tag ``emergency/ENV/VERSION`` and the commit it points at."""

    name: str
    environment: str
    version: str
    commit: str


def tag_name(environment: str, version: str) -> str:
    """``emergency/production/1.4.1`` (an environment's name and a semver are valid in a ref)."""
    return f"{TAGS}/{environment}/{version}"


def tag_message(environment: str, version: str, reason: str, who: str, at: str, run_url: str) -> str:
    """The annotated tag's message: a subject, then the reason, who, when and the run as trailers."""
    lines = [f"Emergency deploy of {version} to {environment}", "", f"Reason: {reason}"]
    lines += [f"Deployed-by: {who}", f"Deployed-at: {at}"]
    lines += [f"Run: {run_url}"] if run_url else []
    return "\n".join(lines) + "\n"


def parse_tags(tags: Iterable[tuple[str, str]]) -> list[EmergencyTag]:
    """The ``(name, commit)`` pairs that are emergency tags; a foreign tag under emergency/ is ignored."""
    found = []
    for name, commit in tags:
        parts = name.split("/")
        if len(parts) != 3 or parts[0] != TAGS or not parts[1]:
            continue
        if parts[2].isascii() and semver.Version.is_valid(parts[2]):
            found.append(EmergencyTag(name, parts[1], parts[2], commit))
    return found


def tag_commands(root: Path, name: str, ref: str, message: str) -> tuple[Command, Command]:
    """Where the tag points now (if it exists), and the command that makes it at ``ref``."""
    where = Command(("git", "rev-parse", "-q", "--verify", f"refs/tags/{name}^{{commit}}"), str(root))
    make = Command(("git", "tag", "-a", "-F", "-", name, f"{ref}^{{commit}}"), str(root), stdin=message)
    return replace(where, timeout=TAG_SECONDS), replace(make, timeout=TAG_SECONDS)


def push_command(root: Path, remote: str, name: str, stop: Callable[[], bool]) -> Command:
    """The push of one tag: no prompt (a CI job has no one to answer), a deadline, stopped by a signal."""
    return Command(
        ("git", "push", "--quiet", remote, f"refs/tags/{name}"), str(root),
        env={"GIT_TERMINAL_PROMPT": "0"}, timeout=PUSH_SECONDS, shield=True, interrupt=stop,
    )  # fmt: skip


# Who git names as the tagger when the runner has no identity configured (a fresh CI runner).
_FALLBACK_IDENTITY = {
    "GIT_COMMITTER_NAME": "invoke-pipeline",
    "GIT_COMMITTER_EMAIL": "invoke-pipeline@localhost",
}


@dataclass(frozen=True)
class Recorded:
    """What became of the tag: its name, whether all went well, and what to say."""

    name: str
    ok: bool
    detail: str
    seconds: float


def record_tag(
    executor: Executor,
    root: Path,
    remote: str,
    name: str,
    ref: str,
    message: str,
    stop: Callable[[], bool] = lambda: False,
) -> Recorded:
    """Make the tag at ``ref`` (kept as is when it is already there) and push it to ``remote`` when the
    repository has that remote. Never raises for git: a failure is the Recorded's detail."""
    started = time.monotonic()
    where, make = tag_commands(root, name, ref, message)
    wanted, found = executor.run_all([replace(where, argv=(*where.argv[:-1], f"{ref}^{{commit}}")), where])
    if found.ok and found.stdout.strip() != wanted.stdout.strip():
        detail = f"{name} already names {found.stdout.strip()[:10]}; left as it is"
        return Recorded(name, False, detail, time.monotonic() - started)
    if not found.ok:
        made = executor.run(make)
        if not made.ok and _no_identity(made):
            made = executor.run(replace(make, env=_FALLBACK_IDENTITY))
        if not made.ok:
            detail = f"{name} was not made: {_said(made)}"
            return Recorded(name, False, detail, time.monotonic() - started)
    if not executor.run(Command(("git", "remote", "get-url", remote), str(root), timeout=TAG_SECONDS)).ok:
        detail = f"{name} made here; no remote `{remote}` to push it to: push it for others to see it"
        return Recorded(name, True, detail, time.monotonic() - started)
    pushed = executor.run(push_command(root, remote, name, stop))
    seconds = time.monotonic() - started
    if not pushed.ok:
        detail = f"{name} made here, not pushed to {remote}: {_said(pushed)}; `git push {remote} {name}`"
        return Recorded(name, False, detail, seconds)
    return Recorded(name, True, f"{name} pushed to {remote}", seconds)


def _no_identity(result: Result) -> bool:
    text = result.stderr.lower()
    return "tell me who you are" in text or "auto-detect" in text or "empty ident" in text


def _said(result: Result) -> str:
    if result.interrupted:
        return "stopped by a signal"
    if result.returncode == 124:
        return "no answer within the deadline"
    lines = result.stderr.strip().splitlines()
    return lines[-1][:300] if lines else f"git exited {result.returncode}"


# -- preflight: emergencies that are not documented yet -----------------------------------------


def check_emergencies(executor: Executor, facts: Facts, config: ChecklistConfig) -> CheckResult:
    """Every emergency deploy (an ``emergency/*`` tag) has a section for its version in CHANGELOG.md.

    ``[Unreleased]`` does not count: an emergency version has served in production, so it is a release
    and gets its own section, as ``invoke release`` writes it. An undocumented emergency fails the item
    (exit 3), like a release without its section: "document after" that only warns is never done, the
    fix is one commit, and a second emergency waives this item. The tags are already in ``facts``; git
    is asked for their reasons only when one is not documented.
    """
    name, path = "emergency", config.changelog
    tags = parse_tags(facts.state.tags)
    if not tags:
        return CheckResult(name, "skip", f"no emergency deploy to document (no {TAGS}/* tag)")
    log = parse_changelog(facts.changelog_text or "")
    missing = [t for t in tags if log.section(t.version) is None]
    if not missing:
        return CheckResult(name, "pass", f"{len(tags)} emergency deploy(s), each with its section in {path}")
    reasons = read_reasons(executor, facts.root)
    details = tuple(
        f"{t.name} ({t.commit[:10]}): {reasons.get(t.name) or 'no reason recorded'}" for t in missing
    )
    versions = ", ".join(sorted({t.version for t in missing}))
    reason = (
        f"{len(missing)} emergency deploy(s) not documented in {path}: add a section "
        f"`## [VERSION] - YYYY-MM-DD` for {versions}"
    )
    line = log.unreleased.line if log.unreleased else 1
    return CheckResult(name, "fail", reason, details, (Location(path, line, reason),))


def read_reasons(executor: Executor, root: Path) -> dict[str, str]:
    """Each emergency tag's reason, from its message (one git call for all of them)."""
    form = "--format=%(refname:strip=2)%1f%(contents)%1e"
    found = executor.run(Command(("git", "for-each-ref", form, f"refs/tags/{TAGS}/"), str(root)))
    reasons = {}
    for record in found.stdout.split("\x1e") if found.ok else ():
        tag, _, contents = record.strip("\n").partition("\x1f")
        said = [ln[len("Reason: ") :] for ln in contents.splitlines() if ln.startswith("Reason: ")]
        reasons[tag] = said[0][:REASON_LIMIT] if said else ""
    return reasons
