"""The pre-deployment checklist: gather the facts once, then judge each item as a plain function."""

from __future__ import annotations

import fnmatch
import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import semver

from pipeline import git, migration_heads
from pipeline.changelog import Changelog, parse_changelog
from pipeline.commits import Commit, Verdict, judge
from pipeline.config import ChecklistConfig, PipelineConfig
from pipeline.errors import InputError, PipelineError
from pipeline.executor import Command, Executor
from pipeline.files import KIB, MIB, Location, UnreadableFile, read_optional
from pipeline.migration_heads import Migrations
from pipeline.versions import ReleaseTag, parse_version, release_tags

VERSION_LIMIT = 4 * KIB
CHANGELOG_LIMIT = 16 * MIB

Status = Literal["pass", "fail", "skip"]


@dataclass(frozen=True)
class CheckResult:
    """One checklist item: its verdict, a reason a person can act on, and the particulars."""

    name: str
    status: Status
    reason: str
    details: tuple[str, ...] = ()
    locations: tuple[Location, ...] = ()

    @property
    def failed(self) -> bool:
        """Whether this item blocks the release."""
        return self.status == "fail"


@dataclass(frozen=True)
class Facts:
    """Everything the checks judge, read from git and the files in one pass."""

    root: Path
    state: git.RepoState
    version_text: str | None
    changelog_text: str | None
    tags: tuple[ReleaseTag, ...]
    commits: tuple[Commit, ...]
    since: str | None
    ancestor_of: git.Branch | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    reachable: tuple[ReleaseTag, ...] = ()
    version_problem: str | None = None
    changelog_problem: str | None = None
    virtualenvs: tuple[str, ...] = ()
    migrations: Migrations | None = None

    @property
    def last_tag(self) -> ReleaseTag | None:
        """The last release: the highest release tag in HEAD's history, if any.

        A higher tag elsewhere (a beta channel ahead of the stable branch) is not this branch's release.
        """
        return self.reachable[0] if self.reachable else None


def gather(executor: Executor, cwd: Path, config: ChecklistConfig, migrations: bool = True) -> Facts:
    """Read the repository state, VERSION, CHANGELOG.md and the commits since the last release."""
    state = git.read_state(executor, cwd, config.tag_prefix)
    tags = tuple(release_tags(state.tags, config.tag_prefix))
    version_text, version_problem = _read(cwd, config.version_file, VERSION_LIMIT)
    reachable = _reachable(executor, state, tags, version_text)
    if state.shallow and not reachable:
        raise InputError(
            f"{state.root} is a shallow clone whose history reaches no release tag "
            f"({config.tag_prefix}X.Y.Z): the last release cannot be known. Fetch history and tags "
            "(actions/checkout with `fetch-depth: 0`, or `git fetch --unshallow --tags`)"
        )
    since = reachable[0].name if reachable else (config.commits_from or None)
    commits: list[Commit] = []
    if state.head and config.convention != "none":
        try:
            commits = git.read_whole_range(executor, state, since)
        except InputError:
            if since and since == config.commits_from:
                raise InputError(
                    f"pipeline.checklist.commits_from: {since!r} is not a ref in this repository"
                ) from None
            raise
    changelog_text, changelog_problem = _read(cwd, config.changelog, CHANGELOG_LIMIT)
    return Facts(
        root=state.root,
        state=state,
        version_text=version_text,
        changelog_text=changelog_text,
        tags=tags,
        commits=tuple(commits),
        since=since,
        ancestor_of=_allowed_ancestor(executor, state, config.branches),
        env={k: v for k, v in os.environ.items() if k.startswith("GITHUB_")},
        reachable=reachable,
        version_problem=version_problem,
        changelog_problem=changelog_problem,
        virtualenvs=_virtualenvs(state),
        migrations=migration_heads.find(cwd) if migrations else None,
    )


def _reachable(
    executor: Executor, state: git.RepoState, tags: tuple[ReleaseTag, ...], version_text: str | None
) -> tuple[ReleaseTag, ...]:
    """The release tags in HEAD's history that the checks judge by, highest first.

    The tag nearest HEAD (``git describe``, a short walk) and whichever of the tags ranked above it, or
    named like VERSION, HEAD also holds (a beta channel ahead of this branch is not): not every tag,
    which would walk the whole history.
    """
    nearest = next((t for t in tags if t.name == state.nearest), None)
    above = list(tags[: tags.index(nearest)] if nearest else tags)
    version = _loose_version(version_text)
    same = [t for t in tags if t.version == version and t not in above and t != nearest]
    found = git.reachable_tags(executor, state, [t.name for t in above + same])
    return tuple(t for t in tags if t.name in found or t == nearest)


def _loose_version(text: str | None) -> object:
    try:
        return parse_version(text or "", "VERSION")
    except PipelineError:
        return None


def _read(cwd: Path, name: str, limit: int) -> tuple[str | None, str | None]:
    """The file's text (None when missing), or why it cannot be read: that item's failure."""
    try:
        return read_optional(cwd / name, name, limit, root=cwd), None
    except UnreadableFile as exc:
        return None, str(exc)


def _virtualenvs(state: git.RepoState) -> tuple[str, ...]:
    """Untracked folders that are Python virtual environments (they belong in .gitignore)."""
    folders = [p for p in state.untracked[:50] if p.endswith("/")]
    return tuple(p for p in folders if (state.root / p / "pyvenv.cfg").is_file())


def _allowed_ancestor(executor: Executor, state: git.RepoState, patterns: Sequence[str]) -> git.Branch | None:
    """For a detached HEAD only: an allowed branch whose history holds it (one git call each)."""
    if not state.detached or not state.head:
        return None
    candidates = [b for b in state.branches if _allowed(b.name, patterns)]
    tip = next((b for b in candidates if b.commit == state.head), None)
    if tip is not None:
        return tip
    results = executor.run_all(git.is_ancestor(state.root, state.head, str(b)) for b in candidates)
    return next((b for b, r in zip(candidates, results, strict=True) if r.ok), None)


def _allowed(branch: str, patterns: Sequence[str]) -> bool:
    """Whether a branch name matches one of the allowed patterns (``release/*`` globs too)."""
    return any(fnmatch.fnmatchcase(branch, p) for p in patterns)


def check_version(facts: Facts, config: ChecklistConfig) -> CheckResult:
    """VERSION is a semantic version above the last release tag (or equal, at that tag)."""
    name = "version"
    try:
        version = _version(facts, config)
    except PipelineError as exc:
        return CheckResult(name, "fail", str(exc), locations=(Location(config.version_file, 1, str(exc)),))
    last = facts.last_tag
    elsewhere = next(
        (t for t in facts.tags if t.version == version and t not in facts.reachable),
        None,
    )
    if elsewhere is not None:
        reason = (
            f"{version} is already released as {elsewhere.name} on {elsewhere.commit[:10]}, "
            "outside this branch's history; VERSION must be a new version"
        )
        return CheckResult(
            name,
            "fail",
            f"{config.version_file}: {reason}",
            locations=(Location(config.version_file, 1, reason),),
        )
    if last is None:
        return CheckResult(name, "pass", f"{version} (no release tag {config.tag_prefix}X.Y.Z yet)")
    if version > last.version:
        return CheckResult(name, "pass", f"{version} is above the last release {last.name}")
    if version == last.version and facts.state.head == last.commit:
        return CheckResult(name, "pass", f"{version} is the release tagged {last.name} at HEAD")
    if version == last.version:
        reason = f"{version} is already released as {last.name}; bump VERSION (invoke release --bump ...)"
    else:
        reason = f"{version} is below the last release {last.name}; VERSION must go up"
    return CheckResult(
        name,
        "fail",
        f"{config.version_file}: {reason}",
        locations=(Location(config.version_file, 1, reason),),
    )


def _version(facts: Facts, config: ChecklistConfig) -> semver.Version:
    if facts.version_problem is not None:
        raise InputError(facts.version_problem)
    if facts.version_text is None:
        raise InputError(f"{config.version_file}: file not found at {facts.root}")
    return parse_version(facts.version_text, config.version_file)


def check_changelog(facts: Facts, config: ChecklistConfig) -> CheckResult:
    """CHANGELOG.md parses, and has a dated section for VERSION (or, if allowed, [Unreleased])."""
    name, path = "changelog", config.changelog
    if facts.changelog_problem is not None:
        return CheckResult(
            name, "fail", facts.changelog_problem, locations=(Location(path, 1, facts.changelog_problem),)
        )
    if facts.changelog_text is None:
        return CheckResult(name, "fail", f"{path}: file not found; start one from keepachangelog.com")
    log = parse_changelog(facts.changelog_text)
    if log.problems:
        locations = tuple(Location(path, p.line or 1, p.message) for p in log.problems)
        details = tuple(
            f"{path}:{p.line}: {p.message}" if p.line else f"{path}: {p.message}" for p in log.problems
        )
        return CheckResult(name, "fail", f"{path}: {len(details)} problem(s)", details, locations)
    try:
        version = _version(facts, config)
    except PipelineError:
        return CheckResult(name, "skip", f"{path} parses; no valid VERSION to look for")
    return _changelog_entry(log, str(version), facts, config)


def _changelog_entry(log: Changelog, version: str, facts: Facts, config: ChecklistConfig) -> CheckResult:
    name, path = "changelog", config.changelog
    section = log.section(version)
    if section is not None:
        return CheckResult(name, "pass", f"{path} has [{version}] dated {section.date}")
    released = any(str(t.version) == version for t in facts.tags)
    unreleased = log.unreleased
    if config.changelog_unreleased_ok and not released and unreleased and unreleased.has_content:
        return CheckResult(name, "pass", f"{path} [Unreleased] describes the coming {version}")
    wanted = f"`## [{version}] - YYYY-MM-DD`"
    if config.changelog_unreleased_ok:
        wanted += " or a non-empty [Unreleased] section"
    reason = f"{path} has no section for {version}: add {wanted} (invoke release writes it)"
    line = unreleased.line if unreleased else 1
    return CheckResult(name, "fail", reason, locations=(Location(path, line, reason),))


def check_commits(facts: Facts, config: ChecklistConfig) -> CheckResult:
    """Every commit since the last release follows Conventional Commits."""
    name = "commits"
    if config.convention == "none":
        return CheckResult(name, "skip", "pipeline.checklist.convention is `none`")
    verdicts = commit_verdicts(facts.commits, config)
    bad = [v for v in verdicts if not v.ok]
    scope = f"since {facts.since}" if facts.since else "in the whole history"
    if not bad:
        return CheckResult(name, "pass", f"{len(verdicts)} commit(s) {scope} follow Conventional Commits")
    details = tuple(f"{v.commit.short} {v.commit.subject[:72]!r}: {v.problem}" for v in bad)
    reason = f"{len(bad)} of {len(verdicts)} commit(s) {scope} break Conventional Commits"
    return CheckResult(name, "fail", reason, details)


def commit_verdicts(commits: Sequence[Commit], config: ChecklistConfig) -> list[Verdict]:
    """Judge each commit with the configured types and allowances."""
    return [judge(c, config.types, config.allow_merge_commits, config.allow_revert_commits) for c in commits]


def check_clean(facts: Facts, config: ChecklistConfig) -> CheckResult:
    """The working tree has no uncommitted or untracked changes."""
    if not config.require_clean:
        return CheckResult("clean", "skip", "pipeline.checklist.require_clean is off")
    changes = facts.state.changes
    if not changes:
        return CheckResult("clean", "pass", "the working tree is clean")
    shown = tuple(changes[:20]) + ((f"... and {len(changes) - 20} more",) if len(changes) > 20 else ())
    reason = f"{len(changes)} uncommitted or untracked path(s): commit or stash them"
    if facts.virtualenvs:
        reason += f"; {', '.join(facts.virtualenvs)} is a virtualenv: add it to .gitignore"
    elif facts.state.untracked:
        reason += "; add untracked paths that do not belong in the repository to .gitignore"
    return CheckResult("clean", "fail", reason, shown)


def check_branch(facts: Facts, config: ChecklistConfig) -> CheckResult:
    """HEAD is on an allowed branch, or detached on (or inside) one, as in CI."""
    allowed = ", ".join(config.branches)
    state = facts.state
    if state.branch is not None:
        if _allowed(state.branch, config.branches):
            return CheckResult("branch", "pass", f"on {state.branch}")
        return CheckResult("branch", "fail", f"on {state.branch}, which is not allowed (allowed: {allowed})")
    on = facts.ancestor_of
    if on is not None and on.commit == state.head:
        return CheckResult("branch", "pass", f"detached HEAD at the tip of {on}")
    if on is not None:
        return CheckResult("branch", "pass", f"detached HEAD on the history of {on}")
    ref = facts.env.get("GITHUB_REF_NAME", "")
    if (
        facts.env.get("GITHUB_REF_TYPE") == "branch"
        and _allowed(ref, config.branches)
        and (facts.env.get("GITHUB_SHA") == state.head)
    ):
        return CheckResult("branch", "pass", f"detached HEAD at GITHUB_SHA of branch {ref}")
    return CheckResult(
        "branch",
        "fail",
        f"detached HEAD is on no allowed branch (allowed: {allowed}); fetch it or check it out",
    )


def check_migrations(facts: Facts, config: ChecklistConfig) -> CheckResult:
    """The alembic migrations have a single head (skipped when the project has none)."""
    name, found = "migrations", facts.migrations
    if found is None:
        return CheckResult(
            name, "skip", "no migrations (no alembic.ini, alembic/versions or migrations/versions)"
        )
    where = ", ".join(found.where)
    if found.problems:
        locations = found.problems
        details = tuple(p.message for p in found.problems[:20])
        return CheckResult(name, "fail", f"{where}: the heads cannot be known", details, locations)
    if not found.revisions:
        return CheckResult(name, "pass", f"{where} holds no revisions yet")
    heads = found.heads()
    if len(heads) == 1:
        return CheckResult(
            name, "pass", f"one head, {heads[0].id} ({len(found.revisions)} revision(s) in {where})"
        )
    if not heads:
        reason = f"{where}: no head: the down_revision links form a cycle"
        return CheckResult(name, "fail", reason)
    named = ", ".join(f"{h.id} ({h.file})" for h in heads)
    reason = f"{len(heads)} heads in {where}: {named}; merge them (`alembic merge heads`)"
    locations = tuple(
        Location(h.file, h.line, f"revision {h.id} is one of {len(heads)} heads") for h in heads
    )
    return CheckResult(name, "fail", reason, locations=locations)


def run_stage_commands(
    executor: Executor,
    root: Path,
    stage: str,
    commands: Sequence[str],
    capture: bool = True,
    redact: Callable[[str], str] = str,
    echo: Callable[[str, bool], None] | None = None,
) -> CheckResult:
    """Run the configured lint or test commands, in order, stopping at the first failure; what a
    failed one printed goes through ``redact``."""
    if not commands:
        return CheckResult(stage, "skip", f"no commands configured (pipeline.{stage})")
    for command in commands:
        argv = tuple(shlex.split(command))
        try:
            result = executor.run(Command(argv, str(root), capture=capture, echo=echo))
        except InputError as exc:
            return CheckResult(stage, "fail", f"pipeline.{stage}: {exc}")
        if not result.ok:
            tail = redact(result.stdout + result.stderr).strip().splitlines()[-15:]
            return CheckResult(stage, "fail", f"`{command}` exited {result.returncode}", tuple(tail))
    return CheckResult(stage, "pass", f"{len(commands)} command(s) passed")


def run_checks(executor: Executor, cwd: Path, checklist: ChecklistConfig) -> list[CheckResult]:
    """The repository items of the checklist (all but lint and test)."""
    from pipeline.emergency import check_emergencies

    facts = gather(executor, cwd, checklist)
    return [
        *(
            check(facts, checklist)
            for check in (
                check_version,
                check_changelog,
                check_commits,
                check_clean,
                check_branch,
                check_migrations,
            )
        ),
        check_emergencies(executor, facts, checklist),
    ]


def run_checklist(
    executor: Executor, cwd: Path, config: PipelineConfig, with_tests: bool = False
) -> list[CheckResult]:
    """Every checklist item, each with its verdict: all failures, not just the first."""
    results = run_checks(executor, cwd, config.checklist)
    results.extend(run_stages(executor, cwd, config, with_tests or config.checklist.run_tests))
    return results


def run_stages(executor: Executor, cwd: Path, config: PipelineConfig, run: bool) -> list[CheckResult]:
    """The lint and test stages as checklist items (skipped unless asked for); what they print is
    redacted of every environment's secrets."""
    if not run:
        reason = "not requested (--with-tests, or pipeline.checklist.run_tests)"
        return [CheckResult("lint", "skip", reason), CheckResult("test", "skip", reason)]
    from pipeline.secrets import redactor_for

    redact = redactor_for(config, os.environ).redact
    return [
        run_stage_commands(executor, cwd, "lint", config.lint, redact=redact),
        run_stage_commands(executor, cwd, "test", config.test, redact=redact),
    ]
