"""Semantic versions: parsing VERSION text, reading release tags, computing the next version."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import semver

from pipeline.errors import InputError

Bump = Literal["major", "minor", "patch"]
BUMPS: tuple[Bump, ...] = ("major", "minor", "patch")


def parse_version(text: str, source: str = "VERSION") -> semver.Version:
    """Parse the text of a VERSION file: one semver 2.0.0 version and at most a final newline."""
    body = text[:-1] if text.endswith("\n") else text
    if body.endswith("\r"):
        body = body[:-1]
    if not body.strip():
        raise InputError(f"{source}: the file is empty; write a version such as 1.0.0")
    if "\n" in body:
        raise InputError(f"{source}: holds more than one line; write only the version")
    if body != body.strip() or " " in body or "\t" in body:
        raise InputError(f"{source}: {body!r} contains spaces; write only the version")
    if body[:1] in ("v", "V") and _is_semver(body[1:]):
        raise InputError(f"{source}: {body!r} has a 'v' prefix; write {body[1:]}")
    if not _is_semver(body):
        raise InputError(
            f"{source}: {_printable(body)} is not a semantic version (MAJOR.MINOR.PATCH, "
            "e.g. 1.4.0 or 2.0.0-rc.1)"
        )
    return semver.Version.parse(body)


def _is_semver(text: str) -> bool:
    return text.isascii() and semver.Version.is_valid(text)


def _printable(text: str, limit: int = 40) -> str:
    shown = text if len(text) <= limit else text[:limit] + "..."
    return repr(shown)


@dataclass(frozen=True)
class ReleaseTag:
    """A tag that names a release: its ref name, its version and the commit it points at."""

    name: str
    version: semver.Version
    commit: str


def release_tags(tags: Iterable[tuple[str, str]], prefix: str) -> list[ReleaseTag]:
    """The (name, commit) pairs that are ``prefix + semver``, highest version first."""
    found = []
    for name, commit in tags:
        if name.startswith(prefix) and _is_semver(name[len(prefix) :]):
            found.append(ReleaseTag(name, semver.Version.parse(name[len(prefix) :]), commit))
    return sorted(found, key=lambda t: t.version, reverse=True)


def next_version(
    last: semver.Version | None,
    bump: Bump,
    pre: str | None = None,
    existing: Iterable[semver.Version] = (),
) -> semver.Version:
    """The version after the last *final* release for a bump, optionally as the next pre-release.

    ``existing`` holds the versions already tagged, so ``--pre rc`` counts past rc.1, rc.2...
    """
    base = last or semver.Version(0, 0, 0)
    if bump == "major":
        target = base.bump_major()
    elif bump == "minor":
        target = base.bump_minor()
    else:
        target = base.bump_patch()
    if not pre:
        return target
    taken = [
        v.prerelease
        for v in existing
        if v.finalize_version() == target and v.prerelease and v.prerelease.startswith(pre + ".")
    ]
    numbers = [int(p.split(".")[1]) for p in taken if p.split(".")[1].isdigit()]
    prerelease = f"{pre}.{max(numbers, default=0) + 1}"
    if not _is_semver(f"{target}-{prerelease}"):
        raise InputError(f"--pre: {pre!r} does not make a semantic version ({target}-{prerelease})")
    return target.replace(prerelease=prerelease)
