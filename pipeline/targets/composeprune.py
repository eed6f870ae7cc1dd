"""Pruning a compose host: what is on it (release folders, images, the project's image names), as argv
and parsers, and the commands that remove one version's images and folder.

Which images belong to a version is asked of ``docker compose config --images`` itself, with the
version variable set to a sentinel: a reference whose tag carries the sentinel is a service image
tagged per version (``app/api:${APP_VERSION}``); one without it (``busybox:latest``) is shared by
every version and never removed. Only references that exist on the host, tagged with a version that
is pruned, are removed, with ``docker image rm`` and never ``--force``: docker itself refuses an image
that a container (running or stopped) still uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from pipeline.compose import Project
from pipeline.prune import VersionPlan, is_version

SENTINEL = "pl-prune-version"  # the version variable's value while reading the project's image names
_SECTION = "--pl-section "
_FAILED = "--pl-failed"

# $1 releases folder, $2 app path, $3 version variable, $4 sentinel, $5 project, $6 the checkout's
# compose file (git source, else empty), $7 a release's compose file name (image source, else empty).
_INVENTORY = f"""
r=$1 p=$2 var=$3 s=$4 name=$5 checkout=$6 base=$7
echo '{_SECTION}releases'
if [ -d "$r" ]; then for d in "$r"/*; do
  if [ -d "$d" ] && [ ! -L "$d" ]; then printf '%s\\n' "${{d##*/}}"; fi
done; fi
echo '{_SECTION}images'
docker image ls --format '{{{{.Repository}}}}:{{{{.Tag}}}}\t{{{{.Size}}}}' || exit 1
echo '{_SECTION}used'
docker ps -a --format '{{{{.Image}}}}' || exit 1
names() {{
  echo "{_SECTION}template $1"
  env "$var=$s" docker compose --project-directory "$p" -f "$2" -p "$name" config --images 2>/dev/null \\
    || echo '{_FAILED}'
}}
if [ -n "$checkout" ] && [ -f "$checkout" ]; then names checkout "$checkout"; fi
if [ -n "$base" ] && [ -d "$r" ]; then for f in "$r"/*/"$base"; do
  if [ -f "$f" ]; then v=${{f%/*}}; names "${{v##*/}}" "$f"; fi
done; fi
exit 0
"""


def inventory(project: Project) -> tuple[str, ...]:
    """One read-only command: release folders, images, containers' images, the project's image names."""
    git = project.source == "git"
    checkout = project.file_for("") if git else ""
    base = "" if git else PurePosixPath(project.file).name
    return (
        "sh", "-c", _INVENTORY, "pl-inventory", project.releases, project.path,
        project.variable, SENTINEL, project.name, checkout, base,
    )  # fmt: skip


@dataclass(frozen=True)
class Inventory:
    """What a host has that prune decides about."""

    folders: tuple[str, ...] = ()
    images: dict[str, str] = field(default_factory=dict)  # reference -> size as docker says it
    used: frozenset[str] = frozenset()  # references containers were created from
    templates: tuple[str, ...] = ()  # the project's image references with the sentinel for a version
    unreadable: tuple[str, ...] = ()  # compose files whose image names could not be read

    def plan(self, version: str, project: Project) -> VersionPlan:
        """What would go of a version: its existing tagged images, and its release folder."""
        images = sorted({r for r in refs_for(self.templates, version) if r in self.images})
        folder = project.release_dir(version) if version in self.folders else ""
        return VersionPlan(version, tuple(images), folder)


def normalized(reference: str) -> str:
    """An image reference as ``docker image ls`` prints it (no ``docker.io/library/``)."""
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/", "index.docker.io/"):
        if reference.startswith(prefix):
            return reference[len(prefix) :]
    return reference


def _tag(reference: str) -> str:
    """The tag of ``registry:5000/repo/name:tag`` (empty without one, or with a digest)."""
    if "@" in reference:
        return ""
    last = reference.rsplit("/", 1)[-1]
    return last.partition(":")[2]


def refs_for(templates: Iterable[str], version: str) -> list[str]:
    """The references of a version: each template whose tag holds the sentinel, filled in."""
    return [t.replace(SENTINEL, version) for t in templates if SENTINEL in _tag(t)]


def parse_inventory(output: str) -> Inventory:
    """What ``inventory`` printed; lines that are not what the section holds are ignored."""
    sections: dict[str, list[str]] = {}
    templates: dict[str, list[str]] = {}
    current: list[str] = []
    for line in output.split("\n"):
        if line.startswith(_SECTION):
            kind, _, label = line[len(_SECTION) :].strip().partition(" ")
            current = templates.setdefault(label, []) if kind == "template" else sections.setdefault(kind, [])
        else:
            current.append(line.strip())
    images = {}
    for line in sections.get("images", []):
        reference, _, size = line.partition("\t")
        if reference and "<none>" not in reference:
            images[normalized(reference)] = size.strip()
    unreadable = tuple(label for label, lines in templates.items() if _FAILED in lines)
    names = {normalized(n) for lines in templates.values() for n in lines if n and n != _FAILED}
    return Inventory(
        folders=tuple(f for f in sections.get("releases", []) if is_version(f)),
        images=images,
        used=frozenset(normalized(u) for u in sections.get("used", []) if u),
        templates=tuple(sorted(n for n in names if SENTINEL in _tag(n))),
        unreadable=unreadable,
    )


def remove_image(reference: str) -> tuple[str, ...]:
    """Untag an image, deleting its layers when no other tag holds them; never forced."""
    return ("docker", "image", "rm", "--", reference)


def remove_folder(folder: str) -> tuple[str, ...]:
    """Delete a release folder (only ever ``releases/VERSION`` of a validated version)."""
    return ("rm", "-rf", "--", folder)


def in_use(stderr: str) -> bool:
    """Whether ``docker image rm`` refused because a container uses the image."""
    text = stderr.lower()
    return "conflict" in text or "being used" in text or "is using" in text


def gone(stderr: str) -> bool:
    """Whether ``docker image rm`` failed because the image is not there any more."""
    return "no such image" in stderr.lower()
