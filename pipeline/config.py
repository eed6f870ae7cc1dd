"""Configuration: the ``pipeline`` key of Invoke's config, validated once into frozen objects."""

from __future__ import annotations

import re
import shlex
import types
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin

import msgspec

from pipeline.configlayers import Layers, check_values
from pipeline.defaults import CONVENTIONAL_TYPES as _DEFAULT_TYPES
from pipeline.defaults import DEFAULTS
from pipeline.environments import ComposeEnvironment, Section, environment_problems
from pipeline.errors import ConfigError
from pipeline.helmconfig import HelmEnvironment, helm_problems

CONVENTIONAL_TYPES = tuple(_DEFAULT_TYPES)


class ChecklistConfig(Section, frozen=True):
    """What the pre-deployment checklist checks, and against which files."""

    version_file: str
    changelog: str
    convention: Literal["conventional", "none"]
    types: tuple[str, ...]
    allow_merge_commits: bool
    allow_revert_commits: bool
    branches: tuple[str, ...]
    tag_prefix: str
    commits_from: str
    changelog_unreleased_ok: bool
    require_clean: bool
    run_tests: bool


class ReleaseConfig(Section, frozen=True):
    """How ``invoke release`` commits, tags and pushes."""

    remote: str
    commit_message: str
    tag_message: str


Environment = ComposeEnvironment | HelmEnvironment
TARGETS: dict[str, type[ComposeEnvironment] | type[HelmEnvironment]] = {
    "compose": ComposeEnvironment,
    "helm": HelmEnvironment,
}


class PipelineConfig(Section, frozen=True):
    """The whole validated configuration; defaults live in ``pipeline.defaults``."""

    checklist: ChecklistConfig
    release: ReleaseConfig
    lint: tuple[str, ...]
    test: tuple[str, ...]
    environments: dict[str, Environment]

    def environment(self, name: str) -> Environment:
        """The named environment, or a ConfigError listing the known ones."""
        if name not in self.environments:
            known = ", ".join(sorted(self.environments)) or "none configured"
            raise ConfigError(f"--env: no environment {name!r} in pipeline.environments ({known})")
        return self.environments[name]


def defaults() -> dict[str, Any]:
    """A fresh copy of the defaults as plain data."""
    import copy

    return copy.deepcopy(DEFAULTS)


def load_config(
    raw: Mapping[str, Any] | None, source: str = "invoke.yaml", environ: Mapping[str, str] | None = None
) -> PipelineConfig:
    """Validate the raw ``pipeline`` mapping; every error names ``source`` and the key path."""
    layers = Layers(DEFAULTS, source)
    if raw is not None and not (isinstance(raw, Mapping) or hasattr(raw, "items")):
        raise ConfigError(f"{source}: pipeline: expected object, got {_json_kind(raw)}")
    if raw:
        layers.add(source, raw)
    return build_config(layers, environ or {})


def _json_kind(value: object) -> str:
    kinds = {list: "array", tuple: "array", str: "str", bool: "bool", int: "int", float: "float"}
    return kinds.get(type(value), type(value).__name__)


def build_config(layers: Layers, environ: Mapping[str, str]) -> PipelineConfig:
    """Validate merged levels and ``INVOKE_PIPELINE_*`` variables; errors name where a key was set."""
    layers.apply_environ(environ, PipelineConfig)
    data = layers.data
    _raise(layers, list(check_values(data)))
    # Each environment on its own, so that an error names it (msgspec says `[...]` for dict keys).
    environments = data.get("environments")
    if isinstance(environments, dict):
        data = {**data, "environments": {}}
    try:
        config = msgspec.convert(data, PipelineConfig)
    except msgspec.ValidationError as exc:
        raise _error(layers, [_describe(str(exc))]) from None
    if isinstance(environments, dict):
        config = msgspec.structs.replace(config, environments=_environments(environments, layers))
    _raise(layers, _semantic_problems(config))
    return config


def _raise(layers: Layers, problems: list[str]) -> None:
    """Raise the problems, if any, as one error."""
    if problems:
        raise _error(layers, problems)


def _error(layers: Layers, problems: list[str]) -> ConfigError:
    """One ConfigError whose lines each start with the file or variable that set the key."""
    return ConfigError("\n".join(f"{layers.source_of(_key_path(p))}: {p}" for p in problems))


def _key_path(problem: str) -> tuple[str, ...]:
    match = re.match(r"pipeline((?:\.[^.:\[\s]+)*)", problem)
    return tuple(match[1].split(".")[1:]) if match else ()


def _environments(raw: dict[str, Any], layers: Layers) -> dict[str, Environment]:
    converted: dict[str, Environment] = {}
    for name, value in raw.items():
        kind = target_of(value)
        if kind is None:
            found = value.get("target") if isinstance(value, dict) else None
            got = "nothing" if found is None else repr(found)
            problem = f"pipeline.environments.{name}.target: got {got}; expected one of {', '.join(TARGETS)}"
            raise _error(layers, [problem])
        try:
            converted[name] = msgspec.convert(value, kind)
        except msgspec.ValidationError as exc:
            raise _error(layers, [_describe(str(exc), f".environments.{name}", kind)]) from None
    return converted


def target_of(value: object) -> type[ComposeEnvironment] | type[HelmEnvironment] | None:
    """The environment's type, by its ``target`` key."""
    target = value.get("target") if isinstance(value, dict) else None
    return TARGETS.get(target) if isinstance(target, str) else None


_AT = re.compile(r"^(?P<msg>.*) - at `\$(?P<path>[^`]*)`$", re.S)
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<key>[^`]*)`")


def _describe(message: str, prefix: str = "", environment: Any = None) -> str:
    """Turn a msgspec message into ``pipeline.a.b: what is wrong``."""
    match = _AT.match(message)
    msg, path = (match["msg"], match["path"]) if match else (message, "")
    path = prefix + path
    unknown = _UNKNOWN.match(msg)
    if unknown:
        key = unknown["key"]
        struct = _type_at(path, environment)
        known = [f.name for f in msgspec.structs.fields(struct)] if struct is not None else []
        shown = key if key.isprintable() else repr(key)
        return f"pipeline{path}.{shown}: unknown key{_suggest(key, known)} (known: {', '.join(known)})"
    msg = msg.replace("Expected", "expected").replace("`", "")
    choices = get_args(_type_at(path, environment)) if msg.startswith("Invalid enum value") else ()
    if choices:
        msg = f"{msg.replace('Invalid enum value', 'got')}; expected one of {', '.join(choices)}"
    return f"pipeline{path}: {msg}"


def _type_at(path: str, environment: Any = None) -> Any:
    """The declared type at a msgspec path such as ``.environments.prod.hosts[0]`` (an environment
    of the type given, else of whichever target declares the key)."""
    kind: Any = PipelineConfig
    for part in re.findall(r"\.([^.\[]+)|\[\d+\]", path):
        if kind is Environment:
            kind = environment or _declaring(part)
        kind = _unwrap(kind)
        if get_origin(kind) is dict:
            kind = get_args(kind)[1]
        elif get_origin(kind) is tuple:
            kind = get_args(kind)[0]
        elif isinstance(kind, type) and issubclass(kind, msgspec.Struct) and part:
            kind = {f.name: f.type for f in msgspec.structs.fields(kind)}.get(part)
        else:
            return None
    if kind is Environment and environment is not None:
        kind = environment  # the path ends at an environment: its own type, not the union's first
    return _unwrap(kind)


def _declaring(key: str) -> Any:
    """The environment type that declares ``key`` (compose when both or neither do)."""
    for kind in TARGETS.values():
        if key in {f.name for f in msgspec.structs.fields(kind)}:
            return kind
    return ComposeEnvironment


def _unwrap(kind: Any) -> Any:
    """The struct inside ``X | None`` or ``str | X``, else the type itself."""
    if isinstance(kind, types.UnionType) or get_origin(kind) is Union:
        structs = [k for k in get_args(kind) if isinstance(k, type) and issubclass(k, msgspec.Struct)]
        return structs[0] if structs else kind
    return kind


def _suggest(key: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean `{close[0]}`?)" if close else ""


# What git accepts in a ref name, kept stricter: no leading dash, no "..", no shell characters.
_REF = re.compile(r"(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/+-]+(?<![./])\Z")
_TYPE = re.compile(r"[a-z][a-z0-9-]*\Z")


def _semantic_problems(config: PipelineConfig) -> list[str]:
    """What types alone cannot say: names that must be safe and commands that must parse."""
    problems: list[str] = []
    checklist = config.checklist
    for key in ("version_file", "changelog"):
        path = getattr(checklist, key)
        parts = path.replace("\\", "/").split("/")
        if not path or path.startswith(("/", "~")) or ".." in parts or ":" in parts[0]:
            problems.append(f"pipeline.checklist.{key}: {path!r} must be a path inside the project")
    for i, branch in enumerate(checklist.branches):
        if not _REF.match(branch.replace("*", "x")):
            problems.append(f"pipeline.checklist.branches[{i}]: {branch!r} is not a branch name")
    if checklist.tag_prefix and not _REF.match(checklist.tag_prefix + "x"):
        problems.append(f"pipeline.checklist.tag_prefix: {checklist.tag_prefix!r} cannot start a tag name")
    if checklist.commits_from and not _REF.match(checklist.commits_from.replace("~", "")):
        problems.append(f"pipeline.checklist.commits_from: {checklist.commits_from!r} is not a ref")
    if not checklist.types and checklist.convention == "conventional":
        problems.append("pipeline.checklist.types: must list at least one commit type")
    for i, kind in enumerate(checklist.types):
        if not _TYPE.match(kind):
            problems.append(f"pipeline.checklist.types[{i}]: {kind!r} is not a lowercase word")
    if not _REF.match(config.release.remote):
        problems.append(f"pipeline.release.remote: {config.release.remote!r} is not a remote name")
    for key in ("commit_message", "tag_message"):
        template = getattr(config.release, key)
        try:
            template.format(tag="v0", version="0")
        except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
            problems.append(f"pipeline.release.{key}: {template!r} is not a valid template ({exc})")
    for name, environment in config.environments.items():
        if isinstance(environment, HelmEnvironment):
            problems.extend(helm_problems(name, environment))
        else:
            problems.extend(environment_problems(name, environment))
    for stage in ("lint", "test"):
        for i, command in enumerate(getattr(config, stage)):
            try:
                argv = shlex.split(command)
            except ValueError as exc:
                problems.append(f"pipeline.{stage}[{i}]: {command!r} cannot be parsed ({exc})")
                continue
            if not argv:
                problems.append(f"pipeline.{stage}[{i}]: the command is empty")
    return problems
