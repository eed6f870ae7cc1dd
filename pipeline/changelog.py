"""Keep a Changelog: parse the text, find problems by line, and move [Unreleased] into a release."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from pipeline.errors import InputError

UNRELEASED = "Unreleased"
_HEADING = re.compile(r"^##(?!#)\s*(?P<rest>.*?)\s*$")
_SECTION = re.compile(
    r"^\[(?P<name>[^\]]+)\]"
    r"(?:\s+-\s+(?P<date>\S+))?"
    r"(?P<yanked>\s+\[YANKED\])?$"
)
_LINK = re.compile(r"^\[(?P<name>[^\]]+)\]:\s*(?P<url>\S+)\s*$")
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_COMPARE = re.compile(r"^(?P<base>.*?/compare/)(?P<old>.+?)\.\.\.(?P<new>.+)$")


@dataclass(frozen=True)
class Section:
    """A ``## [name] - date`` section: its heading line (1-based) and body lines."""

    name: str
    line: int
    date: str | None
    body: tuple[str, ...]
    end: int  # line index (0-based) one past the section's last line

    @property
    def has_content(self) -> bool:
        """Whether the body says anything beyond sub-headings and blank lines."""
        return any(ln.strip() and not ln.lstrip().startswith("#") for ln in self.body)


@dataclass(frozen=True)
class Problem:
    """Something wrong in the changelog, at a line (0 when it concerns the whole file)."""

    line: int
    message: str


@dataclass(frozen=True)
class Changelog:
    """A parsed changelog: its sections in file order, link references and problems."""

    lines: tuple[str, ...]
    sections: tuple[Section, ...]
    links: dict[str, tuple[int, str]] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()

    def section(self, name: str) -> Section | None:
        """The section with this name (a version, or ``Unreleased``), if any."""
        wanted = name.lower()
        return next((s for s in self.sections if s.name.lower() == wanted), None)

    @property
    def unreleased(self) -> Section | None:
        """The [Unreleased] section, if the file has one."""
        return self.section(UNRELEASED)


def parse_changelog(text: str) -> Changelog:
    """Parse Keep a Changelog text; never raises, problems are listed with their lines."""
    lines = _lines(text)
    problems: list[Problem] = []
    links: dict[str, tuple[int, str]] = {}
    headings: list[tuple[int, str, str | None]] = []
    foreign: list[tuple[int, str]] = []  # `##` headings in no Keep a Changelog shape at all
    in_fence = False
    for index, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        if in_fence:
            continue
        link = _LINK.match(line)
        if link:
            links[link["name"].lower()] = (index + 1, link["url"])
            continue
        heading = _HEADING.match(line)
        if not heading:
            continue
        parsed = _parse_heading(heading["rest"], index + 1)
        if isinstance(parsed, Problem):
            problems.append(parsed)
            if not _SECTION.match(heading["rest"]):
                foreign.append((index + 1, heading["rest"]))
        else:
            headings.append((index, *parsed))
    sections = []
    for position, (index, name, when) in enumerate(headings):
        end = headings[position + 1][0] if position + 1 < len(headings) else _body_end(lines, links)
        body = tuple(lines[index + 1 : max(end, index + 1)])
        sections.append(Section(name, index + 1, when, body, max(end, index + 1)))
    if len(foreign) >= _FOREIGN and len(foreign) > len(sections):
        problems = [_another_format(foreign)]
    if not text.strip():
        problems.insert(0, Problem(0, "the file is empty"))
    elif not sections and not problems:
        problems.append(Problem(0, "has no `## [version] - YYYY-MM-DD` or `## [Unreleased]` section"))
    problems.extend(_duplicates(sections))
    return Changelog(lines, tuple(sections), links, tuple(problems))


# From this many headings in another shape (and more of them than sections), the file is in
# another format: one problem saying so, not one per release (hundreds of CI annotations).
_FOREIGN = 3


def _another_format(foreign: list[tuple[int, str]]) -> Problem:
    line, first = foreign[0]
    return Problem(
        line,
        f"not in Keep a Changelog format: {len(foreign)} `##` headings, such as `## {first[:60]}`, "
        "are not `## [X.Y.Z] - YYYY-MM-DD`; convert the file as keepachangelog.com shows "
        "(`## [Unreleased]`, then `## [1.2.0] - 2024-05-01` for each release), "
        "or set pipeline.checklist.changelog to a file in that format",
    )


def _lines(text: str) -> tuple[str, ...]:
    """Lines split on LF only (a CR before it dropped): other breaks are text, as editors show."""
    if not text:
        return ()
    body = text[:-1] if text.endswith("\n") else text
    return tuple(line.removesuffix("\r") for line in body.split("\n"))


def _parse_heading(rest: str, line: int) -> tuple[str, str | None] | Problem:
    match = _SECTION.match(rest)
    expected = "expected `## [Unreleased]` or `## [1.2.3] - YYYY-MM-DD`"
    if not match:
        return Problem(line, f"malformed heading `## {rest}`: {expected}")
    name, when = match["name"].strip(), match["date"]
    if name.lower() == UNRELEASED.lower():
        if when:
            return Problem(line, "the [Unreleased] section takes no date")
        return UNRELEASED, None
    if not _SEMVER.match(name):
        hint = " (drop the 'v')" if name[:1] in "vV" and _SEMVER.match(name[1:]) else ""
        return Problem(line, f"`{name}` is not a semantic version{hint}: {expected}")
    if when is None:
        return Problem(line, f"the section for {name} has no date: write `## [{name}] - YYYY-MM-DD`")
    try:
        date.fromisoformat(when)
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", when):
            raise ValueError
    except ValueError:
        return Problem(line, f"`{when}` is not a date in the form YYYY-MM-DD")
    return name, when


def _body_end(lines: tuple[str, ...], links: dict[str, tuple[int, str]]) -> int:
    """The last section stops where the link references at the bottom begin."""
    first_link = min((ln for ln, _ in links.values()), default=len(lines) + 1) - 1
    end = len(lines)
    if first_link < end and all(not ln.strip() or _LINK.match(ln) for ln in lines[first_link:]):
        end = first_link
    return end


def _duplicates(sections: list[Section]) -> list[Problem]:
    seen: dict[str, int] = {}
    problems = []
    for section in sections:
        key = section.name.lower()
        if key in seen:
            problems.append(
                Problem(section.line, f"[{section.name}] appears again (first on line {seen[key]})")
            )
        else:
            seen[key] = section.line
    return problems


def release_changelog(text: str, version: str, day: date, tag_prefix: str = "v") -> str:
    """Move [Unreleased] into a dated section for ``version``, keeping comparison links right.

    The caller has checked that the changelog parses and that [Unreleased] exists.
    """
    log = parse_changelog(text)
    unreleased = log.unreleased
    if unreleased is None:
        raise InputError("the changelog has no [Unreleased] section to release")
    lines = list(log.lines)
    heading = f"## [{version}] - {day.isoformat()}"
    index = unreleased.line - 1
    lines[index + 1 : index + 1] = ["", heading]
    lines = _update_links(lines, log, version, tag_prefix, shift_after=index)
    newline = "\r\n" if "\r\n" in text else "\n"
    trailing = newline if text.endswith("\n") else ""
    return newline.join(lines) + trailing


def _update_links(
    lines: list[str], log: Changelog, version: str, tag_prefix: str, shift_after: int
) -> list[str]:
    link = log.links.get(UNRELEASED.lower())
    if not link:
        return lines
    line_no, url = link
    compare = _COMPARE.match(url)
    if not compare:
        return lines
    # The heading we inserted shifted every later line down by two.
    at = line_no - 1 + (2 if line_no - 1 > shift_after else 0)
    name = lines[at].split("]:", 1)[0] + "]"
    new_tag = f"{tag_prefix}{version}"
    lines[at] = f"{name}: {compare['base']}{new_tag}...{compare['new']}"
    lines.insert(at + 1, f"[{version}]: {compare['base']}{compare['old']}...{new_tag}")
    return lines
