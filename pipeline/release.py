"""``invoke release``: plan the version, files, commit, tag and push as data, then apply it."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import semver

from pipeline import checklist
from pipeline.changelog import parse_changelog, release_changelog
from pipeline.checklist import CheckResult, Facts
from pipeline.commits import bump_for
from pipeline.config import PipelineConfig
from pipeline.errors import ChecklistFailed, InputError, ReleaseIncomplete
from pipeline.executor import Command, Executor
from pipeline.git import git, reachable_tags, read_whole_range
from pipeline.versions import BUMPS, Bump, ReleaseTag, next_version, parse_version

BumpArg = Literal["major", "minor", "patch", "auto"]
_PRE = re.compile(r"[0-9A-Za-z-]+")  # one semver pre-release identifier; `.N` is added to it


@dataclass(frozen=True)
class FileChange:
    """A file the release rewrites: its path relative to the project and both contents."""

    path: str
    old: str | None  # None: the file does not exist yet
    new: str

    def diff(self) -> str:
        """A unified diff of the change."""
        return "".join(
            difflib.unified_diff(
                (self.old or "").splitlines(keepends=True),
                self.new.splitlines(keepends=True),
                f"a/{self.path}",
                f"b/{self.path}",
            )
        )


@dataclass(frozen=True)
class ReleasePlan:
    """Everything a release will do, in order; ``already`` names a tag already at HEAD."""

    version: semver.Version
    tag: str
    files: tuple[FileChange, ...]
    commands: tuple[Command, ...]
    already: str | None = None

    def describe(self) -> str:
        """The plan for people, as ``--dry-run`` prints it."""
        if self.already and not self.commands:
            return f"HEAD is already released as {self.already}: nothing to do"
        lines = [f"release {self.version} as {self.tag}"]
        for change in self.files:
            lines.append(f"write {change.path}:")
            lines.extend("    " + ln for ln in change.diff().splitlines())
        lines.extend(f"run   {command}" for command in self.commands)
        return "\n".join(lines)


@dataclass(frozen=True)
class ReleaseRequest:
    """What the release manager asked for."""

    bump: BumpArg | None = None
    pre: str | None = None
    push: bool = False
    with_tests: bool = False


def validate_request(bump: str | None, pre: str | None) -> ReleaseRequest:
    """Check the flags before anything is read: ``--bump`` names a bump, ``--pre`` a word."""
    if bump is not None and bump not in (*BUMPS, "auto"):
        raise InputError(f"--bump: {bump!r} is not one of major, minor, patch, auto")
    if pre is not None and not _PRE.fullmatch(pre):
        raise InputError(f"--pre: {pre!r} must be letters, digits and hyphens only, e.g. rc or beta")
    if pre is not None and pre.isdigit() and pre != str(int(pre)):
        raise InputError(
            f"--pre: {pre!r} is a number with a leading zero, which semver forbids in a pre-release; "
            f"write {int(pre)}, or a word such as rc"
        )
    if pre and bump is None:
        raise InputError("--pre needs --bump: the pre-release is of the next version")
    return ReleaseRequest(bump=bump, pre=pre)  # type: ignore[arg-type]


def plan_release(
    executor: Executor,
    cwd: Path,
    config: PipelineConfig,
    request: ReleaseRequest,
    today: date,
) -> tuple[ReleasePlan, list[CheckResult]]:
    """Read the repository, run the checks that apply before a release, and plan it.

    Raises ChecklistFailed (nothing touched) when a check fails or the version cannot be released.
    """
    cfg = config.checklist
    facts = checklist.gather(executor, cwd, cfg, migrations=False)
    unreadable = [p for p in (facts.version_problem, facts.changelog_problem) if p]
    if unreadable:
        raise ChecklistFailed("; ".join(unreadable))
    results = [
        checklist.check_commits(facts, cfg),
        checklist.check_clean(facts, cfg),
        checklist.check_branch(facts, cfg),
    ]
    if request.with_tests or cfg.run_tests:
        results.extend(checklist.run_stages(executor, cwd, config, True))
    released = next((t for t in facts.tags if t.commit == facts.state.head), None)
    if released is not None:
        push: tuple[Command, ...] = ()
        if request.push:
            _check_remote(executor, cwd, config.release.remote)
            push = _push(facts, config, released.name)
        return ReleasePlan(released.version, released.name, (), push, released.name), results
    if any(r.failed for r in results):
        raise ChecklistFailed("the checks that apply before a release failed", tuple(results))
    version = _choose_version(executor, facts, config, request)
    tag = f"{cfg.tag_prefix}{version}"
    clash = next((t for t in facts.tags if t.name == tag), None) or next(
        (ReleaseTag(n, version, c) for n, c in facts.state.tags if n == tag), None
    )
    if clash:
        raise ChecklistFailed(f"tag {tag} already exists on {clash.commit[:10]}, not on HEAD")
    if request.push:
        _check_remote(executor, cwd, config.release.remote)
    files = _file_changes(facts, config, version, today)
    commands = _commands(cwd, facts, config, version, tag, files, request.push)
    return ReleasePlan(version, tag, files, commands), results


def _choose_version(
    executor: Executor, facts: Facts, config: PipelineConfig, request: ReleaseRequest
) -> semver.Version:
    cfg = config.checklist
    current = _current_version(facts, config)
    last = facts.last_tag
    if request.bump is None:
        if current is None:
            raise ChecklistFailed(f"{cfg.version_file}: not a valid version; pass --bump")
        if last and current <= last.version:
            raise ChecklistFailed(
                f"{cfg.version_file}: {current} is not above the last release {last.name}; "
                "bump it by hand or pass --bump"
            )
        return current
    final = next((t for t in facts.reachable if not t.version.prerelease), None)
    if final is None:  # the checklist judged by the nearest tag, a pre-release: find the final below it
        finals = [t for t in facts.tags if not t.version.prerelease]
        held = reachable_tags(executor, facts.state, [t.name for t in finals])
        final = next((t for t in finals if t.name in held), None)
    bump: Bump
    if request.bump == "auto":
        commits = facts.commits
        if final is not None and last is not None and final != last:
            commits = tuple(read_whole_range(executor, facts.state, final.name))
        bump = bump_for(checklist.commit_verdicts(commits, cfg))
    else:
        bump = request.bump
    version = next_version(
        final.version if final else None, bump, request.pre, (t.version for t in facts.tags)
    )
    if current is not None and current.finalize_version() > version.finalize_version():
        raise InputError(
            f"{cfg.version_file} says {current}, above the {version} that --bump {request.bump} "
            f"gives; run `invoke release` without --bump to release {current}"
        )
    return version


def _current_version(facts: Facts, config: PipelineConfig) -> semver.Version | None:
    if facts.version_text is None:
        return None
    try:
        return parse_version(facts.version_text, config.checklist.version_file)
    except InputError:
        return None


def _file_changes(
    facts: Facts, config: PipelineConfig, version: semver.Version, today: date
) -> tuple[FileChange, ...]:
    cfg = config.checklist
    path = cfg.changelog
    if facts.changelog_text is None:
        raise ChecklistFailed(f"{path}: file not found; start one from keepachangelog.com")
    log = parse_changelog(facts.changelog_text)
    if log.problems:
        first = log.problems[0]
        raise ChecklistFailed(f"{path}:{first.line}: {first.message}")
    changes = []
    new_version = f"{version}\n"
    if facts.version_text != new_version:
        changes.append(FileChange(cfg.version_file, facts.version_text, new_version))
    if log.section(str(version)) is None:
        if log.unreleased is None or not log.unreleased.has_content:
            raise ChecklistFailed(
                f"{path}: [Unreleased] is missing or empty; describe the changes in {version} first"
            )
        text = release_changelog(facts.changelog_text, str(version), today, cfg.tag_prefix)
        changes.append(FileChange(path, facts.changelog_text, text))
    return tuple(changes)


def _commands(
    root: Path,
    facts: Facts,
    config: PipelineConfig,
    version: semver.Version,
    tag: str,
    files: Sequence[FileChange],
    push: bool,
) -> tuple[Command, ...]:
    commands = []
    if files:
        message = config.release.commit_message.format(tag=tag, version=version)
        commands.append(git("add", "--", *(f.path for f in files), cwd=root))
        commands.append(git("commit", "--quiet", "-m", message, "--", *(f.path for f in files), cwd=root))
    message = config.release.tag_message.format(tag=tag, version=version)
    notes = _release_notes(facts, config, files, str(version))
    message = f"{message}\n\n{notes}" if notes else message
    commands.append(
        git(
            "tag",
            "--annotate",
            "--cleanup=verbatim",
            "--file=-",
            tag,
            cwd=root,
            stdin=message + "\n",
        )
    )
    if push:
        commands.extend(_push(facts, config, tag))
    return tuple(commands)


def _release_notes(facts: Facts, config: PipelineConfig, files: Sequence[FileChange], version: str) -> str:
    """The changelog section of the release, for the tag's message."""
    path = config.checklist.changelog
    text = next((f.new for f in files if f.path == path), facts.changelog_text or "")
    section = parse_changelog(text).section(version)
    return "\n".join(section.body).strip() if section else ""


def _check_remote(executor: Executor, cwd: Path, remote: str) -> None:
    if not executor.run(git("remote", "get-url", remote, cwd=cwd)).ok:
        raise InputError(
            f"remote `{remote}` is not configured (pipeline.release.remote): "
            f"add it with `git remote add {remote} URL`"
        )


def _push(facts: Facts, config: PipelineConfig, tag: str) -> tuple[Command, ...]:
    branch = facts.state.branch or (facts.ancestor_of.name if facts.ancestor_of else None)
    if branch is None:
        raise InputError("HEAD is detached on no allowed branch: check out the branch to push")
    refspecs = (f"HEAD:refs/heads/{branch}", f"refs/tags/{tag}")
    return (git("push", "--atomic", config.release.remote, *refspecs, cwd=facts.root),)


def apply_release(executor: Executor, root: Path, plan: ReleasePlan) -> None:
    """Write the files, then run the git commands; restore the files if git refuses the commit.

    A failure after the commit (the tag, the push) leaves what exists and says how to finish.
    """
    written: list[FileChange] = []
    committed = False
    try:
        for change in plan.files:
            written.append(change)  # before writing: a half-written file is restored too
            _write(root, change.path, change.new)
        for command in plan.commands:
            result = executor.run(command)
            verb = command.argv[1:2]
            if verb == ("push",) and not result.ok:
                raise ReleaseIncomplete(
                    f"{plan.tag} is released locally but the push failed: "
                    f"{result.stderr.strip()}; fix the remote, then re-run `invoke release --push`"
                )
            if verb == ("tag",) and not result.ok and committed:
                raise ReleaseIncomplete(_untagged(plan, executor, root, result.stderr))
            result.check()
            if verb == ("commit",):
                written, committed = [], True  # committed: nothing to restore any more
    except BaseException:
        for change in written:
            _restore(root, change)
        if written:
            executor.run(git("reset", "--quiet", "--", *(c.path for c in written), cwd=root))
        raise


def _write(root: Path, path: str, text: str) -> None:
    try:
        (root / path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot be written ({exc.strerror or type(exc).__name__})") from None


def _restore(root: Path, change: FileChange) -> None:
    """Put a file back as it was: its old text, or no file at all if it did not exist."""
    target = root / change.path
    if change.old is None:
        target.unlink(missing_ok=True)
    else:
        target.write_text(change.old, encoding="utf-8")


def _untagged(plan: ReleasePlan, executor: Executor, root: Path, stderr: str) -> str:
    """What exists after a refused tag, and the two ways on from there."""
    head = executor.run(git("rev-parse", "--short=10", "HEAD", cwd=root)).stdout.strip() or "HEAD"
    why = " / ".join(stderr.strip().splitlines()[-3:]) or "no output"
    rerun = (
        "invoke release --push" if any(c.argv[1:2] == ("push",) for c in plan.commands) else "invoke release"
    )
    return (
        f"the release commit {head} for {plan.version} is made but `git tag {plan.tag}` failed: {why}. "
        f"No tag exists and nothing was pushed. Fix the cause (e.g. tag.gpgSign and gpg), then re-run "
        f"`{rerun}` without --bump to tag {plan.version} at HEAD; or undo the commit with "
        "`git reset --hard HEAD~1`"
    )
