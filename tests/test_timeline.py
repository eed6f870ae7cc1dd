"""The engine times each stage on each unit, for the job summary's timeline and the live progress."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from test_engine import V2, make

from pipeline.targets.fake import FakeTarget


def test_each_stage_has_its_start_and_each_unit_its_span_and_the_failed_one_is_marked() -> None:
    target = FakeTarget(["web1", "web2"])
    target.fail_at("health", "web2")
    engine = make(target)
    report = engine.deploy(V2, engine.read())
    assert report.outcome == "rolled_back"
    names = [s.name for s in report.stages]
    assert names == ["deploy", "migrate", "health"]
    starts = [s.start for s in report.stages]
    assert starts == sorted(starts) and starts[0] >= 0
    health = report.stages[-1]
    assert {s.host: s.status for s in health.spans} == {"web1": "ok", "web2": "failed"}
    assert all(s.start >= health.start and s.seconds >= 0 for s in health.spans)
    assert [s.host for s in report.stages[0].spans] == ["web1", "web2"]
    end_of_health = max(s.start + s.seconds for s in health.spans)
    assert report.rollback and all(p.start >= end_of_health for p in report.rollback)
    assert {(p.name, p.host) for p in report.rollback} >= {("restore", "web1"), ("restore", "web2")}


def test_a_unit_stopped_because_another_failed_is_cancelled_not_failed() -> None:
    target = FakeTarget(["web1", "web2"])
    target.fail_at("deploy", "web1")
    target.fail_at("deploy", "web2", "hang")
    report = make(target).deploy(V2, make(target).read())
    spans = {s.host: s.status for s in report.stages[0].spans}
    assert spans == {"web1": "failed", "web2": "cancelled"}


def test_the_context_is_told_when_each_stage_runs_on_each_unit_and_when_it_ends() -> None:
    seen: list[tuple[str, str, str]] = []

    @contextmanager
    def activity(stage: str, unit: str) -> Iterator[None]:
        seen.append(("begin", stage, unit))
        try:
            yield
        finally:
            seen.append(("end", stage, unit))

    target = FakeTarget(["web1"])
    target.broken = {"2.0.0"}
    engine = make(target)
    engine.context.activity = activity
    engine.deploy(V2, engine.read())
    assert seen == [
        (edge, stage, "web1")
        for stage in ("deploy", "migrate", "health", "downgrade", "restore", "health")
        for edge in ("begin", "end")
    ]
