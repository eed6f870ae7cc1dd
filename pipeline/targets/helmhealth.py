"""The Helm target's health stage and evidence: our readiness watch, the HTTP checks, and what a
failing rollout leaves for the report (the verdict, pods, conditions, logs and events)."""

from __future__ import annotations

import time
from functools import partial

from pipeline.engine.cancel import Call
from pipeline.engine.values import Release
from pipeline.errors import StageError
from pipeline.health import HealthResult, judge_response, run_check
from pipeline.helmconfig import HelmHealthCheckConfig
from pipeline.http import HttpError
from pipeline.kube import KubeError
from pipeline.rollout import Verdict, judge, pod_rows
from pipeline.runreport import Evidence
from pipeline.targets.helmcore import LOG_LINES, POLL, HelmCore


class HelmHealth(HelmCore):
    """Readiness, health checks and evidence of a Helm release."""

    def watch(self, call: Call) -> HealthResult:
        """Follow the rollout until every workload is ready, a pod state will not heal, or the deadline."""
        started, polls = time.monotonic(), 0
        self.verdict = None
        while True:
            polls += 1
            try:
                with self.clock.busy():
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
        with self.clock.busy():
            return self._health(version, call)

    def _health(self, version: str, call: Call) -> list[HealthResult]:
        results = [self.watch(call)]
        for check in self.env.health if results[0].ok else ():

            def sleep(seconds: float) -> None:
                call.check()
                self.sleep(min(seconds, max(0.0, call.remaining())))
                call.check()

            one_try = partial(self._probe, check, version)
            with self.clock.busy():
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
        ok, why, shown = judge_response(check, status, body, version)
        return HealthResult(name, self.name, ok, why, 1, 0.0, status, shown)

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
