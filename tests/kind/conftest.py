"""Fixtures of the kind tests: a real Kubernetes cluster, described by environment variables.

The helm-kind workflow creates a kind cluster, loads the example app's image into it, deploys PostgreSQL
(tests/kind/postgres.yaml) and sets:

  PIPELINE_KIND_KUBECONFIG     kubeconfig of the cluster (without it every kind test skips)
  PIPELINE_KIND_IMAGE          the app image loaded into the cluster, repository:tag
  PIPELINE_KIND_HELM           the helm binary (default: helm on the PATH)
  PIPELINE_KIND_DATABASE_URL   the app's database as the pods reach it (NAME.NAMESPACE.svc of a Service
                               whose pod has psql: the Helm scenarios read the database there)
  PIPELINE_KIND_CLUSTER        the kind cluster's name, for `kind load` (default: kind)
  PIPELINE_KIND_BINARY         the kind binary (default: kind on the PATH)
  PIPELINE_KIND_BASE_IMAGE     the app image's base image, built once (default: app-base:kind)

The Helm scenarios also need docker (the cluster's) and kubectl on the PATH.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from kindlib import KindCluster

NO_CLUSTER = "no real Kubernetes cluster here: set PIPELINE_KIND_KUBECONFIG (the helm-kind workflow runs these on kind)"  # noqa: E501


def required(variable: str) -> str:
    """The value of a PIPELINE_KIND_* variable that a cluster needs; fails the test without it."""
    value = os.environ.get(variable, "")
    if not value:
        pytest.fail(f"PIPELINE_KIND_KUBECONFIG is set but {variable} is not: the kind tests need both")
    return value


@pytest.fixture(scope="session")
def kind_cluster() -> KindCluster:
    """The cluster from PIPELINE_KIND_*; skips the test when there is none."""
    kubeconfig = os.environ.get("PIPELINE_KIND_KUBECONFIG", "")
    if not kubeconfig:
        pytest.skip(NO_CLUSTER)
    if not Path(kubeconfig).is_file():
        pytest.fail(f"PIPELINE_KIND_KUBECONFIG={kubeconfig} is not a file")
    helm = os.environ.get("PIPELINE_KIND_HELM") or shutil.which("helm")
    if not helm:
        pytest.fail("no helm: set PIPELINE_KIND_HELM or put helm on the PATH")
    image = required("PIPELINE_KIND_IMAGE")
    if ":" not in image.rpartition("/")[2]:
        pytest.fail(f"PIPELINE_KIND_IMAGE={image} has no tag: the chart takes repository and tag apart")
    return KindCluster(
        Path(kubeconfig),
        Path(helm),
        image,
        required("PIPELINE_KIND_DATABASE_URL"),
        kind=os.environ.get("PIPELINE_KIND_BINARY") or shutil.which("kind") or "",
        name=os.environ.get("PIPELINE_KIND_CLUSTER") or "kind",
        base_image=os.environ.get("PIPELINE_KIND_BASE_IMAGE") or "app-base:kind",
    )
