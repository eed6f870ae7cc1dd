"""The target of an environment, connected: compose hosts over ssh, or a Helm release."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.config import Environment
from pipeline.engine.values import Policy
from pipeline.executor import Executor
from pipeline.health import Sleep
from pipeline.helmconfig import HelmEnvironment
from pipeline.http import HttpClient
from pipeline.secrets import Redactor
from pipeline.targets.base import Target


@contextmanager
def connected(
    env: Environment,
    name: str,
    executor: Executor,
    http: HttpClient,
    redactor: Redactor,
    sleep: Sleep = time.sleep,
) -> Iterator[tuple[Target, Policy]]:
    """The environment's target and the engine's policy for it; what was opened is closed after."""
    if isinstance(env, HelmEnvironment):
        from pipeline.targets import helm

        key = f"pipeline.environments.{name}"
        with helm.HelmTarget.connect(env, executor, http, sleep, redactor, key) as target:
            yield target, helm.policy_of(env)
    else:
        from pipeline.targets import compose

        with compose.ComposeTarget.connect(env, executor, http, sleep, redactor) as found:
            yield found, compose.policy_of(env)
