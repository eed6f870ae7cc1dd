"""The ``environments`` part of the configuration: servers, migrations, health checks, notify."""

from __future__ import annotations

import re
import shlex
from typing import Any, Literal

import msgspec

from pipeline.backups import BackupConfig, backup_problems


class Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A configuration section: immutable, and unknown keys are errors."""


class HostConfig(Section, frozen=True):
    """A server: ``[user@]host[:port]``, with its own app path when it differs."""

    address: str
    path: str = ""


class SshConfig(Section, frozen=True):
    """How the OpenSSH client reaches the servers; the key comes from the agent unless named."""

    identity_file: str = ""
    known_hosts: str = ""
    config_file: str = ""
    strict_host_key_checking: bool = True
    connect_timeout: int = 10
    control_persist: int = 60
    keepalive: int = 5  # seconds between keepalives; three missed ones end a dead link


class MigrateConfig(Section, frozen=True):
    """Migrations: commands run in a compose service, once for a shared database or on every host."""

    service: str
    command: str = "alembic upgrade head"
    current: str = "alembic current"
    downgrade: str = "alembic downgrade {revision}"
    heads: str = "alembic heads"
    run: Literal["exec", "run"] = "exec"
    database: Literal["shared", "per_host"] = "shared"
    host: int = 0  # where a shared database is migrated from


class HealthCheckConfig(Section, frozen=True):
    """One health check: ``http`` from the runner, ``command`` in a ``service``, or ``compose``."""

    http: str = ""
    service: str = ""
    command: str = ""
    compose: bool = False
    status: int = 200
    contains: str = ""
    expect_version: bool = False
    interval: float = 1.0
    timeout: float = 5.0
    attempts: int = 30
    deadline: float = 120.0

    @property
    def kind(self) -> str:
        """``http``, ``command`` or ``compose``."""
        return "http" if self.http else "command" if self.command else "compose"


class SlackConfig(Section, frozen=True):
    """Slack incoming webhook; the URL is a secret read from an environment variable."""

    webhook_env: str


class TelegramConfig(Section, frozen=True):
    """Telegram bot message; token and chat id read from environment variables."""

    token_env: str
    chat_env: str
    api_url: str = "https://api.telegram.org"


class WebhookConfig(Section, frozen=True):
    """A JSON POST of the run report to a URL read from an environment variable."""

    url_env: str


class NotifyConfig(Section, frozen=True):
    """One notification channel: exactly one of ``slack``, ``telegram``, ``webhook``; tried at most
    ``attempts`` times within ``budget`` seconds."""

    slack: SlackConfig | None = None
    telegram: TelegramConfig | None = None
    webhook: WebhookConfig | None = None
    attempts: int = 3
    budget: float = 20.0


class DeadlinesConfig(Section, frozen=True):
    """Seconds each stage may take on a host; a command still running then is stopped."""

    read: float = 30.0
    lock: float = 30.0
    deploy: float = 900.0
    migrate: float = 600.0
    health: float = 600.0
    evidence: float = 30.0
    restore: float = 600.0
    backup: float = 1800.0  # `invoke backup` and `invoke restore` (in a deploy: the migrate stage's)
    record: float = 30.0
    prune: float = 600.0  # removing old images and release files on a host (`invoke prune`)
    cancel_grace: float = 2.0  # how long a signal lets the step in flight run on


class PruneConfig(Section, frozen=True):
    """What ``invoke prune`` keeps besides the serving release: the last ``keep`` healthy everywhere."""

    keep: int = 3


class DiskConfig(Section, frozen=True):
    """When ``invoke status`` warns about a host's disk: at or past ``warn_percent`` used."""

    warn_percent: float = 85.0


class ComposeEnvironment(Section, frozen=True, tag_field="target", tag="compose"):
    """An environment deployed with ``docker compose`` over SSH."""

    hosts: tuple[str | HostConfig, ...]
    path: str
    compose_file: str = "compose.yaml"
    project: str = ""
    source: Literal["git", "image"] = "git"
    repository: str = ""
    version_variable: str = "APP_VERSION"
    ssh: SshConfig = SshConfig()
    migrate: MigrateConfig | None = None
    backup: BackupConfig | None = None  # a dump before each migration that changes the schema
    health: tuple[HealthCheckConfig, ...] = ()
    notify: tuple[NotifyConfig, ...] = ()
    preflight: bool = True
    strategy: Literal["parallel", "rolling"] = "parallel"
    batch_size: int = 1
    max_failed_hosts: int = 0
    deadlines: DeadlinesConfig = DeadlinesConfig()
    state_dir: str = ""  # journal, lock and release files; default: beside path, outside its build context
    env_file: str = ".env"  # what `invoke setenv` changes, relative to path (compose reads path/.env)
    prune: PruneConfig = PruneConfig()
    disk: DiskConfig = DiskConfig()

    def host_list(self) -> tuple[HostConfig, ...]:
        """Every host as a HostConfig with its app path filled in."""
        return tuple(
            HostConfig(address=h, path=self.path)
            if isinstance(h, str)
            else HostConfig(address=h.address, path=h.path or self.path)
            for h in self.hosts
        )


_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")
_SERVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ADDRESS = re.compile(
    r"(?:(?P<user>[a-z_][a-z0-9_.-]*)@)?"
    r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?\Z"
)
_PATH = re.compile(r"/[A-Za-z0-9._/@+-]*\Z")
_RELATIVE = re.compile(r"(?!/)(?!.*\.\.)[A-Za-z0-9._/@+-]+\Z")


def name_problems(name: str) -> list[str]:
    """An environment's name, of any target: it becomes ``--env NAME`` and a variable's name."""
    if _NAME.match(name):
        return []
    return [f"pipeline.environments.{name}: the name must be lowercase letters, digits, - or _"]


def environment_problems(name: str, env: ComposeEnvironment) -> list[str]:
    """Names, hosts, paths and commands of one environment that would be unsafe or cannot work."""
    at = f"pipeline.environments.{name}"
    problems = name_problems(name)
    if not env.hosts:
        problems.append(f"{at}.hosts: list at least one host")
    if not _PATH.match(env.path):
        problems.append(f"{at}.path: {env.path!r} must be an absolute path of plain characters")
    for i, host in enumerate(env.host_list()):
        address = _ADDRESS.match(host.address)
        if not address or not 1 <= int(address["port"] or 22) <= 65535:
            problems.append(f"{at}.hosts[{i}]: {host.address!r} is not [user@]host[:port]")
        if host.path != env.path and not _PATH.match(host.path):
            problems.append(
                f"{at}.hosts[{i}].path: {host.path!r} must be an absolute path of plain characters"
            )
    if not _RELATIVE.match(env.compose_file):
        problems.append(f"{at}.compose_file: {env.compose_file!r} must be a path inside the project")
    if not _RELATIVE.match(env.env_file) or env.env_file.endswith("/"):
        problems.append(f"{at}.env_file: {env.env_file!r} must be a file's path inside the project")
    if env.project and not _NAME.match(env.project):
        problems.append(f"{at}.project: {env.project!r} is not a compose project name")
    if not _VARIABLE.match(env.version_variable):
        problems.append(f"{at}.version_variable: {env.version_variable!r} is not a variable name")
    if env.repository and (env.repository.startswith("-") or any(c.isspace() for c in env.repository)):
        problems.append(f"{at}.repository: {env.repository!r} is not a git URL")
    if env.state_dir and (not _PATH.match(env.state_dir) or _inside(env.state_dir, env.path)):
        problems.append(f"{at}.state_dir: {env.state_dir!r} must be an absolute path outside path")
    problems.extend(_fleet_problems(at, env))
    if not 1 <= env.prune.keep <= 1000:
        problems.append(f"{at}.prune.keep: {env.prune.keep} must be between 1 and 1000")
    if not 1 <= env.disk.warn_percent <= 100:
        problems.append(f"{at}.disk.warn_percent: {env.disk.warn_percent:g} must be between 1 and 100")
    if env.migrate is not None:
        problems.extend(_migrate_problems(f"{at}.migrate", env.migrate, len(env.hosts)))
    if env.backup is not None:
        problems.extend(backup_problems(f"{at}.backup", env.backup))
    for i, check in enumerate(env.health):
        problems.extend(_health_problems(f"{at}.health[{i}]", check))
    for i, channel in enumerate(env.notify):
        problems.extend(notify_problems(f"{at}.notify[{i}]", channel))
    return problems


def _inside(path: str, parent: str) -> bool:
    return path.rstrip("/") == parent.rstrip("/") or path.startswith(parent.rstrip("/") + "/")


def _fleet_problems(at: str, env: ComposeEnvironment) -> list[str]:
    """Strategy, tolerance, deadlines and ssh numbers within their ranges."""
    problems = []
    if not 1 <= env.batch_size <= 1000:
        problems.append(f"{at}.batch_size: {env.batch_size} must be between 1 and 1000")
    if not 0 <= env.max_failed_hosts < max(len(env.hosts), 1):
        problems.append(
            f"{at}.max_failed_hosts: {env.max_failed_hosts} must be 0 or more, and fewer than the hosts"
        )
    for field in msgspec.structs.fields(DeadlinesConfig):
        value = getattr(env.deadlines, field.name)
        if not 0 < value <= 86400 or value != value:
            problems.append(
                f"{at}.deadlines.{field.name}: {value} must be more than 0 and at most 86400 seconds"
            )
    for key, low, high in (("connect_timeout", 1, 300), ("keepalive", 1, 300), ("control_persist", 1, 3600)):
        value = getattr(env.ssh, key)
        if not low <= value <= high:
            problems.append(f"{at}.ssh.{key}: {value} must be between {low} and {high}")
    return problems


def command_problems(at: str, command: str) -> list[str]:
    try:
        return [] if shlex.split(command) else [f"{at}: the command is empty"]
    except ValueError as exc:
        return [f"{at}: {command!r} cannot be parsed ({exc})"]


def _migrate_problems(at: str, migrate: MigrateConfig, hosts: int) -> list[str]:
    problems = []
    if not _SERVICE.match(migrate.service):
        problems.append(f"{at}.service: {migrate.service!r} is not a service name")
    for key in ("command", "current", "downgrade", "heads"):
        problems.extend(command_problems(f"{at}.{key}", getattr(migrate, key)))
    if "{revision}" not in migrate.downgrade:
        problems.append(f"{at}.downgrade: must contain {{revision}}, the revision to go back to")
    if not 0 <= migrate.host < max(hosts, 1):
        problems.append(f"{at}.host: {migrate.host} is not an index into hosts")
    return problems


def _health_problems(at: str, check: HealthCheckConfig) -> list[str]:
    kinds = [
        k for k, on in (("http", check.http), ("command", check.command), ("compose", check.compose)) if on
    ]
    if len(kinds) != 1:
        return [f"{at}: give exactly one of http, command (with service) or compose"]
    problems = []
    if check.http and not re.match(r"https?://[^\s]+\Z", check.http):
        problems.append(f"{at}.http: {check.http!r} is not an http:// or https:// URL")
    if check.command:
        problems.extend(command_problems(f"{at}.command", check.command))
        if not _SERVICE.match(check.service):
            problems.append(f"{at}.service: {check.service!r} is not a service name")
    return problems + retry_problems(at, check)


def retry_problems(at: str, check: Any) -> list[str]:
    """An HTTP status and a retry policy (attempts, interval, timeout, deadline) within their ranges."""
    problems = []
    if not 100 <= check.status <= 599:
        problems.append(f"{at}.status: {check.status} is not an HTTP status")
    for key, low, high, unit in (
        ("attempts", 1, 10_000, ""),
        ("interval", 0, 3600, " seconds"),
        ("timeout", 0.1, 3600, " seconds"),
        ("deadline", 0.1, 86400, " seconds"),
    ):
        value = getattr(check, key)
        if not low <= value <= high:
            problems.append(f"{at}.{key}: {value} must be between {low} and {high}{unit}")
    return problems


def notify_problems(at: str, channel: NotifyConfig) -> list[str]:
    chosen = [(name, getattr(channel, name)) for name in ("slack", "telegram", "webhook")]
    chosen = [(name, value) for name, value in chosen if value is not None]
    if len(chosen) != 1:
        return [f"{at}: give exactly one of slack, telegram or webhook"]
    name, settings = chosen[0]
    problems = []
    if not 1 <= channel.attempts <= 10:
        problems.append(f"{at}.attempts: {channel.attempts} must be between 1 and 10")
    if not 1 <= channel.budget <= 300:
        problems.append(f"{at}.budget: {channel.budget:g} must be between 1 and 300 seconds")
    for field in msgspec.structs.fields(type(settings)):
        value = getattr(settings, field.name)
        if field.name.endswith("_env") and not _VARIABLE.match(value):
            problems.append(f"{at}.{name}.{field.name}: {value!r} is not an environment variable name")
        if field.name.endswith("_url") and not re.match(r"https?://[^\s/]+[^\s]*\Z", value):
            problems.append(f"{at}.{name}.{field.name}: {value!r} is not an http:// or https:// URL")
    return problems
