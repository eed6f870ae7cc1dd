"""The ``target: helm`` environment through ``load_config``: what loads, and errors naming the key path."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.config import load_config
from pipeline.errors import ConfigError, ExitCode
from pipeline.helmconfig import HelmEnvironment

AT = "invoke.yaml: pipeline.environments.k8s"
NOT_RELEASE = "is not a Helm release name (lowercase letters, digits and -, at most 53 characters)"
NOT_INSIDE = "must be a folder inside the project, or repo/chart"
UNPINNED = "chart_version: a repository chart needs its version pinned"
ONE_CHECK = "health[0]: give exactly one of http (a URL) or service (name:port, through the API server)"
NOT_WORKLOAD = "is not Deployment/NAME, StatefulSet/NAME or DaemonSet/NAME"
NOT_KEY = "is not a values key such as image.tag"
HELM_KEYS = (
    "release, chart, namespace, chart_version, repository, values, version_key, kube_context, kubeconfig, "
    "helm, history_max, lock_lease, create_namespace, rollout, migrate, health, notify, preflight, deadlines"
)


def environment(environ: dict[str, str] | None = None, name: str = "k8s", **settings: Any) -> HelmEnvironment:
    raw = {"target": "helm", "release": "app", "chart": "chart", **settings}
    env = load_config({"environments": {name: raw}}, "invoke.yaml", environ).environments[name]
    assert isinstance(env, HelmEnvironment)
    return env


def problems(environ: dict[str, str] | None = None, name: str = "k8s", **settings: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        environment(environ, name, **settings)
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    return str(caught.value).splitlines()


def test_a_minimal_helm_environment_loads_with_safe_defaults() -> None:
    env = environment()
    assert (env.release, env.chart, env.namespace, env.version_key, env.helm) == (
        "app", "chart", "default", "image.tag", "helm",
    )  # fmt: skip
    assert (env.chart_version, env.repository, env.values, env.kube_context, env.kubeconfig) == (
        "",
        "",
        (),
        "",
        "",
    )
    assert (env.history_max, env.create_namespace, env.rollout, env.migrate, env.health) == (
        10, False, "watch", None, (),
    )  # fmt: skip
    assert env.local_chart and env.deadlines.deploy == 900.0


@pytest.mark.parametrize(
    "settings",
    [
        {"chart": "deploy/charts/app"},
        {"chart": "./deploy/chart"},
        {"chart": "bitnami/nginx", "chart_version": "15.4.0"},
        {"chart": "nginx", "repository": "https://charts.example.com", "chart_version": "15.4.0"},
        {"chart": "oci://registry.example.com/charts/app", "chart_version": "0.4.0"},
        {"release": "a" * 53, "namespace": "team-a-prod"},
        {"migrate": {"workload": "StatefulSet/worker", "container": "app"}},
        {"health": [{"service": "web:8080", "path": "/health"}, {"http": "https://app.example.com/"}]},
    ],
)
def test_well_formed_helm_settings_load(settings: dict[str, Any]) -> None:
    environment(**settings)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"release": "App"}, f"release: 'App' {NOT_RELEASE}"),
        ({"release": "a" * 54}, f"release: {'a' * 54!r} {NOT_RELEASE}"),
        ({"release": "-app"}, f"release: '-app' {NOT_RELEASE}"),
        ({"namespace": "Prod_1"}, "namespace: 'Prod_1' is not a Kubernetes namespace name"),
        ({"namespace": "a" * 64}, f"namespace: {'a' * 64!r} is not a Kubernetes namespace name"),
        ({"chart": ""}, "chart: name the chart (a folder of the repository, or repo/chart)"),
        ({"chart": "../chart"}, f"chart: '../chart' {NOT_INSIDE}"),
        ({"chart": "deploy/../../chart"}, f"chart: 'deploy/../../chart' {NOT_INSIDE}"),
        ({"chart": "/srv/charts/app"}, f"chart: '/srv/charts/app' {NOT_INSIDE}"),
        ({"chart": "nginx", "repository": "https://charts.example.com"}, UNPINNED),
        ({"chart": "oci://registry.example.com/charts/app"}, UNPINNED),
        ({"chart": "bitnami/nginx"},
         f"{UNPINNED} ('bitnami/nginx' reads as repo/chart; "
         "write ./bitnami/nginx for a folder of the repository)"),
        ({"chart": "nginx", "chart_version": "1.0", "repository": "ftp://charts.example.com"},
         "repository: 'ftp://charts.example.com' is not an http(s):// or oci:// URL"),
        ({"values": ["values.yaml", "../secrets.yaml"]},
         "values[1]: '../secrets.yaml' must be a file inside the project"),
        ({"version_key": "image tag"}, f"version_key: 'image tag' {NOT_KEY}"),
        ({"version_key": "image..tag"}, f"version_key: 'image..tag' {NOT_KEY}"),
        ({"version_key": "image.tag,replicas=0"}, f"version_key: 'image.tag,replicas=0' {NOT_KEY}"),
        ({"kube_context": "-ctx"}, "kube_context: '-ctx' is not a context name"),
        ({"helm": "--help"}, "helm: '--help' is not a program name or path"),
        ({"history_max": 0}, "history_max: 0 must be between 1 and 1000"),
        ({"health": [{"http": "https://app.example.com", "service": "web:80"}]}, ONE_CHECK),
        ({"health": [{"path": "/health"}]}, ONE_CHECK),
        ({"health": [{"service": "web"}]}, "health[0].service: 'web' is not name:port of a Service"),
        ({"health": [{"service": "web:80:90"}]},
         "health[0].service: 'web:80:90' is not name:port of a Service"),
        ({"migrate": {"workload": "web"}}, f"migrate.workload: 'web' {NOT_WORKLOAD}"),
        ({"migrate": {"workload": "Job/migrate"}}, f"migrate.workload: 'Job/migrate' {NOT_WORKLOAD}"),
        ({"migrate": {"downgrade": "alembic downgrade -1"}},
         "migrate.downgrade: must contain {revision}, the revision to go back to"),
        ({"rollout": "helm-wait"}, "rollout: got 'helm-wait'; expected one of watch"),
    ],
)  # fmt: skip
def test_unsafe_or_unusable_helm_settings_are_named_by_file_and_key_path(
    settings: dict[str, Any], message: str
) -> None:
    assert problems(**settings) == [f"{AT}.{message}"]


def test_every_problem_of_a_helm_environment_is_reported_at_once() -> None:
    assert problems(release="App", namespace="x_y", version_key="a b") == [
        f"{AT}.release: 'App' {NOT_RELEASE}",
        f"{AT}.namespace: 'x_y' is not a Kubernetes namespace name",
        f"{AT}.version_key: 'a b' is not a values key such as image.tag",
    ]


def test_a_helm_environment_name_follows_the_same_rule_as_any_environment() -> None:
    assert problems(name="Prod env") == [
        "invoke.yaml: pipeline.environments.Prod env: the name must be lowercase letters, digits, - or _"
    ]


def test_an_unknown_key_in_a_helm_environment_suggests_from_helms_own_keys() -> None:
    assert problems(namspace="prod") == [
        f"{AT}.namspace: unknown key (did you mean `namespace`?) (known: {HELM_KEYS})"
    ]
    assert problems(hosts=["web1"]) == [f"{AT}.hosts: unknown key (known: {HELM_KEYS})"]
    assert problems(migrate={"wrkload": "Deployment/web"}) == [
        f"{AT}.migrate.wrkload: unknown key (did you mean `workload`?) "
        "(known: run, workload, container, command, current, downgrade, heads)"
    ]


def test_a_wrong_type_in_a_helm_environment_names_its_key() -> None:
    assert problems(history_max="ten") == [f"{AT}.history_max: expected int, got str"]
    assert problems(release=None) == [f"{AT}.release: expected str, got null"]


def test_an_unknown_target_names_the_targets_there_are() -> None:
    assert problems(target="k8s") == [f"{AT}.target: got 'k8s'; expected one of compose, helm"]


def test_environment_variables_reach_a_helm_environment() -> None:
    env = environment(
        {
            "INVOKE_PIPELINE_ENVIRONMENTS_K8S_NAMESPACE": "prod",
            "INVOKE_PIPELINE_ENVIRONMENTS_K8S_HISTORY_MAX": "25",
            "INVOKE_PIPELINE_ENVIRONMENTS_K8S_CREATE_NAMESPACE": "true",
        }
    )
    assert (env.namespace, env.history_max, env.create_namespace) == ("prod", 25, True)


def test_an_environment_variable_that_cannot_be_a_helm_setting_is_refused() -> None:
    assert problems({"INVOKE_PIPELINE_ENVIRONMENTS_K8S_HISTORY_MAX": "abc"}) == [
        "INVOKE_PIPELINE_ENVIRONMENTS_K8S_HISTORY_MAX: pipeline.environments.k8s.history_max: "
        "'abc' is not a whole number"
    ]
    assert problems({"INVOKE_PIPELINE_ENVIRONMENTS_K8S_NAMESPACE": "Prod"}) == [
        "INVOKE_PIPELINE_ENVIRONMENTS_K8S_NAMESPACE: pipeline.environments.k8s.namespace: "
        "'Prod' is not a Kubernetes namespace name"
    ]
    (line,) = problems({"INVOKE_PIPELINE_ENVIRONMENTS_K8S_PATH": "/srv/app"})
    assert line.startswith("INVOKE_PIPELINE_ENVIRONMENTS_K8S_PATH: no such setting")


@pytest.mark.parametrize("version", ["1.2.3", "^15.0.0", "~1.2", ">=1.0.0 <2.0.0", "1.x"])
def test_a_repository_chart_takes_a_version_or_a_semver_range(version: str) -> None:
    assert environment(chart="bitnami/nginx", chart_version=version).chart_version == version


@pytest.mark.parametrize("version", ["1.0; rm -rf /", "$(id)", "1.0\n2.0"])
def test_a_chart_version_with_shell_or_control_characters_is_refused(version: str) -> None:
    found = problems(chart="bitnami/nginx", chart_version=version)
    assert any("chart_version" in line for line in found), found
