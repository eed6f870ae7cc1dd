"""The deploy engine for compose over SSH: lock, deploy, migrate, health-check, and roll back.

A run reads what each host has (journal, checkout, lock, database revision), plans every command
as data, runs the plan, and on a failed migration or health check, or a SIGTERM/Ctrl-C, runs the
rollback plan in reverse: downgrade with the new release's scripts, restore the previous release,
check health again. What failed is captured before the rollback destroys it.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

from pipeline import compose as cmd
from pipeline.compose import parse_revision, shell_command
from pipeline.environments import ComposeEnvironment
from pipeline.errors import InputError, LockHeld, PipelineError
from pipeline.executor import Result
from pipeline.health import HealthResult, Sleep, check_host, describe
from pipeline.hosts import HostRun, Release, Step, lock_holder
from pipeline.http import HttpClient
from pipeline.journal import (
    FAILED,
    HEALTHY,
    RESTORED,
    ROLLED_BACK,
    Entry,
)
from pipeline.runreport import Evidence, RunReport, StageResult


class StageError(PipelineError):
    """A stage failed; the engine rolls back. ``output`` is what the failed command said."""

    def __init__(self, stage: str, message: str, host: str = "", output: str = "") -> None:
        super().__init__(message)
        self.stage = stage
        self.host = host
        self.output = output


class _NothingToDo(PipelineError):
    """A rollback part found nothing to undo."""


class Cancelled(PipelineError):
    """SIGTERM or Ctrl-C arrived; the engine rolls back."""


@dataclass
class Context:
    """What a run needs from outside: the seams, and who runs it."""

    http: HttpClient
    sleep: Sleep = time.sleep
    who: str = ""
    run_url: str = ""
    now: Callable[[], str] = lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    say: Callable[[str], None] = lambda line: print(line, flush=True)


class Engine:
    """One deploy of a release to an environment."""

    def __init__(
        self,
        name: str,
        env: ComposeEnvironment,
        release: Release,
        hosts: list[HostRun],
        context: Context,
    ) -> None:
        self.name = name
        self.env = env
        self.release = release
        self.hosts = hosts
        self.context = context
        self.report = RunReport(name, release.version, release.commit)
        self.report.previous = {h.name: h.previous.version if h.previous else None for h in hosts}
        self.cancel: str | None = None
        self.migrated = False
        self.revision_known = False
        self.rolling_back = False
        self.failed_at = 0.0
        self.command_seconds = 0.0

    # -- plans: every remote command, as data ---------------------------------------------------

    def lock_steps(self, run: HostRun) -> list[Step]:
        """Take the host's lock and say who holds it."""
        import json

        host = run.remote.host
        info = json.dumps(
            {
                "who": self.context.who,
                "at": self.context.now(),
                "version": self.release.version,
                "run_url": self.context.run_url,
            }
        )
        return [
            Step("lock", run.name, cmd.make_dirs(host.state_dir)),
            Step("lock", run.name, cmd.take_lock(host.lock)),
            Step("lock", run.name, cmd.write_file(f"{host.lock}/info.json"), info + "\n"),
        ]

    def deploy_steps(self, run: HostRun) -> list[Step]:
        """Put the release in place and start it."""
        path, version, project = run.remote.host.path, self.release.version, run.project
        steps: list[Step] = []
        if self.env.source == "git":
            assert self.release.commit
            if self.env.repository:
                steps += [Step("deploy", run.name, a) for a in cmd.git_prepare(path, self.env.repository)]
            steps += [
                Step("deploy", run.name, cmd.git_fetch(path)),
                Step("deploy", run.name, cmd.git_checkout(path, self.release.commit)),
                Step("deploy", run.name, project.up(version, build=True)),
            ]
        else:
            release_dir = project.release_dir(version)
            steps += [
                Step("deploy", run.name, cmd.make_dirs(release_dir)),
                Step(
                    "deploy",
                    run.name,
                    cmd.write_file(project.file_for(version)),
                    self.release.compose_text,
                ),
                Step("deploy", run.name, project.pull(version)),
                Step("deploy", run.name, project.up(version, build=False)),
            ]
        return steps

    def restore_steps(self, run: HostRun) -> list[Step]:
        """Bring the previous release back, reusing its images (no rebuild)."""
        previous, project = run.previous, run.project
        if previous is None:
            return [Step("restore", run.name, project.down(self.release.version))]
        steps = []
        if self.env.source == "git" and previous.commit:
            steps.append(Step("restore", run.name, cmd.git_checkout(run.remote.host.path, previous.commit)))
        steps.append(Step("restore", run.name, project.up(previous.version, build=False)))
        return steps

    def migrate_argv(self, which: str, revision: str = "") -> tuple[str, ...]:
        """A migration command in the configured service, with the new release's code."""
        migrate = self.env.migrate
        assert migrate is not None
        text = {
            "current": migrate.current,
            "upgrade": migrate.command,
            "downgrade": migrate.downgrade,
        }[which]
        argv = shell_command(text, revision)
        return self.migrate_host.project.in_service(self.release.version, migrate.service, argv, migrate.run)

    @property
    def migrate_host(self) -> HostRun:
        """Where migrations run: the database is shared by every host."""
        return self.hosts[self.env.migrate.host if self.env.migrate else 0]

    def plan(self) -> list[str]:
        """The whole plan and the rollback plan beside it, as ``--dry-run`` prints them."""
        lines = [f"deploy {self.release.version} ({self.release.commit or 'image'}) to {self.name}:"]
        for run in self.hosts:
            previous = run.previous.version if run.previous else "nothing (first deploy)"
            lines.append(f"  host {run.name}: serving {previous}")
        for run in self.hosts:
            lines += [
                f"  {s.stage:<8} {s.render()}" for s in [*self.lock_steps(run), *self.deploy_steps(run)]
            ]
        if self.env.migrate:
            host = self.migrate_host.name
            lines += [f"  migrate  [{host}] {' '.join(self.migrate_argv(w))}" for w in ("current", "upgrade")]
        lines += [
            f"  health   [{r.name}] {describe(c).replace('{host}', r.remote.host.name)}"
            for r in self.hosts
            for c in self.env.health
        ]
        lines += [
            f"  record   [{r.name}] append to {r.remote.host.journal}; release the lock" for r in self.hosts
        ]
        lines.append("rollback plan (on a failed migration or health check, or a cancel):")
        if self.env.migrate:
            host = self.migrate_host.name
            revision = (self.report.db_before or "base") if self.revision_known else "<read before migrating>"
            argv = " ".join(self.migrate_argv("downgrade", revision))
            lines.append(f"  migrate  [{host}] {argv}")
        for run in self.hosts:
            lines += [f"  {s.stage:<8} {s.render()}" for s in self.restore_steps(run)]
        lines.append("  health   the same checks, expecting the previous version")
        return lines

    # -- running ---------------------------------------------------------------------------------

    def call(self, run: HostRun, argv: Sequence[str], stdin: str | None = None) -> Result:
        """Run argv on a host, counting its time as the commands' (not the pipeline's)."""
        started = time.monotonic()
        try:
            return run.remote.run(argv, stdin=stdin)
        finally:
            self.command_seconds += time.monotonic() - started

    def run_step(self, step: Step, run: HostRun) -> str:
        """Run one step on its host; a failure raises StageError with the command's last words."""
        self.check_cancel()
        return _checked(step, run, self.call(run, step.argv, step.stdin))

    def check_cancel(self) -> None:
        """Stop between steps when a signal asked for it (never during the rollback)."""
        if self.cancel and not self.rolling_back:
            raise Cancelled(f"{self.cancel} received")

    @contextmanager
    def signals(self) -> Iterator[None]:
        """SIGTERM and SIGINT ask the run to stop; the step in flight finishes, then the rollback runs."""

        def ask(signum: int, frame: FrameType | None) -> None:
            self.cancel = signal.Signals(signum).name

        saved = {s: signal.signal(s, ask) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for s, handler in saved.items():
                signal.signal(s, handler)

    def execute(self) -> RunReport:
        """Lock, deploy, migrate, check; roll back on failure; record and unlock. Returns the report."""
        wall = time.monotonic()
        with self.signals():
            try:
                self.lock_all()
            except StageError as exc:
                self.unlock_all()
                raise InputError(f"cannot take the deploy lock: {exc}") from None
            except Cancelled as exc:
                self.unlock_all()
                self.report.outcome, self.report.reason = "cancelled", f"{exc}; nothing was deployed"
                return self.report
            try:
                if self.already_deployed():
                    self.report.outcome = "noop"
                else:
                    self.forward()
            except (StageError, Cancelled) as exc:
                self.failed_at = time.monotonic()
                self.report.reason = (
                    str(exc) if isinstance(exc, Cancelled) else self.report.reason or str(exc)
                )
                self.rolling_back = True  # a second signal must not cut the rollback short
                self.capture_evidence()
                self.roll_back(cancelled=isinstance(exc, Cancelled))
            finally:
                self.cancel = None
                self.unlock_all()
        self.report.timings.update(
            wall=round(time.monotonic() - wall, 3), commands=round(self.command_seconds, 3)
        )
        return self.report

    def lock_all(self) -> None:
        """Take every host's lock; if one is held, give back those taken and stop (exit 5)."""
        for run in self.hosts:
            steps = self.lock_steps(run)
            self.run_step(steps[0], run)
            result = self.call(run, steps[1].argv)
            if run.remote.unreachable(result):
                raise StageError("lock", f"{run.name} is unreachable: {result.stderr.strip()}", run.name)
            if not result.ok:
                holder = self.call(run, cmd.read_file(f"{run.remote.host.lock}/info.json")).stdout
                self.unlock_all()
                raise LockHeld(f"{run.name}: a deploy holds the lock: {lock_holder(holder)}")
            run.locked = True
            self.run_step(steps[2], run)

    def unlock_all(self) -> None:
        """Release the locks this run holds."""
        for run in self.hosts:
            if run.locked:
                self.call(run, cmd.drop_lock(run.remote.host.lock))
                run.locked = False

    def already_deployed(self) -> bool:
        """Re-running a deploy of what every host already serves healthy is a no-op."""
        return all(
            r.previous is not None
            and r.previous == (r.journal[-1] if r.journal else None)
            and r.previous.version == self.release.version
            and (self.env.source != "git" or r.commit == self.release.commit == r.previous.commit)
            for r in self.hosts
        )

    def forward(self) -> None:
        """Deploy, migrate and check; a failure raises StageError after the stage is reported."""
        migrate = self.env.migrate
        if migrate and migrate.run == "exec":
            # The running release knows its revision; with nothing running, read it after `up`.
            try:
                self.report.db_before = self.read_revision()
                self.revision_known = True
            except StageError:
                pass
        self.stage("deploy", self.deploy_all)
        if self.env.migrate:
            self.stage("migrate", self.migrate)
        self.stage("health", lambda: self.check(self.release.version))
        self.record(HEALTHY, "")
        self.report.outcome = "deployed"

    def stage(self, name: str, body: Callable[[], object]) -> None:
        """Run a stage, timing it into the report."""
        self.context.say(f"-> {name}")
        started = time.monotonic()
        try:
            body()
        except StageError as exc:
            self.report.stages.append(StageResult(name, "failed", _since(started), str(exc)))
            self.report.reason = f"{name} failed"
            self.keep_output(exc)
            raise
        except Cancelled:
            self.report.stages.append(StageResult(name, "failed", _since(started), "cancelled"))
            raise
        self.report.stages.append(StageResult(name, "ok", _since(started)))

    def keep_output(self, exc: StageError) -> None:
        """What a failed command printed goes into the evidence."""
        if exc.output:
            self.report.evidence.append(Evidence(exc.host, f"output of {exc.stage}", exc.output))

    def deploy_all(self) -> None:
        """Each host in turn: the new release in place and started."""
        for run in self.hosts:
            for step in self.deploy_steps(run):
                run.touched = True
                self.run_step(step, run)

    def read_revision(self) -> str | None:
        """The database revision now (None: no revision yet); StageError when it cannot be read."""
        run = self.migrate_host
        return parse_revision(self.run_step(Step("migrate", run.name, self.migrate_argv("current")), run))

    def migrate(self) -> None:
        """Upgrade the database with the new release's migrations."""
        run = self.migrate_host
        if not self.revision_known:
            self.report.db_before = self.read_revision()
            self.revision_known = True
        self.migrated = True
        self.run_step(Step("migrate", run.name, self.migrate_argv("upgrade")), run)
        self.report.db_after = self.read_revision()

    def check(self, version: str, record: bool = True) -> list[HealthResult]:
        """Every health check on every host; StageError names what failed.

        ``record`` keeps the verdicts in the report (the rollback's re-check does not replace them).
        """
        results = []
        started = time.monotonic()
        for run in self.hosts:
            self.check_cancel()
            results += check_host(
                self.env.health,
                run.remote,
                run.project,
                version,
                self.context.http,
                self.context.sleep,
            )
            if not all(r.ok for r in results):
                break  # one failing host is enough to roll back: waiting on the others is downtime
        if record:
            self.report.health = results
            self.report.timings["health"] = round(time.monotonic() - started, 3)
        bad = [r for r in results if not r.ok]
        if bad:
            raise StageError("health", "; ".join(f"{r.host}: {r.check}: {r.detail}" for r in bad))
        return results

    def capture_evidence(self) -> None:
        """Logs and container states of the touched hosts, before the rollback replaces them."""
        failing = {r.host for r in self.report.health if not r.ok}
        for run in self.hosts:
            if not run.touched or (failing and run.name not in failing):
                continue
            logs = self.call(run, run.project.logs(self.release.version, []))
            self.report.evidence.append(Evidence(run.name, "logs", logs.stdout + logs.stderr))
            states = self.call(run, run.project.ps(self.release.version))
            rows = [f"{c.service}: {c.state} {c.health} ({c.status})" for c in cmd.parse_ps(states.stdout)]
            self.report.evidence.append(Evidence(run.name, "containers", "\n".join(rows)))

    def roll_back(self, cancelled: bool) -> None:
        """Downgrade with the new code, restore the previous release, prove it with health checks."""
        parts = self.report.rollback
        self.context.say(f"-> rollback ({self.report.reason})")
        commands_before = self.command_seconds
        ok = True
        if self.migrated:
            ok = self.part(parts, "downgrade", self.migrate_host.name, self.downgrade) and ok
        ok = self.restore_all(parts) and ok
        restored = {r.previous.version for r in self.hosts if r.touched and r.previous}
        if ok and len(restored) == 1 and self.env.health:
            version = restored.pop()
            ok = self.part(parts, "health", "", lambda: self.check(version, record=False)) and ok
        self.report.timings["rollback"] = round(time.monotonic() - self.failed_at, 3)
        self.report.timings["rollback_commands"] = round(self.command_seconds - commands_before, 3)
        self.report.outcome = ("cancelled" if cancelled else "rolled_back") if ok else "rollback_failed"
        self.record(ROLLED_BACK if ok else FAILED, self.report.reason)

    def part(self, parts: list[StageResult], name: str, host: str, body: Callable[[], object]) -> bool:
        """Run one part of the rollback; record how it ended without stopping the others."""
        started = time.monotonic()
        try:
            body()
        except _NothingToDo as exc:
            parts.append(StageResult(name, "ok", _since(started), str(exc), host))
            return True
        except PipelineError as exc:
            parts.append(StageResult(name, "failed", _since(started), str(exc), host))
            if isinstance(exc, StageError):
                self.keep_output(exc)
            return False
        parts.append(StageResult(name, "ok", _since(started), "", host))
        return True

    def downgrade(self) -> None:
        """Back to the revision read before the deploy, if the database moved."""
        run = self.migrate_host
        before = self.report.db_before
        if self.read_revision() == before:
            raise _NothingToDo(f"the database is still at {before or 'base'}")
        self.run_step(Step("rollback", run.name, self.migrate_argv("downgrade", before or "base")), run)

    def restore_all(self, parts: list[StageResult]) -> bool:
        """The previous release back on every touched host, the hosts in parallel, step by step."""
        started = time.monotonic()
        plans = {run.name: (run, self.restore_steps(run)) for run in self.hosts if run.touched}
        errors: dict[str, StageError] = {}
        for index in range(max((len(steps) for _, steps in plans.values()), default=0)):
            batch = [
                (run, steps[index])
                for name, (run, steps) in plans.items()
                if index < len(steps) and name not in errors
            ]
            commands = [run.remote.command(step.argv, step.stdin) for run, step in batch]
            began = time.monotonic()
            results = batch[0][0].remote.executor.run_all(commands) if batch else []
            self.command_seconds += time.monotonic() - began
            for (run, step), result in zip(batch, results, strict=True):
                try:
                    _checked(step, run, result)
                except StageError as exc:
                    errors[run.name] = exc
                    self.keep_output(exc)
        for name in plans:
            error = errors.get(name)
            status, detail = ("failed", str(error)) if error else ("ok", "")
            parts.append(StageResult("restore", status, _since(started), detail, name))
        return not errors

    def record(self, result: str, reason: str) -> None:
        """Append this run's outcome to every touched host's journal (every host on success)."""
        for run in self.hosts:
            if result != HEALTHY and not run.touched:
                continue
            previous = run.previous.version if run.previous else None
            entry = Entry(
                event="deploy", version=self.release.version, commit=self.release.commit,
                previous_version=previous, db_before=self.report.db_before,
                db_after=self.report.db_after, result=result, reason=reason,
                who=self.context.who, at=self.context.now(), run_url=self.context.run_url,
                host=run.name,
            )  # fmt: skip
            entries = [entry]
            if result == ROLLED_BACK and run.previous is not None:
                entries.append(
                    Entry(
                        **{
                            **run.previous.__dict__,
                            "event": "rollback",
                            "result": RESTORED,
                            "reason": f"{self.release.version} {reason}",
                            "at": self.context.now(),
                            "who": self.context.who,
                            "run_url": self.context.run_url,
                        }
                    )
                )
            text = "".join(e.line() for e in entries)
            written = self.call(run, cmd.append_file(run.remote.host.journal), stdin=text)
            if not written.ok:
                detail = f"the journal was not written: {written.stderr.strip()}"
                self.report.stages.append(StageResult("record", "failed", 0.0, detail, run.name))


def _checked(step: Step, run: HostRun, result: Result) -> str:
    """The step's output, or StageError with the command's last words."""
    if not result.ok:
        output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-50:])
        words = (result.stderr or result.stdout).strip().splitlines()[-3:]
        message = f"{step.render()} exited {result.returncode}: {' / '.join(words)}"
        raise StageError(step.stage, message, run.name, output)
    return result.stdout


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
