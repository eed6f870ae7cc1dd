"""The plan ``--dry-run`` prints: every command on every unit, and the rollback plan beside it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipeline.engine.values import Policy, Release, UnitState
from pipeline.targets.base import Target


def render_plan(
    name: str,
    target: Target,
    policy: Policy,
    release: Release,
    states: Sequence[UnitState],
    revisions: Mapping[str, str],
) -> list[str]:
    """The whole plan; ``revisions`` are the databases' revisions read now (read-only), by unit."""
    units = [s.name for s in states]
    fleet = (
        "all units at once" if policy.strategy == "parallel" else f"rolling, {policy.batch_size} at a time"
    )
    tolerance = (
        "all or nothing"
        if not policy.max_failed_units
        else f"up to {policy.max_failed_units} failed unit(s) restored, the rest kept"
    )
    lines = [f"deploy {release.version} ({release.commit or 'image'}) to {name}: {fleet}, {tolerance}"]
    unit = "release" if target.kind == "helm" else "host"
    for state in states:
        serving = state.serving.version if state.serving else "nothing (first deploy)"
        lines.append(f"  {unit} {state.name}: serving {serving}")
    for unit in units:
        lines += target.describe(unit, "lock", release)
    for unit in units:
        lines += target.describe(unit, "deploy", release)
    databases = target.databases()
    where = (
        "once, the database is shared" if policy.database == "shared" else "on each host, after its deploy"
    )
    if databases:
        lines.append(f"  migrate  ({where}; the revision is read before and after, and must be the head)")
    for unit in databases:
        lines += target.describe(unit, "migrate", release)
    for unit in units:
        lines += target.describe(unit, "health", release)
    for unit in units:
        lines += target.describe(unit, "record", release)
    lines.append("rollback plan (on a failed stage, a deadline, an error in the pipeline, or a cancel):")
    for unit in databases:
        lines += target.describe(
            unit, "downgrade", release, revision=revisions.get(unit, "<read before migrating>")
        )
    by_name = {s.name: s for s in states}
    for unit in units:
        lines += target.describe(unit, "restore", release, previous=by_name[unit].serving)
    lines.append("  health   the same checks, expecting the previous version")
    d = policy.deadlines
    lines.append(
        f"deadlines: lock {d.lock:g} s, deploy {d.deploy:g} s, migrate {d.migrate:g} s, "
        f"health {d.health:g} s, restore {d.restore:g} s per unit; "
        f"a signal stops the step in flight after {d.cancel_grace:g} s"
    )
    return lines
