"""What runs on a compose server, as argv compared exactly, and the parsers of what it prints."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pipeline import compose as cmd
from pipeline.compose import Container, Project, parse_ps, parse_revision, shell_command
from pipeline.config import load_config
from pipeline.environments import ComposeEnvironment


def environment(**settings: Any) -> ComposeEnvironment:
    raw = {"target": "compose", "hosts": ["web1"], "path": "/srv/app", **settings}
    return load_config({"environments": {"prod": raw}}).environments["prod"]


GIT = Project.of(environment(), "/srv/app")
IMAGE = Project.of(environment(source="image", compose_file="deploy/compose.prod.yaml"), "/srv/app")
BASE = ("env", "APP_VERSION=2.0.0", "docker", "compose", "--project-directory", "/srv/app")
GIT_BASE = (*BASE, "-f", "/srv/app/compose.yaml", "-p", "app")


def test_the_project_name_is_the_configured_one() -> None:
    project = Project.of(environment(project="shop", version_variable="TAG"), "/srv/app")
    assert project == Project("/srv/app", "compose.yaml", "shop", "TAG", "git", "/srv/app.pipeline/releases")


@pytest.mark.parametrize(
    ("path", "name"),
    [("/srv/app", "app"), ("/srv/My.Shop-2_x", "myshop-2_x"), ("/", "app"), ("/srv/@+", "app")],
)
def test_without_a_configured_name_the_project_is_the_sanitized_directory_name(path: str, name: str) -> None:
    assert Project.of(environment(), path).name == name


@pytest.mark.parametrize("path", ["/srv/_site", "/srv/-site"])
def test_a_derived_project_name_is_a_valid_compose_project_name(path: str) -> None:
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*", Project.of(environment(), path).name)


def test_a_git_release_uses_the_compose_file_in_the_checkout() -> None:
    assert GIT.file_for("2.0.0") == "/srv/app/compose.yaml"


def test_an_image_release_uses_the_compose_file_uploaded_under_its_release_directory() -> None:
    assert IMAGE.release_dir("2.0.0") == "/srv/app.pipeline/releases/2.0.0"
    assert IMAGE.file_for("2.0.0") == "/srv/app.pipeline/releases/2.0.0/compose.prod.yaml"


def test_compose_passes_the_version_in_its_variable_and_names_directory_file_and_project() -> None:
    assert GIT.compose("2.0.0", "config") == (*GIT_BASE, "config")
    assert IMAGE.compose("2.0.0", "config") == (
        *BASE, "-f", "/srv/app.pipeline/releases/2.0.0/compose.prod.yaml", "-p", "app", "config",
    )  # fmt: skip


def test_up_builds_only_when_asked() -> None:
    assert GIT.up("2.0.0", build=True) == (*GIT_BASE, "up", "-d", "--remove-orphans", "--build")
    assert GIT.up("2.0.0", build=False) == (*GIT_BASE, "up", "-d", "--remove-orphans")


def test_pull_down_logs_and_ps() -> None:
    assert GIT.pull("2.0.0") == (*GIT_BASE, "pull", "--quiet")
    assert GIT.down() == ("docker", "compose", "-p", "app", "down", "--remove-orphans")
    assert GIT.logs("2.0.0", []) == (*GIT_BASE, "logs", "--no-color", "--timestamps", "--tail", "200")
    assert GIT.logs("2.0.0", ["web", "db"], tail=5) == (
        *GIT_BASE, "logs", "--no-color", "--timestamps", "--tail", "5", "web", "db",
    )  # fmt: skip
    assert GIT.ps("2.0.0") == (*GIT_BASE, "ps", "--all", "--format", "json")


def test_in_service_execs_in_the_running_container_or_runs_a_one_off_container() -> None:
    argv = ("alembic", "current")
    assert GIT.in_service("2.0.0", "web", argv, "exec") == (*GIT_BASE, "exec", "-T", "web", *argv)
    assert GIT.in_service("2.0.0", "web", argv, "run") == (
        *GIT_BASE, "run", "--rm", "--no-deps", "-T", "web", *argv,
    )  # fmt: skip


def test_git_builders_work_on_the_app_directory() -> None:
    assert cmd.git_prepare("/srv/app", "git@example.com:acme/app.git") == [
        ("git", "-C", "/srv/app", "init", "--quiet"),
        ("git", "-C", "/srv/app", "config", "remote.origin.url", "git@example.com:acme/app.git"),
        ("git", "-C", "/srv/app", "config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"),
    ]
    assert cmd.git_fetch("/srv/app") == (
        "git",
        "-C",
        "/srv/app",
        "fetch",
        "--quiet",
        "--force",
        "--tags",
        "origin",
    )
    assert cmd.git_checkout("/srv/app", "abc123") == (
        "git", "-C", "/srv/app", "checkout", "--quiet", "--force", "--detach", "abc123",
    )  # fmt: skip


def test_file_and_lock_builders() -> None:
    assert cmd.make_dirs("/a", "/b") == ("mkdir", "-p", "/a", "/b")
    assert cmd.write_file("/a/f") == ("tee", "/a/f")
    assert cmd.drop_lock("/a/lock", "/b/lock") == ("rm", "-rf", "--", "/a/lock", "/b/lock")


def test_the_state_directory_is_beside_the_app_unless_configured() -> None:
    assert cmd.state_dir_of("/srv/app/") == "/srv/app.pipeline"
    assert cmd.state_dir_of("/srv/app", "/var/lib/app") == "/var/lib/app"


@pytest.mark.parametrize(
    ("text", "revision", "argv"),
    [
        ("alembic upgrade head", "", ("alembic", "upgrade", "head")),
        ("alembic downgrade {revision}", "0003", ("alembic", "downgrade", "0003")),
        ("alembic downgrade {revision}", "a b; rm -rf /", ("alembic", "downgrade", "a b; rm -rf /")),
        ("sh -c 'migrate --to {revision}'", "7", ("sh", "-c", "migrate --to 7")),
        ("alembic downgrade {revision}", "", ("alembic", "downgrade", "")),
    ],
)
def test_shell_command_fills_the_revision_after_splitting_so_it_stays_one_word(
    text: str, revision: str, argv: tuple[str, ...]
) -> None:
    assert shell_command(text, revision) == argv


INFO = (
    "INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.\n"
    "INFO  [alembic.runtime.migration] Will assume transactional DDL.\n"
)


@pytest.mark.parametrize(
    ("output", "revision"),
    [
        ("0003 (head)\n", "0003"),
        ("0003\n", "0003"),
        ("", None),
        (INFO, None),
        (INFO + "0003 (head)\n", "0003"),
        ("0004 (head) (effective head)\n", "0004"),
        ("ae1027a6acf (head)\r\n\n", "ae1027a6acf"),
        ("0003 (head)\nWARNING  [alembic] something\n", "0003"),
    ],
)
def test_parse_revision_reads_what_alembic_current_prints(output: str, revision: str | None) -> None:
    assert parse_revision(output) == revision


WEB = '{"Service": "web", "State": "running", "Health": "healthy", "Status": "Up 2 minutes (healthy)"}'
DB = '{"Service": "db", "State": "exited", "Status": "Exited (1) 3 seconds ago"}'
PARSED = [
    Container("web", "running", "healthy", "Up 2 minutes (healthy)"),
    Container("db", "exited", "", "Exited (1) 3 seconds ago"),
]


@pytest.mark.parametrize("output", [f"{WEB}\n{DB}\n", f"[{WEB}, {DB}]", f"  [\n{WEB},\n{DB}\n]\n"])
def test_parse_ps_reads_json_lines_and_a_json_array(output: str) -> None:
    assert parse_ps(output) == PARSED


@pytest.mark.parametrize("output", ["", "  \n", "not json", "[{broken"])
def test_parse_ps_of_no_output_or_garbage_is_no_containers(output: str) -> None:
    assert parse_ps(output) == []


def test_parse_ps_skips_rows_that_are_not_objects() -> None:
    assert parse_ps(f'[{WEB}, 3, "x", null]') == PARSED[:1]


@pytest.mark.parametrize(
    ("state", "health", "ok"),
    [
        ("running", "", True),
        ("running", "healthy", True),
        ("running", "starting", False),
        ("running", "unhealthy", False),
        ("exited", "", False),
        ("restarting", "healthy", False),
    ],
)
def test_a_container_is_ok_when_running_and_healthy_where_it_has_a_healthcheck(
    state: str, health: str, ok: bool
) -> None:
    assert Container("web", state, health, "").ok is ok
