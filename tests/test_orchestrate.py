"""The deploy's preparation on the runner: which release, which stages, which services."""

from __future__ import annotations

from typing import Any

import pytest
from gitrepos import Repo

from pipeline.config import load_config
from pipeline.errors import ConfigError, InputError
from pipeline.executor import LocalExecutor
from pipeline.orchestrate import check_services, resolve_release, validate_skip, without_skipped

COMPOSE = "services:\n  api:\n    build: .\n  worker:\n    image: busybox\n"


def environment(**changes: Any) -> Any:
    env = {"target": "compose", "hosts": ["web1"], "path": "/srv/app", **changes}
    return load_config({"environments": {"prod": env}}).environment("prod")


@pytest.fixture
def app(repo: Repo) -> Repo:
    repo.write("compose.yaml", COMPOSE)
    repo.commit("feat: compose file")
    return repo


def resolve(repo: Repo, version: str | None, **changes: Any) -> Any:
    config = load_config(
        {"environments": {"prod": {"target": "compose", "hosts": ["web1"], "path": "/srv/app", **changes}}}
    )
    env = config.environment("prod")
    return resolve_release(LocalExecutor(), repo.path, config, env, version, "pipeline.environments.prod")


def test_without_a_version_the_release_is_version_at_head(app: Repo) -> None:
    release = resolve(app, None)
    assert (release.version, release.commit, release.compose_text) == ("1.1.0", app.head(), COMPOSE)


@pytest.mark.parametrize("version", ["1.0.0", "v1.0.0"])
def test_a_version_names_its_release_tag_with_or_without_the_prefix(app: Repo, version: str) -> None:
    release = resolve(app, version, compose_file="README.md")
    assert (release.version, release.commit) == ("1.0.0", app.git("rev-parse", "v1.0.0^{commit}"))


def test_an_image_release_has_no_commit_but_carries_its_compose_file(app: Repo) -> None:
    release = resolve(app, None, source="image")
    assert (release.commit, release.compose_text) == (None, COMPOSE)


def test_a_version_without_a_tag_is_an_input_error(app: Repo) -> None:
    with pytest.raises(InputError, match=r"--version: no tag v9.9.9 in this repository"):
        resolve(app, "9.9.9")


def test_a_version_that_is_not_semver_is_an_input_error(app: Repo) -> None:
    with pytest.raises(InputError, match=r"--version: 'latest' is not a semantic version"):
        resolve(app, "latest")


def test_a_compose_file_missing_from_the_release_names_the_key(app: Repo) -> None:
    with pytest.raises(ConfigError, match=r"pipeline.environments.prod.compose_file: deploy.yml is not in"):
        resolve(app, None, compose_file="deploy.yml")


def test_services_named_by_migrate_and_health_must_exist_in_the_compose_file() -> None:
    check_services(environment(migrate={"service": "api"}), "prod", COMPOSE)
    env = environment(health=[{"service": "db", "command": "pg_isready"}])
    with pytest.raises(ConfigError) as caught:
        check_services(env, "prod", COMPOSE)
    assert str(caught.value) == (
        "pipeline.environments.prod.health[0].service: 'db' is not a service of compose.yaml "
        "(services: api, worker)"
    )


def test_a_compose_file_that_is_not_yaml_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"compose\.yaml: not valid YAML"):
        check_services(environment(), "prod", "services: [unclosed\n")


def test_skipping_migrate_or_health_switches_them_off_and_unknown_stages_are_refused() -> None:
    env = environment(migrate={"service": "api"}, health=[{"http": "http://{host}/health"}])
    skipped = without_skipped(env, validate_skip(["migrate", "health"]))
    assert (skipped.migrate, skipped.health) == (None, ())
    assert without_skipped(env, ()) is env
    with pytest.raises(InputError, match="--skip: 'deploy' is not one of preflight, lint, test"):
        validate_skip(["deploy"])
