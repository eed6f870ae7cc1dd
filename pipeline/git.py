"""Git as the pipeline asks it: argv builders, and a few readers that run them through an executor.

One git process per question, never one per commit, and several questions at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.commits import Commit, parse_log
from pipeline.errors import InputError
from pipeline.executor import Command, Executor, Result
from pipeline.files import MIB, read_optional

LOG_FORMAT = "--format=%H%x1f%P%x1f%B"


def git(*args: str, cwd: str | Path | None = None, stdin: str | None = None) -> Command:
    """A git command as data."""
    return Command(("git", *args), str(cwd) if cwd else None, stdin)


def rev_parse_state(cwd: Path) -> Command:
    """Where the work tree's top is, whether the clone is shallow, and where git lists the cuts."""
    return git("rev-parse", "--show-toplevel", "--is-shallow-repository", "--git-path", "shallow", cwd=cwd)


def status(cwd: Path) -> Command:
    """Branch, HEAD commit and changed paths in one answer."""
    return git("status", "--porcelain=v2", "--branch", "-z", cwd=cwd)


def refs(cwd: Path) -> Command:
    """Every tag and branch with the commit it points at (annotated tags peeled)."""
    return git(
        "for-each-ref",
        "--format=%(refname)%00%(objectname)%00%(*objectname)",
        "refs/tags",
        "refs/heads",
        "refs/remotes",
        cwd=cwd,
    )


def merged_tags(cwd: Path) -> Command:
    """The tags whose commits HEAD's history holds (fails when there is no HEAD yet).

    It walks the whole history (60 ms on 50,000 commits): the checklist asks ``nearest_tag`` instead.
    """
    return git("for-each-ref", "--merged=HEAD", "--format=%(refname)", "refs/tags", cwd=cwd)


def nearest_tag(cwd: Path, prefix: str) -> Command:
    """The release-looking tag nearest HEAD in its history (fails when there is none): a short walk."""
    return git("describe", "--tags", "--abbrev=0", f"--match={prefix}[0-9]*", "HEAD", cwd=cwd)


def log(cwd: Path, since: str | None, until: str = "HEAD") -> Command:
    """Commits in ``since..until`` (or all of history), with full messages, NUL-separated."""
    revision = f"{since}..{until}" if since else until
    return git("log", "-z", "--no-color", LOG_FORMAT, revision, "--", cwd=cwd)


@dataclass(frozen=True)
class Branch:
    """A local or remote-tracking branch and the commit at its tip."""

    name: str
    commit: str
    remote: str | None = None

    def __str__(self) -> str:
        return f"{self.remote}/{self.name}" if self.remote else self.name


@dataclass(frozen=True)
class RepoState:
    """What git says about the work tree, gathered in three concurrent processes."""

    root: Path
    shallow: bool
    head: str | None
    branch: str | None
    changes: tuple[str, ...]
    tags: tuple[tuple[str, str], ...]
    branches: tuple[Branch, ...]
    nearest: str | None = None  # the release-looking tag nearest HEAD in its history
    untracked: tuple[str, ...] = ()  # the untracked among ``changes`` (folders end with /)
    shallow_file: Path | None = None  # where git lists a shallow clone's cut commits
    nearest_log: str | None = field(default=None, repr=False, compare=False)  # `git log nearest..HEAD`

    @property
    def detached(self) -> bool:
        """Whether HEAD is detached (as in most CI checkouts)."""
        return self.branch is None


def read_state(executor: Executor, cwd: Path, tag_prefix: str = "v") -> RepoState:
    """Ask git where we are: top level, shallowness, HEAD, branch, changes, refs, the nearest tag.

    The nearest tag first (a short walk), then the rest at once with the log since that tag, which is
    the range the checklist almost always reads: the longest question runs beside the others.
    """
    nearest = executor.run(nearest_tag(cwd, tag_prefix))
    since = nearest.stdout.strip() if nearest.ok else ""
    where, state, listing, *logged = executor.run_all(
        [rev_parse_state(cwd), status(cwd), refs(cwd), *([log(cwd, since)] if since else [])]
    )
    if not where.ok:
        _not_a_repository(where, cwd)
    top, shallow, cuts = (where.stdout.splitlines() + ["", "false", ""])[:3]
    if not state.ok or not listing.ok:
        bad = state if not state.ok else listing
        raise InputError(f"git cannot read {cwd}: {bad.stderr.strip()}")
    head, branch, changes, untracked = _parse_status(state.stdout)
    tags, branches = _parse_refs(listing.stdout)
    return RepoState(
        Path(top),
        shallow == "true",
        head,
        branch,
        changes,
        tags,
        branches,
        since if head is not None and since else None,
        untracked,
        (cwd / cuts) if cuts else None,
        logged[0].stdout if logged and logged[0].ok and head is not None else None,
    )


def _not_a_repository(result: Result, cwd: Path) -> None:
    message = result.stderr.strip()
    if "not a git repository" in message:
        raise InputError(f"{cwd} is not a git repository (run `git init`, or run from a clone)")
    raise InputError(f"git cannot read {cwd}: {message}")


def _parse_status(output: str) -> tuple[str | None, str | None, tuple[str, ...], tuple[str, ...]]:
    head = branch = None
    changes = []
    untracked = []
    entries = iter(output.split("\0"))
    for entry in entries:
        if entry.startswith("# branch.oid "):
            oid = entry.removeprefix("# branch.oid ")
            head = None if oid == "(initial)" else oid
        elif entry.startswith("# branch.head "):
            name = entry.removeprefix("# branch.head ")
            branch = None if name == "(detached)" else name
        elif entry[:2] in _FIELDS:
            changes.append(entry.split(" ", _FIELDS[entry[:2]])[-1])
            if entry[:2] == "? ":
                untracked.append(changes[-1])
            if entry[:2] == "2 ":
                next(entries, None)  # a rename's original path comes as its own field
    return head, branch, tuple(changes), tuple(untracked)


# How many spaces precede the path in each porcelain=v2 record kind.
_FIELDS = {"1 ": 8, "2 ": 9, "u ": 10, "? ": 1, "! ": 1}


def _parse_refs(output: str) -> tuple[tuple[tuple[str, str], ...], tuple[Branch, ...]]:
    """Tags as (name, commit) pairs, and branches, local and remote-tracking."""
    tags = []
    branches = []
    for line in output.splitlines():
        name, obj, peeled = (line.split("\0") + ["", ""])[:3]
        commit = peeled or obj
        if name.startswith("refs/tags/"):
            tags.append((name.removeprefix("refs/tags/"), commit))
        elif name.startswith("refs/heads/"):
            branches.append(Branch(name.removeprefix("refs/heads/"), commit))
        elif name.startswith("refs/remotes/") and not name.endswith("/HEAD"):
            remote, _, branch = name.removeprefix("refs/remotes/").partition("/")
            branches.append(Branch(branch, commit, remote))
    return tuple(tags), tuple(branches)


def reachable_tags(executor: Executor, state: RepoState, candidates: list[str]) -> set[str]:
    """Which of the ``candidates`` tags HEAD's history holds: one check each, or one walk for many."""
    if state.head is None or not candidates:
        return set()
    if len(candidates) > 4:
        merged = executor.run(merged_tags(state.root))
        if not merged.ok:
            raise InputError(f"git cannot read {state.root}: {merged.stderr.strip()}")
        names = {line.removeprefix("refs/tags/") for line in merged.stdout.splitlines()}
        return names & set(candidates)
    checks = executor.run_all(
        [is_ancestor(state.root, f"refs/tags/{t}^{{commit}}", "HEAD") for t in candidates]
    )
    return {tag for tag, check in zip(candidates, checks, strict=True) if check.ok}


def is_ancestor(cwd: Path, commit: str, ref: str) -> Command:
    """Exits 0 when ``commit`` is reachable from ``ref``."""
    return git("merge-base", "--is-ancestor", commit, ref, cwd=cwd)


def read_commits(executor: Executor, cwd: Path, since: str | None) -> list[Commit]:
    """The commits after ``since`` (all history when None), newest first."""
    result = executor.run(log(cwd, since))
    if not result.ok:
        raise InputError(f"git log {since or ''}..HEAD failed: {result.stderr.strip()}")
    return parse_log(result.stdout)


def read_whole_range(executor: Executor, state: RepoState, since: str | None) -> list[Commit]:
    """The commits after ``since``, refusing a shallow clone whose cut falls inside the range.

    A commit at the cut shows no parents, so the range would silently end there: judging or
    bumping from it would pass on history nobody looked at.
    """
    if since is not None and since == state.nearest and state.nearest_log is not None:
        commits = parse_log(state.nearest_log)
    else:
        commits = read_commits(executor, state.root, since)
    cuts = shallow_cuts(state)
    cut = next((c for c in commits if c.sha in cuts), None)
    if cut is not None:
        raise InputError(
            f"{state.root} is a shallow clone cut at {cut.short}, inside the commits since "
            f"{since or 'the first commit'}: they cannot all be seen. Fetch the whole history "
            "(actions/checkout with `fetch-depth: 0`, or `git fetch --unshallow --tags`)"
        )
    return commits


def shallow_cuts(state: RepoState) -> frozenset[str]:
    """The commits where a shallow clone's history is cut (empty for a whole clone)."""
    if not state.shallow or state.shallow_file is None:
        return frozenset()
    text = read_optional(state.shallow_file, f"git's shallow list {state.shallow_file}", 64 * MIB)
    return frozenset((text or "").split())
