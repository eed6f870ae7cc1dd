"""Release notes: the CHANGELOG section of the deployed version, as of the release's commit.

The text comes from git (``git show COMMIT:CHANGELOG.md``), never from the working tree, so a deploy
of an older tag announces what that tag shipped. Nothing here fails a deploy: a missing file or
section is a note that says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.changelog import parse_changelog
from pipeline.executor import Command, Executor
from pipeline.secrets import split_credentials

# git show of one file on the runner; a hung git must not hold the deploy's end.
GIT_TIMEOUT = 30.0


@dataclass(frozen=True)
class ReleaseNotes:
    """The body lines of a version's CHANGELOG section (Markdown), or why there are none."""

    version: str
    lines: tuple[str, ...] = ()
    missing: str = ""  # why there are no notes; "" when the section was found
    url: str = ""  # the CHANGELOG at the release's commit, where one can be built

    @property
    def found(self) -> bool:
        """Whether the section was found (it may still be empty)."""
        return not self.missing


def notes_of(text: str | None, version: str, path: str = "CHANGELOG.md", url: str = "") -> ReleaseNotes:
    """The section for ``version`` in a changelog's text (None: the file is not in the release)."""
    if text is None:
        return ReleaseNotes(version, missing=f"{path} is not in the release", url=url)
    section = parse_changelog(text).section(version)
    if section is None:
        return ReleaseNotes(version, missing=f"{path} has no section for {version}", url=url)
    lines = list(section.body)
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        return ReleaseNotes(version, missing=f"the section for {version} in {path} is empty", url=url)
    return ReleaseNotes(version, tuple(lines), url=url)


def read_notes(executor: Executor, root: Path, commit: str, version: str, path: str) -> ReleaseNotes:
    """The notes of ``version`` from ``path`` as of ``commit``, with a link to that file if the
    origin is a web forge; any failure to read is a note saying so."""
    url = changelog_url(_origin(executor, root), commit, path)
    shown = executor.run(Command(("git", "show", f"{commit}:./{path}"), str(root), timeout=GIT_TIMEOUT))
    return notes_of(shown.stdout if shown.ok else None, version, path, url)


def release_commit(executor: Executor, root: Path, ref: str) -> str:
    """The commit a ref names, or "" when git cannot say."""
    argv = ("git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    found = executor.run(Command(argv, str(root), timeout=GIT_TIMEOUT))
    return found.stdout.strip() if found.ok else ""


def _origin(executor: Executor, root: Path) -> str:
    found = executor.run(Command(("git", "remote", "get-url", "origin"), str(root), timeout=GIT_TIMEOUT))
    return found.stdout.strip() if found.ok else ""


_URL = re.compile(
    r"^(?P<scheme>https?|ssh|git)://(?:[^@/]+@)?(?P<host>[\w.-]+)(?::(?P<port>\d+))?/(?P<path>[\w./-]+)$"
)
_SCP = re.compile(r"^(?:[\w.-]+@)?(?P<host>[\w.-]+\.[A-Za-z]{2,}):(?P<path>(?!/)[\w./-]+)$")


def changelog_url(origin: str, commit: str, path: str) -> str:
    """``https://HOST/OWNER/REPO/blob/COMMIT/PATH`` for an https or scp-style origin; never with the
    origin's credentials; "" for anything else (a local path, a file:// URL)."""
    if not origin or not re.fullmatch(r"[0-9a-f]{7,64}", commit):
        return ""
    scp = _SCP.match(origin)
    if scp:
        host, repo = scp["host"], scp["path"]
    else:
        match = _URL.match(split_credentials(origin).url)
        if not match:
            return ""
        port = match["port"] if match["scheme"] in ("http", "https") else None
        host, repo = match["host"] + (f":{port}" if port else ""), match["path"]
    repo = repo.rstrip("/").removesuffix(".git")
    if "." not in host or not repo or ".." in repo:
        return ""
    return f"https://{host}/{repo}/blob/{commit}/{path.removeprefix('./')}"
