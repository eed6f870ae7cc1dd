"""The GitHub job summary of a run: the outcome first, then stages by host, each host's fate, the
databases, the rollback, the timeline (a Mermaid gantt chart) and the evidence.

GitHub refuses a step summary over 1 MiB; the evidence is cut first (each capture keeps its end,
where the failure is), then, should the rest still not fit, the tables themselves.
"""

from __future__ import annotations

import html

from pipeline.errors import ExitCode
from pipeline.gantt import render_gantt
from pipeline.runreport import Evidence, RunReport, StageResult

SUMMARY_LIMIT = 1_000_000  # bytes, under GitHub's 1 MiB per step (a step may hold other summaries)
EVIDENCE_CHARS = 6000  # the end of each capture, at most
DETAIL_CHARS = 500  # a table cell's detail, at most
NOTE_ROOM = 200  # kept for the note that says evidence was cut
_WORDS = {"ok": "ok", "failed": "**failed**", "cancelled": "cancelled", "skipped": "skipped"}


def job_summary(report: RunReport, limit: int = SUMMARY_LIMIT, task: str = "deploy") -> str:
    """The Markdown for ``$GITHUB_STEP_SUMMARY``, at most ``limit`` bytes in UTF-8."""
    body = "\n".join(
        [*_head(report, task), *_stages(report), *_hosts(report), *_rollback(report), *_timeline(report)]
    )
    body = _fit(body, limit - (NOTE_ROOM if report.evidence else 0) - 1)
    room = limit - _size(body) - 1
    return body + "\n" + "".join(_evidence(report.evidence, room))


def _head(report: RunReport, task: str) -> list[str]:
    marker = "OK" if report.exit_code == ExitCode.OK else f"EXIT {int(report.exit_code)}"
    facts = [f"version {report.version}"]
    facts += [f"commit {report.commit[:10]}"] if report.commit else []
    facts += [f"by {report.who}"] if report.who else []
    facts += [f"run {report.run}"] if report.run else []
    if "wall" in report.timings:
        facts.append(f"{report.timings['wall']:.1f} s")
    lines = [f"### {task} {report.environment}: {marker}: {_cell(report.summary())}", "", " · ".join(facts)]
    if report.emergency:
        lines += ["", f"**waived (emergency): {', '.join(report.waived) or 'nothing'}**"]
    if report.debug_log:
        lines += ["", f"The traceback of the internal error is in `{report.debug_log}` on the runner."]
    return lines


def _hosts_of(report: RunReport) -> list[str]:
    """Every unit the run knew of, in the order it first met them."""
    seen = dict.fromkeys(report.previous)
    for stage in [*report.stages, *report.rollback]:
        seen.update(dict.fromkeys(s.host for s in stage.spans))
        if stage.host:
            seen[stage.host] = None
    seen.update(dict.fromkeys(report.units))
    return list(seen)


def _stages(report: RunReport) -> list[str]:
    if not report.stages:
        return []
    hosts = _hosts_of(report)
    lines = ["", "#### Stages", "", "| stage | result | time | " + " | ".join(map(_cell, hosts)) + " |"]
    lines.append("|---|---|---|" + "---|" * len(hosts))
    for stage in report.stages:
        cells = [_host_cell(stage, host) for host in hosts]
        lines.append(f"| {_cell(stage.name)} | {_WORDS.get(stage.status, stage.status)} | "
                     f"{stage.seconds:.1f} s | " + " | ".join(cells) + " |")  # fmt: skip
    failed = [s for s in report.stages if s.status == "failed" and s.detail]
    if failed:
        lines.append("")
        lines += [f"- **{_cell(s.name)}**{_on(s.host)}: {_cell(s.detail)}" for s in failed]
    bad = [r for r in report.health if not r.ok]
    if bad:
        lines += ["", "Failed checks:", ""]
        lines += [f"- {_cell(r.host)}: {_cell(r.check)}: {_cell(r.detail)}" for r in bad]
    return lines


def _host_cell(stage: StageResult, host: str) -> str:
    for span in stage.spans:
        if span.host == host:
            return f"{_WORDS.get(span.status, span.status)} {span.seconds:.1f} s"
    if stage.host == host:
        return f"{_WORDS.get(stage.status, stage.status)} {stage.seconds:.1f} s"
    return "-"


def _hosts(report: RunReport) -> list[str]:
    hosts = _hosts_of(report)
    if not hosts:
        return []
    lines = ["", "#### Hosts", "", "| host | served before | fate |", "|---|---|---|"]
    for host in hosts:
        before = report.previous.get(host) or "nothing"
        fate = report.units.get(host) or _fate(report)
        lines.append(f"| {_cell(host)} | {_cell(before)} | {_cell(fate)} |")
    if report.databases:
        lines += ["", "| database | before | after | end |", "|---|---|---|---|"]
        for name, db in report.databases.items():
            moves = [_cell(str(db.get(k) or "-")) for k in ("before", "after", "end")]
            lines.append(f"| {_cell(name)} | " + " | ".join(moves) + " |")
    return lines


def _fate(report: RunReport) -> str:
    """A unit's fate when the engine did not name one: what the outcome means for every unit."""
    named = {"noop": "already serving", "interrupted": "unchanged"}
    return named.get(report.outcome, report.outcome.replace("_", " "))


def _rollback(report: RunReport) -> list[str]:
    if not report.rollback:
        return []
    ok = all(p.status == "ok" for p in report.rollback)
    lines = ["", "#### Rollback: " + ("done" if ok else "**FAILED**, a human is needed now"), ""]
    lines += ["| part | host | result | time | detail |", "|---|---|---|---|---|"]
    for part in report.rollback:
        cells = [_cell(part.name), _cell(part.host), _WORDS.get(part.status, part.status)]
        cells += [f"{part.seconds:.1f} s", _cell(part.detail)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _timeline(report: RunReport) -> list[str]:
    chart = render_gantt(report)
    if not chart:
        return []
    return ["", "#### Timeline", "", "```mermaid", *chart, "```"]


def _evidence(items: list[Evidence], room: int) -> list[str]:
    """Each capture's end in a ``<details>``, within ``room`` bytes; what does not fit is named."""
    blocks: list[str] = []
    for index, item in enumerate(items):
        share = (room - NOTE_ROOM) // (len(items) - index)  # the rest share what is left evenly
        block = _details(item, share) or _cut(f"{item.kind} from {item.host}: cut")
        if _size(block) > room - NOTE_ROOM:
            blocks.append(_cut(f"{len(items) - index} more captures cut"))
            break
        blocks.append(block)
        room -= _size(block)
    return blocks


def _cut(what: str) -> str:
    return f"\n_{html.escape(what)}, over the size limit of a job summary (the JSON report has it)_\n"


def _details(item: Evidence, room: int) -> str | None:
    """One capture in a collapsed block, its text's end kept within ``room`` bytes (None: no room)."""
    head = f"\n<details><summary>{html.escape(item.kind)} from {html.escape(item.host)}</summary>\n\n"
    text = item.text.strip()[-EVIDENCE_CHARS:]
    fence = "`" * max(3, _longest_run(text, "`") + 1)  # a fence no line of the text can close
    frame = _size(head) + 2 * len(fence) + len("\n\n\n</details>\n") + 20
    if room - frame < 200:
        return None
    kept = _tail(text, room - frame)
    cut = "[...]\n" if len(kept) < len(item.text.strip()) else ""
    return f"{head}{fence}\n{cut}{kept}\n{fence}\n</details>\n"


def _longest_run(text: str, char: str) -> int:
    longest = run = 0
    for c in text:
        run = run + 1 if c == char else 0
        longest = max(longest, run)
    return longest


def _tail(text: str, size: int) -> str:
    """The end of the text within ``size`` bytes of UTF-8, never half a character."""
    data = text.encode("utf-8")
    return text if len(data) <= size else data[-size:].decode("utf-8", "ignore")


def _fit(text: str, size: int) -> str:
    """The text within ``size`` bytes, cut at a line with a note (only for runs of thousands of hosts)."""
    if _size(text) <= size:
        return text
    kept = text.encode("utf-8")[: max(0, size - 100)].decode("utf-8", "ignore").rpartition("\n")[0]
    return kept + "\n\n_the rest of this summary was cut: over the size limit of a job summary_"


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _cell(text: str) -> str:
    """Text for a table cell or list item: on one line, ``|`` escaped, long details cut."""
    one = " ".join(text.split()).replace("|", "\\|")
    return one if len(one) <= DETAIL_CHARS else one[: DETAIL_CHARS - 3] + "..."


def _on(host: str) -> str:
    return f" on {_cell(host)}" if host else ""
