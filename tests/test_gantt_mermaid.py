"""The timeline read by Mermaid itself, where it is installed: the same tasks as the grammar check of
``test_gha_output`` finds, with the times and marks Mermaid computes.

Mermaid and jsdom weigh some 180 MB, so the suite does not install them: set
``PIPELINE_MERMAID_DIR`` to a directory where ``npm install mermaid@11 jsdom`` was run to include
this test (it is skipped otherwise; the grammar check runs everywhere).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_gha_output import failed_run, gantt_tasks

from pipeline.gantt import render_gantt
from pipeline.runreport import RunReport, Span, StageResult

MERMAID_DIR = os.environ.get("PIPELINE_MERMAID_DIR", "")
SCRIPT = Path(__file__).parent / "data" / "mermaid_tasks.mjs"

pytestmark = pytest.mark.skipif(
    not (MERMAID_DIR and (Path(MERMAID_DIR) / "node_modules" / "mermaid").is_dir() and shutil.which("node")),
    reason="PIPELINE_MERMAID_DIR names no directory where `npm install mermaid@11 jsdom` was run",
)


def mermaid_tasks(chart: list[str], folder: Path) -> list[list[object]]:
    """The tasks as Mermaid reads them (its parser, then its own computation of the dates)."""
    (folder / "node_modules").symlink_to(Path(MERMAID_DIR) / "node_modules")
    script = folder / SCRIPT.name
    script.write_text(SCRIPT.read_text())
    done = subprocess.run(
        ["node", str(script)], input="\n".join(chart) + "\n", capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return list(json.loads(done.stdout))


def hostile_run() -> RunReport:
    report = RunReport("prod;x", "2.0.0", None, {}, "rolled_back")
    hosts = ["db:5432", "web#1", "a;b", "50%", "section x", "click me", "2026-01-01", "call it", "é\x1b[2J"]
    spans = [Span(h, 0.25 * i, 0.5, "failed" if i % 2 else "ok") for i, h in enumerate(hosts)]
    report.stages = [StageResult("title: deploy", "failed", 3.0, start=0.0, spans=spans)]
    report.rollback = [StageResult("dateFormat YYYY", "ok", 1.0, "", "gantt", 4.0)]
    return report


@pytest.mark.parametrize("report", [failed_run(), hostile_run()], ids=["failed", "hostile names"])
def test_mermaid_reads_every_bar_with_its_times_and_marks_as_the_grammar_check_does(
    report: RunReport, tmp_path: Path
) -> None:
    chart = render_gantt(report)
    expected = [
        [section, name, start, end, "crit" in tags, "done" in tags, "active" in tags]
        for section, name, tags, start, end in gantt_tasks(chart)
    ]
    assert mermaid_tasks(chart, tmp_path) == expected
