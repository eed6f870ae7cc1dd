"""The Helm target: the unit is a release in a namespace, reached with helm and the Kubernetes API.

Deploy is ``helm upgrade --install`` without ``--wait``/``--atomic``; readiness is our own watch of the
release's workloads, failing fast on pod states that will not heal; migrations are Jobs made from the
new release's workload; a rollback is ``helm rollback`` to the revision the ledger recorded healthy. The
ledger (a ConfigMap) and the lock (a Lease) live beside the release (``pipeline.targets.kubestate``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from functools import partial
from typing import Any

from pipeline.compose import parse_revision, shell_command
from pipeline.engine.cancel import Call
from pipeline.engine.values import LockInfo, Policy, Release, UnitState
from pipeline.errors import Cancelled, ConfigError, DeadlineExceeded, InputError, StageError
from pipeline.executor import TIMED_OUT, Command, Executor, Result
from pipeline.health import HealthResult, Sleep, mentions_version, run_check
from pipeline.helm import Helm, HelmRevision, Workload, description, not_found, parse_history, workloads
from pipeline.helmconfig import HelmEnvironment, HelmHealthCheckConfig
from pipeline.http import HttpClient, HttpError
from pipeline.journal import BASE, HEALTHY, RESTORED, ROLLED_BACK, Entry
from pipeline.kube import Kube, KubeError, kubeconfig_path
from pipeline.rollout import Verdict, judge, owned_pods, pod_rows, pod_verdict
from pipeline.runreport import Evidence
from pipeline.secrets import Redactor, redactor_for
from pipeline.targets import helmjobs, kubestate

POLL = 0.5  # seconds between two looks at the rollout
EXEC_WAIT = 60.0  # seconds `run: exec` waits for a ready pod before it runs the migration as a Job
LOG_LINES = 200
BODY_LINES = 20


def policy_of(env: HelmEnvironment) -> Policy:
    """The engine's policy: one unit, its database shared when migrations are configured."""
    return Policy("parallel", 1, 0, "none" if env.migrate is None else "shared", env.deadlines)


class HelmTarget:
    """A Helm release in a namespace; see ``pipeline.targets.base.Target``."""

    kind = "helm"

    def __init__(
        self,
        env: HelmEnvironment,
        kube: Kube,
        executor: Executor,
        http: HttpClient,
        kubeconfig: str = "",
        sleep: Sleep = time.sleep,
        redactor: Redactor | None = None,
    ) -> None:
        self.env = env
        self.kube = kube
        self.executor = executor
        self.http = http
        self.sleep = sleep
        self.redactor = redactor if redactor is not None else redactor_for(env, os.environ)
        self.helm = Helm.of(env, kubeconfig)
        self.name = f"{env.namespace}/{env.release}"
        self.run = ""
        self.revisions: dict[str, int] = {}  # version -> the helm revision this run saw serve it
        self.verdict: Verdict | None = None  # the last rollout that failed, for the evidence
        self.manifests: dict[int, str] = {}
        self.seconds = 0.0
        self.guard = threading.Lock()

    @classmethod
    @contextmanager
    def connect(
        cls,
        env: HelmEnvironment,
        executor: Executor,
        http: HttpClient,
        sleep: Sleep = time.sleep,
        redactor: Redactor | None = None,
        key: str = "pipeline.environments.<env>",
    ) -> Iterator[HelmTarget]:
        """The release's target, once helm and the kubeconfig are found (else exit 2, nothing touched)."""
        if shutil.which(env.helm) is None:
            raise ConfigError(f"{key}.helm: {env.helm!r} is not installed (not found on PATH)")
        kubeconfig = kubeconfig_path(env.kubeconfig, os.environ)
        kube = Kube.connect(kubeconfig, env.kube_context, env.namespace, key)
        try:
            yield cls(env, kube, executor, http, kubeconfig, sleep, redactor)
        finally:
            kube.close()

    # -- running -----------------------------------------------------------------------------------

    @contextmanager
    def _busy(self) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            with self.guard:
                self.seconds += time.monotonic() - started

    def spent(self) -> float:
        """Seconds spent in helm and in the API server's answers (the rest is the pipeline's)."""
        with self.guard:
            return self.seconds

    def _helm(self, argv: Sequence[str], call: Call, changing: bool = False, stage: str = "") -> Result:
        """A helm command under the call's deadline; StageError with its last words when it fails."""
        if changing:
            call.changing()
        with self._busy():
            result = self.executor.run(Command(tuple(argv), timeout=call.timeout(), interrupt=call.interrupt))
        redact = self.redactor.redact
        result = replace(result, stdout=redact(result.stdout), stderr=redact(result.stderr))
        if result.interrupted:
            raise Cancelled(str(call.cancel.reason or "interrupted"))
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-50:])
        if result.returncode == TIMED_OUT:
            message = (
                f"{call.stage} on {self.name} passed its deadline of {call.seconds:g} s: {shlex.join(argv)}"
            )
            raise DeadlineExceeded(call.stage, redact(message), self.name, tail)
        if not result.ok:
            words = (result.stderr or result.stdout).strip().splitlines()[-3:]
            message = f"[{self.name}] {shlex.join(argv)} exited {result.returncode}: {' / '.join(words)}"
            raise StageError(stage or call.stage, redact(message), self.name, tail)
        return result

    def _api(self, stage: str, what: str, error: KubeError) -> StageError:
        return StageError(stage, self.redactor.redact(f"[{self.name}] {what}: {error}"), self.name)

    def history(self, seconds: float) -> list[HelmRevision]:
        """Every revision helm keeps of the release ([] before the first install)."""
        with self._busy():
            result = self.executor.run(Command(self.helm.history(), timeout=max(1.0, seconds)))
        if not result.ok:
            if not_found(result.stderr + result.stdout):
                return []
            words = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no answer"]
            raise InputError(self.redactor.redact(f"{self.name}: helm history failed: {words[0]}"))
        try:
            return parse_history(result.stdout)
        except ValueError as exc:
            raise InputError(f"{self.name}: helm history printed what it should not: {exc}") from None

    # -- reading and locking -------------------------------------------------------------------------

    def units(self) -> list[str]:
        """The one release."""
        return [self.name]

    def databases(self) -> list[str]:
        """The release, when it has migrations."""
        return [self.name] if self.env.migrate is not None else []

    def read(self, units: Sequence[str], seconds: float) -> list[UnitState]:
        """Ledger, lock, helm history and pods: read-only. A release stuck in ``pending-*`` that no
        run of ours holds shows as a lock held by someone else (nothing may deploy over it)."""
        release = self.env.release
        try:
            entries, damaged, cut, why = kubestate.read_ledger(self.kube, release, seconds)
            lock = kubestate.read_lock(self.kube, release, seconds)
            pods = self.kube.select("pod", seconds, selector=f"app.kubernetes.io/instance={release}")
        except KubeError as exc:
            raise InputError(
                self.redactor.redact(f"{self.name}: the cluster cannot be read: {exc}")
            ) from None
        history = self.history(seconds)
        latest = history[-1] if history else None
        if latest is not None and latest.pending and lock is None:
            lock = LockInfo(
                who="someone outside this pipeline (helm)", at=latest.updated[:19].replace(" ", "T") + "Z",
                version=latest.app_version or "?",
                operation=f"helm {latest.status} at revision {latest.revision}",
            )  # fmt: skip
        state = UnitState(self.name, entries, lock, None, why, damaged, cut)
        serving = state.serving
        if serving and latest and serving.revision == str(latest.revision):
            state.commit = serving.commit
        state.facts = _facts(latest, history, pods)
        return [state]

    def lock(self, unit: str, info: LockInfo, call: Call, take_over: str = "") -> LockInfo | None:
        """Create the Lease with its holder; the holder found when it is held."""
        self.run = info.run
        try:
            return kubestate.take_lock(self.kube, self.env.release, info, call.timeout(), take_over)
        except KubeError as exc:
            if exc.code == 404 and self.env.create_namespace:
                self.kube.create_namespace(call.timeout())
                return kubestate.take_lock(self.kube, self.env.release, info, call.timeout(), take_over)
            if exc.code == 404:
                raise StageError("lock", f"the namespace {self.env.namespace} does not exist "
                                 "(create it, or set create_namespace: true)", unit) from None  # fmt: skip
            raise self._api("lock", "the Lease cannot be created", exc) from None

    def unlock(self, unit: str, call: Call) -> None:
        """Delete the Lease."""
        try:
            kubestate.drop_lock(self.kube, self.env.release, call.timeout())
        except KubeError as exc:
            raise self._api("lock", "the Lease cannot be deleted", exc) from None

    def record(self, unit: str, entries: Sequence[Entry], call: Call) -> None:
        """Append to the ledger, each line with the helm revision that serves its version."""
        filled = [
            replace(e, revision=str(self.revisions[e.version]))
            if not e.revision and e.version in self.revisions and e.result in (HEALTHY, RESTORED, ROLLED_BACK)
            else e
            for e in entries
        ]  # fmt: skip
        lines = "".join(self.redactor.redact_data(e).line() for e in filled)
        try:
            kubestate.append_ledger(self.kube, self.env.release, lines, call.timeout())
        except KubeError as exc:
            raise self._api("record", "the ledger cannot be written", exc) from None

    # -- deploying ---------------------------------------------------------------------------------

    def chart_of(self, release: Release) -> tuple[str, list[str]]:
        """The chart and values files of a release: from its own files (as of its commit)."""
        base = release.files or "<release files>"
        values = [f"{base}/{path}" for path in self.env.values]
        return (f"{base}/{self.env.chart}" if self.env.local_chart else self.env.chart), values

    def upgrade_argv(self, release: Release, seconds: float) -> tuple[str, ...]:
        """The ``helm upgrade --install`` of a release."""
        chart, values = self.chart_of(release)
        text = description(self.run or "dry-run", release.version)
        return self.helm.upgrade(chart, release.version, self.env, values, text, seconds)

    def deploy(self, unit: str, release: Release, call: Call) -> None:
        """``helm upgrade --install``; the revision it made is remembered for the ledger."""
        try:
            self._helm(self.upgrade_argv(release, call.remaining()), call, changing=True)
        finally:
            self._remember(release.version, call)

    def _remember(self, version: str, call: Call) -> None:
        """The newest revision made by this run, as the revision serving ``version``."""
        try:
            history = self.history(max(1.0, min(30.0, call.remaining() or 30.0)))
        except InputError:
            return
        mine = [r for r in history if self.run and self.run in r.description.split()]
        if mine:
            self.revisions[version] = mine[-1].revision

    def restore(self, unit: str, previous: Entry | None, release: Release, call: Call) -> str | None:
        """``helm rollback`` to the revision the ledger recorded healthy; a failed first install stays."""
        if previous is None:
            return (
                f"the first install of {release.version} failed and is kept for inspection "
                f"(`{shlex.join(self.helm.uninstall())}` removes it)"
            )
        revision = self._recorded_revision(previous, call)
        self._helm(self.helm.rollback(revision, self.env.history_max, call.remaining()), call, changing=True)
        history = self.history(max(1.0, min(30.0, call.remaining() or 30.0)))
        if history:
            self.revisions[previous.version] = history[-1].revision
        return f"helm rollback to revision {revision} ({previous.version})"

    def _recorded_revision(self, previous: Entry, call: Call) -> int:
        """The helm revision the ledger recorded for ``previous`` (older ledgers: found in helm's history)."""
        if previous.revision:
            return int(previous.revision)
        history = self.history(max(1.0, min(30.0, call.remaining() or 30.0)))
        named = [r for r in history if previous.version in r.description.split() and not r.pending]
        if not named:
            raise StageError(
                "restore", f"the ledger records no helm revision for {previous.version}", self.name
            )
        return named[-1].revision

    # -- databases ---------------------------------------------------------------------------------------

    def _manifest(self, call: Call) -> str:
        """What the newest revision rendered (the one being deployed, or rolled back to)."""
        history = self.history(max(1.0, min(30.0, call.remaining() or 30.0)))
        if not history:
            raise StageError(call.stage, f"{self.name} has no revision yet", self.name)
        revision = history[-1].revision
        if revision not in self.manifests:
            self.manifests[revision] = self._helm(self.helm.manifest(revision), call).stdout
        return self.manifests[revision]

    def _job(self, key: str, call: Call, revision: str = "") -> str:
        """A migration command in a Job from the release's workload (or in one of its pods); its log."""
        migrate = self.env.migrate
        assert migrate is not None
        found = workloads(self._manifest(call), self.env.namespace)
        workload = helmjobs.pick(found, migrate.workload)
        if workload is None:
            wanted = migrate.workload or "a Deployment"
            raise StageError("migrate", f"the release renders no {wanted} to run migrations from", self.name)
        argv = shell_command(getattr(migrate, key), revision)
        pod = self._ready_pod(workload, call) if migrate.run == "exec" else None
        if pod is not None:  # none ready (a crash loop during a rollback): a Job from the same template
            return self._exec(pod, migrate.container, argv, call, changing=key in ("command", "downgrade"))
        body = helmjobs.job_body(self.env.release, workload, migrate.container, argv, "migrate", call.seconds,
                                 self.run or "manual")  # fmt: skip
        if key in ("command", "downgrade"):
            call.changing()
        try:
            with self._busy():
                ok, log, why, name = helmjobs.run_job(self.kube, body, call, self.sleep)
        except KubeError as exc:
            raise self._api("migrate", "the migration Job cannot be run", exc) from None
        log = self.redactor.redact(log)
        helmjobs.finished(self.kube, name, ok)
        if not ok:
            last = " / ".join(log.strip().splitlines()[-3:])
            raise StageError("migrate", f"[{self.name}] the Job {name} ({shlex.join(argv)}) failed: {why}"
                             + (f": {last}" if last else ""), self.name, log)  # fmt: skip
        return log

    def _exec(self, pod: str, container: str, argv: Sequence[str], call: Call, changing: bool) -> str:
        """A command in a pod; its output. The command reports its PID first, so that a deadline or a
        signal can kill it in the pod (closing the stream alone would leave it running)."""
        wrapped = ["sh", "-c", 'echo "pipeline-pid $$"; exec "$@"', "sh", *argv]
        if changing:
            call.changing()
        try:
            with self._busy():
                code, out, err = self.kube.exec(pod, container, wrapped, call.remaining(), call.interrupt)
        except KubeError as exc:
            raise self._api("migrate", f"exec in {pod} failed", exc) from None
        lines = out.splitlines()
        pid = (
            lines[0].removeprefix("pipeline-pid ").strip()
            if lines and lines[0].startswith("pipeline-pid ")
            else ""
        )
        text = self.redactor.redact("\n".join(lines[1:] if pid else lines) + ("\n" + err if err else ""))
        if code is None:
            if pid.isdigit():
                with suppress(KubeError):
                    self.kube.exec(pod, container, ["kill", "-KILL", pid], 10.0)
            if call.cancel.requested and not call.shielded:
                raise Cancelled(str(call.cancel.reason or "interrupted"))
            late = f"the migration in {pod} passed its deadline of {call.seconds:g} s and was killed"
            raise DeadlineExceeded(call.stage, late, self.name, text)
        if code != 0:
            last = " / ".join(text.strip().splitlines()[-3:])
            raise StageError("migrate", f"[{self.name}] {shlex.join(argv)} in {pod} exited {code}: {last}",
                             self.name, text)  # fmt: skip
        return text

    def _ready_pod(self, workload: Workload, call: Call) -> str | None:
        """A ready pod of the workload's newest template (for ``run: exec``), waited for up to a minute;
        None when none gets ready (or one will never be) in that time."""
        end = time.monotonic() + min(EXEC_WAIT, max(0.0, call.remaining() - 1))
        while True:
            for kind, obj, pods in self._rollout(call):
                if f"{kind}/{(obj.get('metadata') or {}).get('name')}" != workload.label:
                    continue
                for pod in pods:
                    conditions = (pod.get("status") or {}).get("conditions") or []
                    if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                        return str(pod["metadata"]["name"])
                if any(pod_verdict(p) is not None for p in pods):
                    return None
            if time.monotonic() >= end:
                return None
            call.check()
            self.sleep(POLL)

    def revision(self, unit: str, release: Release, call: Call) -> str:
        """``alembic current`` in a Job: the revision, ``base`` when there is none."""
        return parse_revision(self._job("current", call)) or BASE

    def head(self, unit: str, release: Release, call: Call) -> str:
        """``alembic heads`` in a Job from the release's image."""
        return parse_revision(self._job("heads", call)) or BASE

    def migrate(self, unit: str, release: Release, call: Call) -> None:
        """``alembic upgrade head`` in a Job from the release's image."""
        self._job("command", call)

    def downgrade(self, unit: str, release: Release, revision: str, call: Call) -> None:
        """``alembic downgrade REVISION`` in a Job from the (newer) release's image."""
        self._job("downgrade", call, revision)

    # -- readiness, health and evidence ---------------------------------------------------------------------

    def _rollout(self, call: Call) -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
        """Each workload the newest revision renders, as the API server has it now, with its newest pods."""
        found: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = []
        for workload in workloads(self._manifest(call), self.env.namespace):
            kind = workload.kind.lower()
            obj = self.kube.get(kind, workload.name, call.timeout())
            if obj is None:
                found.append((workload.kind, {"metadata": {"name": workload.name}, "status": {}}, []))
                continue
            labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            if workload.kind == "Job":
                selector = f"job-name={workload.name}"
            pods = self.kube.select("pod", call.timeout(), selector=selector) if selector else []
            sets = (
                self.kube.select("replicaset", call.timeout(), selector=selector)
                if kind == "deployment"
                else []
            )
            found.append((workload.kind, obj, owned_pods(obj, workload.kind, pods, sets)))
        return found

    def watch(self, call: Call) -> HealthResult:
        """Follow the rollout until every workload is ready, a pod state will not heal, or the deadline."""
        started, polls = time.monotonic(), 0
        self.verdict = None
        while True:
            polls += 1
            try:
                with self._busy():
                    verdict = judge(self._rollout(call))
            except KubeError as exc:
                verdict = Verdict("waiting", f"the API server did not answer: {exc}")
            seconds = round(time.monotonic() - started, 3)
            if verdict.state != "waiting":
                if verdict.state == "failed":
                    self.verdict = verdict
                return HealthResult(
                    "rollout", self.name, verdict.state == "ready", verdict.detail, polls, seconds
                )
            if call.remaining() <= POLL:
                self.verdict = verdict
                detail = f"not rolled out after {seconds:g} s: {verdict.detail}"
                return HealthResult("rollout", self.name, False, detail, polls, seconds)
            call.check()
            self.sleep(POLL)
            call.check()

    def health(self, unit: str, version: str, call: Call) -> list[HealthResult]:
        """The rollout watch, then each configured HTTP check expecting ``version``."""
        results = [self.watch(call)]
        for check in self.env.health if results[0].ok else ():

            def sleep(seconds: float) -> None:
                call.check()
                self.sleep(min(seconds, max(0.0, call.remaining())))
                call.check()

            one_try = partial(self._probe, check, version)
            with self._busy():
                results.append(run_check(check, one_try, sleep))  # type: ignore[arg-type]
            if not results[-1].ok:
                break
        return self.redactor.redact_data(results)

    def _probe(self, check: HelmHealthCheckConfig, version: str) -> HealthResult:
        """One try of an HTTP check: a URL from the runner, or a Service through the API server."""
        if check.http:
            name = f"http {check.http}"
            try:
                response = self.http.request("GET", check.http, timeout=check.timeout)
            except HttpError as exc:
                return HealthResult(name, self.name, False, str(exc))
            status, body = response.status, response.body
        else:
            name = f"http service {check.service}{check.path}"
            try:
                status, body = self.kube.proxy_get(check.service, check.path, check.timeout)
            except KubeError as exc:
                return HealthResult(name, self.name, False, str(exc))
        shown = "\n".join(body.splitlines()[:BODY_LINES])
        if status != check.status:
            return HealthResult(name, self.name, False, f"answered {status}, expected {check.status}", 1, 0.0,
                                status, shown)  # fmt: skip
        if check.contains and check.contains not in body:
            why = f"the body does not contain {check.contains!r}"
            return HealthResult(name, self.name, False, why, 1, 0.0, status, shown)
        if check.expect_version and not mentions_version(body, version):
            why = f"the body does not report version {version}"
            return HealthResult(name, self.name, False, why, 1, 0.0, status, shown)
        return HealthResult(name, self.name, True, f"answered {status}", 1, 0.0, status, shown)

    def evidence(self, unit: str, release: Release, call: Call) -> list[Evidence]:
        """The failing pod's logs (current and previous, 200 lines each) and events; every pod's state."""
        found: list[Evidence] = []
        verdict = self.verdict
        try:
            rollout = self._rollout(call)
        except (KubeError, StageError) as exc:
            return [Evidence(unit, "rollout", f"could not be read: {exc}")]
        pods = [p for _, _, owned in rollout for p in owned]
        rows = pod_rows(pods)
        table = [
            f"{r['name']}: {r['phase']} ready {r['ready']} restarts {r['restarts']} {r['reason']}".rstrip()
            for r in rows
        ]
        if verdict is not None:
            found.append(Evidence(unit, "verdict", verdict.detail))
        found.append(Evidence(unit, "pods", "\n".join(table) or "no pods"))
        conditions = [
            f"{kind}/{(obj.get('metadata') or {}).get('name')}: {c.get('type')}={c.get('status')} "
            f"{c.get('reason', '')} {c.get('message', '')}".rstrip()
            for kind, obj, _ in rollout for c in (obj.get("status") or {}).get("conditions") or []
        ]  # fmt: skip
        if conditions:
            found.append(Evidence(unit, "rollout conditions", "\n".join(conditions)))
        pod = verdict.pod if verdict is not None and verdict.pod else (rows[0]["name"] if rows else "")
        container = verdict.container if verdict is not None else ""
        if pod:
            found += self._pod_evidence(unit, pod, container, call)
        return self.redactor.redact_data(found)

    def _pod_evidence(self, unit: str, pod: str, container: str, call: Call) -> list[Evidence]:
        found = []
        for previous, what in ((False, "logs"), (True, "previous logs")):
            try:
                text = self.kube.log(pod, container, call.timeout(), previous=previous, tail=LOG_LINES)
            except KubeError as exc:
                text = "" if previous else f"could not be read: {exc}"
            if text.strip():
                found.append(Evidence(unit, f"{what} of {pod}{f'/{container}' if container else ''}", text))
        try:
            events = self.kube.events(pod, call.timeout())
        except KubeError as exc:
            return [*found, Evidence(unit, f"events of {pod}", f"could not be read: {exc}")]
        lines = [
            f"{e.get('type', '')} {e.get('reason', '')}: {e.get('message', '')}"
            + (f" (x{e['count']})" if isinstance(e.get("count"), int) and e["count"] > 1 else "")
            for e in events[-20:]
        ]  # fmt: skip
        return [*found, Evidence(unit, f"events of {pod}", "\n".join(lines) or "none")]

    # -- the plan ----------------------------------------------------------------------------------------

    def describe(
        self, unit: str, operation: str, release: Release, previous: Entry | None = None, revision: str = ""
    ) -> list[str]:
        """What an operation would do on the release, as ``--dry-run`` prints it."""
        ns, rel = self.env.namespace, self.env.release
        migrate = self.env.migrate
        if operation == "lock":
            return [f"  lock     [{unit}] create Lease {ns}/{kubestate.lock_name(rel)} holding this run"]
        if operation == "deploy":
            return [
                f"  deploy   [{unit}] {shlex.join(self.upgrade_argv(release, self.env.deadlines.deploy))}"
            ]
        if operation in ("migrate", "downgrade") and migrate is not None:
            source = migrate.workload or "the release's first Deployment"
            keys = ["current", "command", "current", "heads"] if operation == "migrate" else ["downgrade"]
            argvs = [shell_command(getattr(migrate, k), revision) for k in keys]
            return [f"  {operation:<8} [{unit}] Job from {source}: {shlex.join(a)}" for a in argvs]
        if operation == "health":
            checks = [
                f"http {c.http}" if c.http else f"http service {c.service}{c.path}" for c in self.env.health
            ]
            watched = "rollout of every Deployment, StatefulSet, DaemonSet and Job of the release"
            return [f"  health   [{unit}] {watched}"] + [f"  health   [{unit}] {c}" for c in checks]
        if operation == "record":
            return [
                f"  record   [{unit}] append to ConfigMap {ns}/{kubestate.ledger_name(rel)}; delete the Lease"
            ]
        if operation == "restore":
            if previous is None:
                return [f"  restore  [{unit}] nothing: a failed first install is kept for inspection"]
            target = previous.revision or f"<revision of {previous.version}>"
            argv = self.helm.rollback(
                int(target) if target.isdigit() else 0, self.env.history_max, self.env.deadlines.restore
            )
            text = (
                shlex.join(argv).replace(" 0 ", f" {target} ", 1)
                if not target.isdigit()
                else shlex.join(argv)
            )
            return [f"  restore  [{unit}] {text}"]
        return []


def _facts(
    latest: HelmRevision | None, history: Sequence[HelmRevision], pods: list[dict[str, Any]]
) -> dict[str, Any]:
    """What ``status`` and ``history`` show besides the ledger: helm's view and the pods."""
    return {
        "helm": None if latest is None else {
            "revision": latest.revision, "status": latest.status, "chart": latest.chart,
            "app_version": latest.app_version, "updated": latest.updated,
        },
        "helm_history": [
            {"revision": r.revision, "status": r.status, "chart": r.chart, "app_version": r.app_version,
             "updated": r.updated, "description": r.description}
            for r in history
        ],
        "pods": pod_rows(pods),
    }  # fmt: skip
