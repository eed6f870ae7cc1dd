"""Conventional Commits 1.0.0: parse messages, judge them, and derive the version bump."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pipeline.versions import Bump

_HEADER = re.compile(
    r"^(?P<type>[A-Za-z][\w-]*)(?:\((?P<scope>[^()\r\n]*)\))?(?P<bang>!)?(?P<colon>:\s?)(?P<desc>.*)$"
)
_BREAKING_FOOTER = re.compile(r"^BREAKING[ -]CHANGE:\s*\S", re.M)
_GIT_MERGE = re.compile(
    r"^Merge (branch(?:es)?|pull request|remote-tracking branch(?:es)?|tags?|commits?"
    r"|[0-9a-f]{7,40} into [0-9a-f]{7,40}$)"
)
# git's `Revert "..."` (and, since git 2.43, `Reapply "..."` for a revert of a revert), as is or
# squash-merged on GitHub, which appends the pull request: `Revert "feat: x" (#123)`.
_GIT_REVERT = re.compile(r'^(?:Revert|Reapply) ".*"(?: \(#\d+\))?$')


@dataclass(frozen=True)
class Commit:
    """A commit as read from ``git log``: its hash, number of parents and full message."""

    sha: str
    parents: int
    message: str

    @property
    def subject(self) -> str:
        """The first line of the message."""
        return self.message.split("\n", 1)[0].strip()

    @property
    def short(self) -> str:
        """The abbreviated hash shown to people."""
        return self.sha[:10]


@dataclass(frozen=True)
class Verdict:
    """What the convention says of one commit: its bump (if any) or why it breaks the rules."""

    commit: Commit
    problem: str | None = None
    bump: Bump | None = None

    @property
    def ok(self) -> bool:
        """Whether the commit follows the convention."""
        return self.problem is None


def judge(
    commit: Commit,
    types: Sequence[str],
    allow_merges: bool = True,
    allow_reverts: bool = True,
) -> Verdict:
    """Judge one commit against Conventional Commits 1.0.0 with the configured types."""
    subject = commit.subject
    if allow_merges and commit.parents > 1 and _GIT_MERGE.match(subject):
        return Verdict(commit)
    if allow_reverts and _GIT_REVERT.match(subject):
        return Verdict(commit, bump="patch")
    problem = _header_problem(subject, types)
    if problem is None:
        problem = _body_problem(commit.message)
    if problem:
        return Verdict(commit, problem)
    return Verdict(commit, bump=_bump_of(commit.message))


def _header_problem(subject: str, types: Sequence[str]) -> str | None:
    if not subject:
        return "the message is empty"
    if subject.startswith(("fixup!", "squash!", "amend!")):
        return "a fixup/squash commit: squash it before it lands"
    match = _HEADER.match(subject)
    if not match:
        return "the subject is not `type(scope): description`"
    kind = match["type"]
    if kind not in types:
        lowered = kind.lower()
        hint = f"; write `{lowered}`" if lowered in types else ""
        return f"unknown type `{kind}`{hint} (allowed: {', '.join(types)})"
    if match["scope"] is not None and not match["scope"].strip():
        return "the scope in parentheses is empty"
    if not match["desc"].strip():
        return "the description after `: ` is empty"
    if match["colon"] != ": ":
        return "the type must be followed by `: ` (a colon and one space)"
    if not match["desc"].strip():
        return "the description after `: ` is empty"
    return None


def _body_problem(message: str) -> str | None:
    lines = message.rstrip("\n").split("\n")
    if len(lines) > 1 and lines[1].strip():
        return "the body must be separated from the subject by a blank line"
    return None


def _bump_of(message: str) -> Bump:
    match = _HEADER.match(message.split("\n", 1)[0].strip())
    assert match is not None
    body = message.split("\n", 1)[1] if "\n" in message else ""
    if match["bang"] or _BREAKING_FOOTER.search(body):
        return "major"
    return "minor" if match["type"] == "feat" else "patch"


def bump_for(verdicts: Iterable[Verdict]) -> Bump:
    """The bump a set of commits calls for: breaking → major, feat → minor, else patch."""
    order = {"major": 0, "minor": 1, "patch": 2}
    bumps = [v.bump for v in verdicts if v.bump]
    return min(bumps, key=order.__getitem__, default="patch")


def parse_log(output: str) -> list[Commit]:
    """Parse ``git log -z --format=%H%x1f%P%x1f%B`` output into commits."""
    commits = []
    for record in output.split("\0"):
        if not record.strip():
            continue
        sha, parents, message = (record.lstrip("\n").split("\x1f", 2) + ["", ""])[:3]
        commits.append(Commit(sha, len(parents.split()), message.strip("\n")))
    return commits
