"""The ``target: helm`` environment: a Helm release in a namespace, and how it is checked and migrated."""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from pipeline.environments import (
    DeadlinesConfig,
    NotifyConfig,
    Section,
    command_problems,
    name_problems,
    notify_problems,
    retry_problems,
)


class HelmMigrateConfig(Section, frozen=True):
    """Migrations in a Job made from a workload of the new release (its image, env and service account),
    or (``run: exec``) in a running pod of that workload."""

    run: Literal["job", "exec"] = "job"
    workload: str = ""  # `Kind/name` in the release whose pod template the Job copies; default its first
    container: str = ""  # the container of that template; default its first
    command: str = "alembic upgrade head"
    current: str = "alembic current"
    downgrade: str = "alembic downgrade {revision}"
    heads: str = "alembic heads"


class HelmHealthCheckConfig(Section, frozen=True):
    """An HTTP check after the rollout: a URL from the runner, or a Service through the API server."""

    http: str = ""  # a URL the runner reaches (an ingress)
    service: str = ""  # `name:port` of a Service, reached through the API server's proxy
    path: str = "/"
    status: int = 200
    contains: str = ""
    expect_version: bool = False
    interval: float = 1.0
    timeout: float = 5.0
    attempts: int = 30
    deadline: float = 120.0

    @property
    def kind(self) -> str:
        """``http`` or ``service``."""
        return "http" if self.http else "service"


class HelmEnvironment(Section, frozen=True, tag_field="target", tag="helm"):
    """An environment deployed with ``helm upgrade --install`` to a Kubernetes namespace."""

    release: str
    chart: str  # a folder in the repository (taken at the release's commit), or `repo/chart`, `oci://...`
    namespace: str = "default"
    chart_version: str = ""  # required for a chart that is not a folder of the repository
    repository: str = ""  # `helm --repo` URL for `chart` named without a repo prefix
    values: tuple[str, ...] = ()  # values files in the repository, taken at the release's commit
    version_key: str = "image.tag"  # set to the version being deployed (`--set-string KEY=VERSION`)
    kube_context: str = ""
    kubeconfig: str = ""  # default: $KUBECONFIG, else ~/.kube/config
    helm: str = "helm"  # the helm binary
    history_max: int = 10
    lock_lease: int = 30  # seconds the lock stays live after the last renewal of a run that died
    create_namespace: bool = False
    rollout: Literal["watch"] = "watch"
    migrate: HelmMigrateConfig | None = None
    health: tuple[HelmHealthCheckConfig, ...] = ()
    notify: tuple[NotifyConfig, ...] = ()
    preflight: bool = True
    deadlines: DeadlinesConfig = DeadlinesConfig()

    @property
    def local_chart(self) -> bool:
        """Whether the chart is a folder of the repository."""
        return not (self.repository or self.chart.startswith("oci://") or _REPO_CHART.match(self.chart))


# DNS-1123 label (namespace), and Helm's release name rule (53 characters, a DNS label).
_NAMESPACE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_RELEASE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,51}[a-z0-9])?\Z")
_REPO_CHART = re.compile(r"[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*\Z")
_CHART_PATH = re.compile(r"(?!/)(?!.*\.\.)[A-Za-z0-9._/@+-]+\Z")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*\Z")
_WORKLOAD = re.compile(r"(Deployment|StatefulSet|DaemonSet)/[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?\Z")
_CONTEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._:/-]*\Z")
_SERVICE_PORT = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?:(?:[0-9]{1,5}|[a-z0-9-]+)\Z")
_CHART_VERSION = re.compile(r"[A-Za-z0-9.+~^<>=*, -]*[A-Za-z0-9*]\Z")  # a version, or a semver range


def helm_problems(name: str, env: HelmEnvironment) -> list[str]:
    """Names, chart, values and checks of a Helm environment that would be unsafe or cannot work."""
    at = f"pipeline.environments.{name}"
    problems = name_problems(name)
    if not _RELEASE.match(env.release):
        problems.append(
            f"{at}.release: {env.release!r} is not a Helm release name "
            "(lowercase letters, digits and -, at most 53 characters)"
        )
    if not _NAMESPACE.match(env.namespace):
        problems.append(f"{at}.namespace: {env.namespace!r} is not a Kubernetes namespace name")
    if not env.chart:
        problems.append(f"{at}.chart: name the chart (a folder of the repository, or repo/chart)")
    elif env.chart.startswith("oci://"):
        if any(c.isspace() for c in env.chart):
            problems.append(f"{at}.chart: {env.chart!r} is not an oci:// reference")
    elif not _CHART_PATH.match(env.chart):
        problems.append(f"{at}.chart: {env.chart!r} must be a folder inside the project, or repo/chart")
    if not env.local_chart and not env.chart_version:
        # `deploy/chart` reads as repo/chart, as helm reads it when no such folder exists.
        folder = "" if env.repository or env.chart.startswith("oci://") else (
            f" ({env.chart!r} reads as repo/chart; write ./{env.chart} for a folder of the repository)"
        )  # fmt: skip
        problems.append(f"{at}.chart_version: a repository chart needs its version pinned{folder}")
    if env.chart_version and not _CHART_VERSION.match(env.chart_version):
        problems.append(f"{at}.chart_version: {env.chart_version!r} is not a chart version")
    if env.repository and not re.match(r"(https?|oci)://[^\s]+\Z", env.repository):
        problems.append(f"{at}.repository: {env.repository!r} is not an http(s):// or oci:// URL")
    for i, path in enumerate(env.values):
        if not _CHART_PATH.match(path):
            problems.append(f"{at}.values[{i}]: {path!r} must be a file inside the project")
    if not _KEY.match(env.version_key):
        problems.append(f"{at}.version_key: {env.version_key!r} is not a values key such as image.tag")
    if env.kube_context and not _CONTEXT.match(env.kube_context):
        problems.append(f"{at}.kube_context: {env.kube_context!r} is not a context name")
    if env.kubeconfig and (env.kubeconfig.startswith("-") or "\n" in env.kubeconfig):
        problems.append(f"{at}.kubeconfig: {env.kubeconfig!r} is not a file path")
    if not env.helm or env.helm.startswith("-") or any(c.isspace() for c in env.helm):
        problems.append(f"{at}.helm: {env.helm!r} is not a program name or path")
    if not 3 <= env.lock_lease <= 3600:
        problems.append(f"{at}.lock_lease: {env.lock_lease} must be between 3 and 3600 seconds")
    if not 1 <= env.history_max <= 1000:
        problems.append(f"{at}.history_max: {env.history_max} must be between 1 and 1000")
    for field in msgspec.structs.fields(DeadlinesConfig):
        value = getattr(env.deadlines, field.name)
        if not 0 < value <= 86400 or value != value:
            problems.append(
                f"{at}.deadlines.{field.name}: {value} must be more than 0 and at most 86400 seconds"
            )
    if env.migrate is not None:
        problems.extend(_migrate_problems(f"{at}.migrate", env.migrate))
    for i, check in enumerate(env.health):
        problems.extend(_health_problems(f"{at}.health[{i}]", check))
    for i, channel in enumerate(env.notify):
        problems.extend(notify_problems(f"{at}.notify[{i}]", channel))
    return problems


def _migrate_problems(at: str, migrate: HelmMigrateConfig) -> list[str]:
    problems = []
    if migrate.workload and not _WORKLOAD.match(migrate.workload):
        problems.append(
            f"{at}.workload: {migrate.workload!r} is not Deployment/NAME, StatefulSet/NAME or DaemonSet/NAME"
        )
    if migrate.container and not _NAMESPACE.match(migrate.container):
        problems.append(f"{at}.container: {migrate.container!r} is not a container name")
    for key in ("command", "current", "downgrade", "heads"):
        problems.extend(command_problems(f"{at}.{key}", getattr(migrate, key)))
    if "{revision}" not in migrate.downgrade:
        problems.append(f"{at}.downgrade: must contain {{revision}}, the revision to go back to")
    return problems


def _health_problems(at: str, check: HelmHealthCheckConfig) -> list[str]:
    if bool(check.http) == bool(check.service):
        return [f"{at}: give exactly one of http (a URL) or service (name:port, through the API server)"]
    problems = []
    if check.http and not re.match(r"https?://[^\s]+\Z", check.http):
        problems.append(f"{at}.http: {check.http!r} is not an http:// or https:// URL")
    if check.service and not _SERVICE_PORT.match(check.service):
        problems.append(f"{at}.service: {check.service!r} is not name:port of a Service")
    if not check.path.startswith("/") or any(c.isspace() for c in check.path):
        problems.append(f"{at}.path: {check.path!r} must start with / and hold no spaces")
    return problems + retry_problems(at, check)
