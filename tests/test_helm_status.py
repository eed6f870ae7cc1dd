"""`status` and `history` of a Helm release: helm's revision, chart and pods beside the ledger."""

from __future__ import annotations

import json
from typing import Any

from pipeline.engine.values import UnitState
from pipeline.helm import parse_history
from pipeline.journal import Entry
from pipeline.operate import history_data, render_history, render_status, status_data
from pipeline.targets.helm import _facts

AT = "2026-11-30T12:00:00Z"
HELM_HISTORY = parse_history(
    json.dumps([
        {"revision": 1, "updated": "2026-11-30T10:00:00.123456789Z", "status": "superseded",
         "chart": "app-0.1.0", "app_version": "1.0.0", "description": "invoke-pipeline deploy 1.0.0 run r1"},
        {"revision": 2, "updated": "2026-11-30T11:00:00.5+00:00", "status": "superseded",
         "chart": "app-0.1.0", "app_version": "1.0.0", "description": "Upgrade complete"},
        {"revision": 3, "updated": "2026-11-30T12:00:00.25Z", "status": "deployed",
         "chart": "app-0.2.0", "app_version": "2.0.0", "description": "invoke-pipeline deploy 2.0.0 run r2"},
    ])
)  # fmt: skip
CRASHING: dict[str, Any] = {
    "metadata": {"name": "web-7d9f8b6c5d-x2kqp"},
    "spec": {"containers": [{"name": "web", "image": "registry.example.com/app:2.0.0"}]},
    "status": {"phase": "Running", "containerStatuses": [
        {"name": "web", "ready": False, "restartCount": 4,
         "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s"}}},
    ]},
}  # fmt: skip
POD_ROW = {
    "name": "web-7d9f8b6c5d-x2kqp", "phase": "Running", "ready": "0/1", "restarts": 4,
    "reason": "CrashLoopBackOff", "images": ["registry.example.com/app:2.0.0"],
}  # fmt: skip


def entry(version: str, revision: str = "", run: str = "", result: str = "healthy") -> Entry:
    return Entry(
        "deploy", version, "c" * 40, None, None, None, result, "", "ci", AT, run=run, revision=revision
    )


def release(journal: list[Entry]) -> UnitState:
    return UnitState("prod/app", journal, facts=_facts(HELM_HISTORY[-1], HELM_HISTORY, [CRASHING]))


LEDGER = [entry("1.0.0", "1", "r1"), entry("2.0.0", "3", "r2")]


def test_status_of_a_release_shows_helms_revision_and_chart_and_each_pod_with_why_it_is_not_ready() -> None:
    assert render_status("k8s", [release(LEDGER)]) == [
        "prod/app: serving 2.0.0",
        "  helm: revision 3, deployed, chart app-0.2.0, app version 2.0.0",
        "  pod web-7d9f8b6c5d-x2kqp: Running ready 0/1 restarts 4 CrashLoopBackOff "
        "(registry.example.com/app:2.0.0)",
        f"  last: deploy 2.0.0 healthy by ci at {AT}",
    ]


def test_status_json_has_helms_revision_and_the_pods_beside_the_ledgers_facts() -> None:
    (host,) = status_data("k8s", [release(LEDGER)])["hosts"]  # type: ignore[misc]
    assert host["serving"] == "2.0.0" and host["last"]["revision"] == "3"
    assert host["helm"] == {
        "revision": 3, "status": "deployed", "chart": "app-0.2.0", "app_version": "2.0.0",
        "updated": "2026-11-30T12:00:00.25Z",
    }  # fmt: skip
    assert host["pods"] == [POD_ROW]
    json.dumps(host)


def test_a_release_never_installed_says_so_in_status() -> None:
    state = UnitState("prod/app", [], facts=_facts(None, [], []))
    assert render_status("k8s", [state]) == [
        "prod/app: serving nothing recorded",
        "  helm: no release installed",
    ]
    (host,) = status_data("k8s", [state])["hosts"]  # type: ignore[misc]
    assert (host["helm"], host["pods"]) == (None, [])


def test_history_shows_each_entry_with_its_helm_revision_and_the_revisions_the_ledger_does_not_name() -> None:
    assert render_history([release(LEDGER)], 10) == [
        "prod/app:",
        f"  {AT} deploy   1.0.0        healthy     ci rev 1",
        f"  {AT} deploy   2.0.0        healthy     ci rev 3",
        "  helm revision 2 not in the ledger: 2026-11-30T11:00:00 superseded 1.0.0 Upgrade complete",
    ]


def test_every_helm_revision_is_listed_when_the_ledger_has_none() -> None:
    lines = render_history([release([])], 10)
    assert [line.split(":")[0] for line in lines[1:]] == [
        "  helm revision 1 not in the ledger", "  helm revision 2 not in the ledger",
        "  helm revision 3 not in the ledger",
    ]  # fmt: skip


def test_history_json_has_the_entries_with_their_revisions_and_helms_whole_history() -> None:
    (host,) = history_data("k8s", [release(LEDGER)], 10)["hosts"]  # type: ignore[misc]
    assert [(e["version"], e["revision"]) for e in host["entries"]] == [("1.0.0", "1"), ("2.0.0", "3")]
    assert [r["revision"] for r in host["helm_history"]] == [1, 2, 3]
    assert host["helm_history"][1] == {
        "revision": 2, "status": "superseded", "chart": "app-0.1.0", "app_version": "1.0.0",
        "updated": "2026-11-30T11:00:00.5+00:00", "description": "Upgrade complete",
    }  # fmt: skip


def compose_host(name: str) -> UnitState:
    return UnitState(name, [entry("1.0.0"), entry("2.0.0", result="rolled_back")])


def test_a_compose_host_renders_as_before_without_helm_lines_or_keys() -> None:
    states = [compose_host("web1"), compose_host("web2")]
    assert render_status("prod", states) == [
        "web1: serving 1.0.0", f"  last: deploy 2.0.0 rolled_back by ci at {AT}",
        "web2: serving 1.0.0", f"  last: deploy 2.0.0 rolled_back by ci at {AT}",
    ]  # fmt: skip
    assert render_history(states[:1], 10) == [
        "web1:",
        f"  {AT} deploy   1.0.0        healthy     ci",
        f"  {AT} deploy   2.0.0        rolled_back ci",
    ]
    status = status_data("prod", states)["hosts"][0]  # type: ignore[index]
    assert list(status) == [
        "host", "serving", "last", "locked", "interrupted", "journal_unreadable", "journal_cut", "damaged",
    ]  # fmt: skip
    history = history_data("prod", states, 10)["hosts"][0]  # type: ignore[index]
    assert list(history) == ["host", "entries", "journal_cut", "damaged"]
