"""The ``environments`` configuration: what is accepted, and errors that name the key path."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.config import load_config
from pipeline.environments import ComposeEnvironment, HostConfig, MigrateConfig
from pipeline.errors import ConfigError, ExitCode

AT = "invoke.yaml: pipeline.environments.prod"


def environment(name: str = "prod", **settings: Any) -> ComposeEnvironment:
    raw = {"target": "compose", "hosts": ["web1"], "path": "/srv/app", **settings}
    return load_config({"environments": {name: raw}}).environments[name]


def problems(name: str = "prod", **settings: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        environment(name, **settings)
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    return str(caught.value).splitlines()


def test_a_minimal_environment_gets_its_defaults() -> None:
    env = environment()
    assert (env.compose_file, env.project, env.source, env.version_variable) == (
        "compose.yaml",
        "",
        "git",
        "APP_VERSION",
    )
    assert (env.migrate, env.health, env.notify, env.preflight) == (None, (), (), True)
    assert env.ssh.strict_host_key_checking and env.ssh.connect_timeout == 10


@pytest.mark.parametrize(
    "address",
    [
        "web1",
        "web-1.example.com",
        "10.0.0.5",
        "deploy@web1",
        "deploy@web1:2222",
        "[::1]",
        "[::1]:2222",
        "_ci.bot@h:22",
    ],
)
def test_host_addresses_of_the_form_user_at_host_colon_port_are_accepted(address: str) -> None:
    assert environment(hosts=[address]).host_list() == (HostConfig(address=address, path="/srv/app"),)


def test_host_list_fills_in_the_environment_path_for_strings_and_hosts_without_their_own() -> None:
    env = environment(
        hosts=["web1", {"address": "web2"}, {"address": "deploy@web3:2222", "path": "/opt/app"}]
    )
    assert env.host_list() == (
        HostConfig(address="web1", path="/srv/app"),
        HostConfig(address="web2", path="/srv/app"),
        HostConfig(address="deploy@web3:2222", path="/opt/app"),
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"hosts": ["host; rm -rf /"]}, "hosts[0]: 'host; rm -rf /' is not [user@]host[:port]"),
        ({"hosts": ["web1", "-oProxyCommand=x"]}, "hosts[1]: '-oProxyCommand=x' is not [user@]host[:port]"),
        ({"hosts": ["Root@web1"]}, "hosts[0]: 'Root@web1' is not [user@]host[:port]"),
        ({"hosts": ["::1"]}, "hosts[0]: '::1' is not [user@]host[:port]"),
        ({"hosts": []}, "hosts: list at least one host"),
        (
            {"hosts": [{"address": "web1", "path": "srv"}]},
            "hosts[0].path: 'srv' must be an absolute path of plain characters",
        ),
        ({"path": "srv/app"}, "path: 'srv/app' must be an absolute path of plain characters"),
        ({"path": "/srv/my app"}, "path: '/srv/my app' must be an absolute path of plain characters"),
        ({"path": "/srv/$(id)"}, "path: '/srv/$(id)' must be an absolute path of plain characters"),
        (
            {"compose_file": "../compose.yaml"},
            "compose_file: '../compose.yaml' must be a path inside the project",
        ),
        (
            {"compose_file": "/etc/compose.yaml"},
            "compose_file: '/etc/compose.yaml' must be a path inside the project",
        ),
        ({"project": "My_App"}, "project: 'My_App' is not a compose project name"),
        ({"project": "-p"}, "project: '-p' is not a compose project name"),
        ({"version_variable": "APP-VERSION"}, "version_variable: 'APP-VERSION' is not a variable name"),
        ({"repository": "--upload-pack=x"}, "repository: '--upload-pack=x' is not a git URL"),
        ({"repository": "git@h:a b.git"}, "repository: 'git@h:a b.git' is not a git URL"),
    ],
)
def test_unsafe_or_unusable_environment_settings_are_named_by_their_key_path(
    settings: dict[str, Any], message: str
) -> None:
    assert problems(**settings) == [f"{AT}.{message}"]


@pytest.mark.parametrize(
    ("migrate", "message"),
    [
        ({"service": "web; id"}, "migrate.service: 'web; id' is not a service name"),
        (
            {"service": "web", "downgrade": "alembic downgrade -1"},
            "migrate.downgrade: must contain {revision}, the revision to go back to",
        ),
        ({"service": "web", "host": 1}, "migrate.host: 1 is not an index into hosts"),
        ({"service": "web", "host": -1}, "migrate.host: -1 is not an index into hosts"),
        (
            {"service": "web", "command": "alembic 'upgrade"},
            'migrate.command: "alembic \'upgrade" cannot be parsed (No closing quotation)',
        ),
        ({"service": "web", "current": "  "}, "migrate.current: the command is empty"),
        ({"service": "web", "run": "spawn"}, "migrate.run: got 'spawn'; expected one of exec, run"),
    ],
)
def test_migrate_settings_are_checked(migrate: dict[str, Any], message: str) -> None:
    assert problems(migrate=migrate) == [f"{AT}.{message}"]


def test_migrate_defaults_to_alembic_in_the_running_service_on_the_first_host() -> None:
    assert environment(hosts=["a", "b"], migrate={"service": "web", "host": 1}).migrate == MigrateConfig(
        service="web", command="alembic upgrade head", current="alembic current",
        downgrade="alembic downgrade {revision}", run="exec", host=1,
    )  # fmt: skip


EXACTLY_ONE = "give exactly one of http, command (with service) or compose"


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ({}, f"health[0]: {EXACTLY_ONE}"),
        ({"http": "http://x/health", "compose": True}, f"health[0]: {EXACTLY_ONE}"),
        ({"http": "http://x/h", "command": "true", "service": "web"}, f"health[0]: {EXACTLY_ONE}"),
        ({"http": "ftp://x/health"}, "health[0].http: 'ftp://x/health' is not an http:// or https:// URL"),
        ({"http": "http://x/a b"}, "health[0].http: 'http://x/a b' is not an http:// or https:// URL"),
        ({"http": "http://x/h", "status": 600}, "health[0].status: 600 is not an HTTP status"),
        ({"http": "http://x/h", "status": 99}, "health[0].status: 99 is not an HTTP status"),
        ({"compose": True, "interval": -1}, "health[0].interval: -1.0 must be between 0 and 3600 seconds"),
        (
            {"compose": True, "timeout": 1e9},
            "health[0].timeout: 1000000000.0 must be between 0.1 and 3600 seconds",
        ),
        (
            {"compose": True, "attempts": 0},
            "health[0].attempts: 0 must be between 1 and 10000",
        ),
        ({"command": "curl -f localhost"}, "health[0].service: '' is not a service name"),
        (
            {"command": "curl 'x", "service": "web"},
            'health[0].command: "curl \'x" cannot be parsed (No closing quotation)',
        ),
    ],
)
def test_each_health_check_is_exactly_one_kind_with_sane_limits(check: dict[str, Any], message: str) -> None:
    assert problems(health=[check]) == [f"{AT}.{message}"]


def test_the_three_kinds_of_health_check_are_accepted() -> None:
    checks = [{"http": "http://{host}:8000/health"}, {"command": "true", "service": "web"}, {"compose": True}]
    assert [c.kind for c in environment(health=checks).health] == ["http", "command", "compose"]


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ({}, "notify[0]: give exactly one of slack, telegram or webhook"),
        (
            {"slack": {"webhook_env": "S"}, "webhook": {"url_env": "W"}},
            "notify[0]: give exactly one of slack, telegram or webhook",
        ),
    ],
)
def test_each_notify_entry_is_exactly_one_channel(channel: dict[str, Any], message: str) -> None:
    assert problems(notify=[channel]) == [f"{AT}.{message}"]


@pytest.mark.parametrize(
    ("channel", "key", "value"),
    [("slack", "webhook_env", "1BAD"), ("telegram", "token_env", "TG-TOKEN"), ("webhook", "url_env", "$URL")],
)
def test_an_environment_variable_name_is_checked_under_its_channel_key(
    channel: str, key: str, value: str
) -> None:
    settings = {key: value, **({"chat_env": "TG_CHAT"} if channel == "telegram" else {})}
    assert problems(notify=[{channel: settings}]) == [
        f"{AT}.notify[0].{channel}.{key}: {value!r} is not an environment variable name"
    ]


@pytest.mark.parametrize("name", ["Prod", "prod env", "-prod", "prød"])
def test_an_environment_name_must_be_lowercase_letters_digits_dash_or_underscore(name: str) -> None:
    assert problems(name) == [
        f"invoke.yaml: pipeline.environments.{name}: the name must be lowercase letters, digits, - or _"
    ]


def test_type_errors_and_unknown_keys_name_the_environment_and_key() -> None:
    assert problems(hosts=[123]) == [f"{AT}.hosts[0]: expected str | object, got int"]
    assert problems(notify=[{"slack": {}}]) == [
        f"{AT}.notify[0].slack: Object missing required field webhook_env"
    ]
    assert problems(target="k8s") == [f"{AT}.target: got 'k8s'; expected one of compose, helm"]
    assert problems(hosts=[{"address": "web1", "pth": "/x"}]) == [
        f"{AT}.hosts[0].pth: unknown key (did you mean `path`?) (known: address, path)"
    ]


def test_every_problem_of_an_environment_is_reported_at_once() -> None:
    lines = problems(hosts=["web1;"], compose_file="/x", migrate={"service": "web", "host": 3})
    assert lines == [
        f"{AT}.hosts[0]: 'web1;' is not [user@]host[:port]",
        f"{AT}.compose_file: '/x' must be a path inside the project",
        f"{AT}.migrate.host: 3 is not an index into hosts",
    ]


@pytest.mark.parametrize("address", ["web1:0", "web1:70000", "[::1]:99999"])
def test_a_port_outside_the_tcp_range_is_rejected(address: str) -> None:
    assert problems(hosts=[address]) == [f"{AT}.hosts[0]: {address!r} is not [user@]host[:port]"]


@pytest.mark.parametrize("hosts", [["web1", "web2"], []])
def test_a_bad_environment_path_is_reported_exactly_once(hosts: list[str]) -> None:
    lines = problems(hosts=hosts, path="srv/app")
    assert lines.count(f"{AT}.path: 'srv/app' must be an absolute path of plain characters") == 1


def test_fleet_and_database_settings_have_safe_defaults() -> None:
    env = environment(migrate={"service": "api"})
    assert (env.strategy, env.batch_size, env.max_failed_hosts) == ("parallel", 1, 0)
    assert env.migrate is not None and (env.migrate.database, env.migrate.heads) == (
        "shared",
        "alembic heads",
    )
    assert (env.deadlines.migrate, env.deadlines.cancel_grace, env.ssh.keepalive) == (600.0, 2.0, 5)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"batch_size": 0}, f"{AT}.batch_size: 0 must be between 1 and 1000"),
        ({"max_failed_hosts": 1}, f"{AT}.max_failed_hosts: 1 must be 0 or more, and fewer than the hosts"),
        ({"deadlines": {"migrate": -1}}, f"{AT}.deadlines.migrate: -1.0 must be more than 0"),
        (
            {"deadlines": {"health": float("nan")}},
            f"{AT}.deadlines.health: nan is not a number this setting can use",
        ),
        ({"deadlines": {"deploy": 1e9}}, f"{AT}.deadlines.deploy: 1000000000.0 must be more than 0"),
        ({"ssh": {"keepalive": 0}}, f"{AT}.ssh.keepalive: 0 must be between 1 and 300"),
        (
            {"state_dir": "/srv/app/.state"},
            f"{AT}.state_dir: '/srv/app/.state' must be an absolute path outside",
        ),
        ({"state_dir": "relative"}, f"{AT}.state_dir: 'relative' must be an absolute path outside path"),
    ],
)
def test_fleet_deadline_and_state_settings_are_checked_with_their_ranges(
    settings: dict[str, Any], message: str
) -> None:
    assert any(line.startswith(message) for line in problems(**settings)), problems(**settings)


def test_an_unknown_strategy_or_database_topology_names_the_choices() -> None:
    (line,) = problems(strategy="canary")
    assert line == f"{AT}.strategy: got 'canary'; expected one of parallel, rolling"
    (line,) = problems(migrate={"service": "api", "database": "sharded"})
    assert line == f"{AT}.migrate.database: got 'sharded'; expected one of shared, per_host"


def test_a_notify_api_url_must_be_http_so_no_file_or_other_scheme_is_opened() -> None:
    telegram = {"token_env": "T", "chat_env": "C", "api_url": "file:///etc/passwd"}
    assert problems(notify=[{"telegram": telegram}]) == [
        f"{AT}.notify[0].telegram.api_url: 'file:///etc/passwd' is not an http:// or https:// URL"
    ]
