"""The Helm target's migrations: a Job from the release's workload, or (``run: exec``) a command in one
of its ready pods; each reads or moves the database with the release's own code."""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from contextlib import suppress

from pipeline.compose import parse_revision, shell_command
from pipeline.engine.cancel import Call
from pipeline.engine.values import Release
from pipeline.errors import Cancelled, DeadlineExceeded, StageError
from pipeline.helm import Workload, workloads
from pipeline.journal import BASE
from pipeline.kube import KubeError
from pipeline.rollout import pod_verdict
from pipeline.targets import helmjobs
from pipeline.targets.helmcore import POLL, HelmCore

EXEC_WAIT = 60.0  # seconds `run: exec` waits for a ready pod before it runs the migration as a Job


class HelmMigrations(HelmCore):
    """``alembic current/upgrade/heads/downgrade`` of a Helm release."""

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
        with self.clock.busy():
            pod = self._ready_pod(workload, call) if migrate.run == "exec" else None
        if pod is not None:  # none ready (a crash loop during a rollback): a Job from the same template
            return self._exec(pod, migrate.container, argv, call, changing=key in ("command", "downgrade"))
        body = helmjobs.job_body(self.env.release, workload, migrate.container, argv, "migrate", call.seconds,
                                 self.run or "manual")  # fmt: skip
        if key in ("command", "downgrade"):
            call.changing()
        try:
            with self.clock.busy():
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
            with self.clock.busy():
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
