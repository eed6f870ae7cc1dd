"""Each channel's payload within its own limits: Telegram HTML, Slack Block Kit, a JSON webhook.

Telegram counts 4,096 characters of the text *after* entity parsing (what the reader sees, in
UTF-16 code units); Slack a header of 150 characters, a section of 3,000 and 50 blocks. A message
too long for either is cut at a line boundary, every tag closed, with a last line saying where the
rest is; never one the API refuses for its length. CHANGELOG Markdown (headings, lists, bold, code,
links) becomes each channel's own markup; anything else is escaped and shown as written.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from pipeline.incident import describe, incident_of, is_incident
from pipeline.notifytext import Line, message_lines, more_link

if TYPE_CHECKING:
    from pipeline.notify import Notification

TELEGRAM_TEXT_LIMIT = 4096
SLACK_HEADER_LIMIT = 150
SLACK_SECTION_LIMIT = 3000
SLACK_BLOCK_LIMIT = 50
SLACK_FALLBACK_LIMIT = 3000

Render = Callable[[Line], str]
Measure = Callable[[str], int]


def telegram_payload(notification: Notification, chat_id: str) -> dict[str, Any]:
    """The sendMessage body: HTML within 4,096 visible UTF-16 units, link previews off."""
    lines = message_lines(notification)
    text = "\n".join(fit(lines, telegram_line, visible_units, TELEGRAM_TEXT_LIMIT, _footer(notification)))
    return {"chat_id": chat_id, "text": text, "parse_mode": "HTML", "disable_web_page_preview": True}


def slack_payload(notification: Notification) -> dict[str, Any]:
    """An incoming-webhook body: a header, sections within Block Kit's limits, and fallback text."""
    n = notification
    header = _plain_cut(n.title, SLACK_HEADER_LIMIT)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}}
    ]
    sections = slack_sections(message_lines(n)[1:])
    room = SLACK_BLOCK_LIMIT - 1
    if len(sections) > room:
        footer = slack_line(_footer(n))
        sections = [*sections[: room - 1], footer]
    blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": s}} for s in sections]
    fallback = _slack_escape(_plain_cut(f"{n.title}\n{n.summary}", SLACK_FALLBACK_LIMIT))
    return {"text": fallback, "blocks": blocks}


def webhook_payload(notification: Notification) -> dict[str, Any]:
    """Every field of the notification, structured: the notes, the incident, the whole report."""
    n = notification
    report = n.report
    notes = None
    if n.notes is not None:
        notes = {
            "version": n.notes.version,
            "found": n.notes.found,
            "missing": n.notes.missing,
            "markdown": "\n".join(n.notes.lines),
            "url": n.notes.url,
        }
    incident = asdict(incident_of(report, n.outcome)) if report and is_incident(n.outcome) else None
    if incident is not None:
        incident["evidence"] = list(incident["evidence"])
    return {
        "title": n.title,
        "environment": n.environment,
        "version": n.version,
        "outcome": n.outcome,
        "summary": n.summary,
        "details": list(n.details),
        "commit": n.commit,
        "who": n.who,
        "run_url": n.run_url,
        "notes": notes,
        "incident": incident,
        "emergency": "; ".join(describe(report.get("emergency"))) or None,
        "waived": describe(report.get("waived")),
        "backups": report.get("backups") or None,
        "report": dict(report),
    }


def fit(lines: Sequence[Line], render: Render, measure: Measure, limit: int, footer: Line) -> list[str]:
    """The rendered lines, or as many as fit in ``limit`` (counted by ``measure``, one per line
    break) followed by ``footer``; the line where the cut falls is shortened when room is left."""
    rendered = [render(line) for line in lines]
    if sum(measure(r) for r in rendered) + len(rendered) - 1 <= limit:
        return rendered
    end = render(footer)
    room = limit - measure(end) - 1
    kept: list[str] = []
    for line, text in zip(lines, rendered, strict=True):
        cost = measure(text) + (1 if kept else 0)
        if cost <= room:
            kept.append(text)
            room -= cost
            continue
        shortened = _shorten(line, render, measure, room - (1 if kept else 0))
        if shortened is not None:
            kept.append(shortened)
        break
    return [*kept, end]


def _shorten(line: Line, render: Render, measure: Measure, room: int) -> str | None:
    """The longest prefix of the line's text (ending in ``…``) whose rendering fits, if a useful one does."""
    if line.style in ("blank", "link") or room < 40:
        return None
    low, high = 0, len(line.text)
    while low < high:
        middle = (low + high + 1) // 2
        if measure(render(replace(line, text=line.text[:middle] + "…"))) <= room:
            low = middle
        else:
            high = middle - 1
    return render(replace(line, text=line.text[:low] + "…")) if low > 0 else None


def _footer(n: Notification) -> Line:
    what, url = more_link(n)
    if url:
        return Line(url, "link", f"… {what}", url)
    return Line("… cut to fit: the rest is in the deploy's output")


# --- Telegram HTML ---------------------------------------------------------------------------

_TAG = re.compile(r"<[^>]*>")


def visible_text(text: str) -> str:
    """What Telegram shows of our HTML: tags removed, entities as the characters they stand for."""
    return html.unescape(_TAG.sub("", text))


def visible_units(text: str) -> int:
    """UTF-16 code units of what Telegram shows of our HTML (its 4,096 are counted so)."""
    return units(visible_text(text))


def units(text: str) -> int:
    """UTF-16 code units: what Telegram and Slack count."""
    return len(text.encode("utf-16-le")) // 2


def telegram_line(line: Line) -> str:
    """One line in Telegram's HTML; every tag opened on it is closed on it."""
    text = _html(line.text)
    if line.style == "title":
        return f"<b>{text}</b>"
    if line.style == "alert":
        label = f"{_html(line.label)}: " if line.label else ""
        return f"🚨 <b>{label}{text}</b>"
    if line.style == "field":
        return f"<b>{_html(line.label)}:</b> {text}"
    if line.style == "heading":
        return f"<b>{text}</b>"
    if line.style == "markdown":
        return markdown_line(line.text, _TELEGRAM)
    if line.style == "code":
        return f"<code>{text}</code>" if text else ""
    if line.style == "link":
        return f'<b>{_html(line.label)}:</b> <a href="{_html(line.url, quote=True)}">{text}</a>'
    return text


def _html(text: str, quote: bool = False) -> str:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped.replace('"', "&quot;") if quote else escaped


# --- Slack mrkdwn ------------------------------------------------------------------------------


def slack_line(line: Line) -> str:
    """One line in Slack's mrkdwn (``&``, ``<``, ``>`` escaped; links as ``<url|text>``)."""
    text = _slack_escape(line.text)
    if line.style in ("title", "heading"):
        return f"*{text}*"
    if line.style == "alert":
        label = f"{_slack_escape(line.label)}: " if line.label else ""
        return f":rotating_light: *{label}{text}*"
    if line.style == "field":
        return f"*{_slack_escape(line.label)}:* {text}"
    if line.style == "markdown":
        return markdown_line(line.text, _SLACK)
    if line.style == "code":
        return "`" + text.replace("`", "'") + "`" if text else ""
    if line.style == "link":
        return f"*{_slack_escape(line.label)}:* <{_slack_url(line.url)}|{text}>"
    return text


def slack_sections(lines: Sequence[Line]) -> list[str]:
    """The lines packed into section texts of at most 3,000 characters each, split between lines;
    a line longer than a section is cut."""
    sections: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        text = slack_line(line)
        if units(text) > SLACK_SECTION_LIMIT:
            text = _shorten(line, slack_line, units, SLACK_SECTION_LIMIT) or ""
        cost = units(text) + (1 if current else 0)
        if current and size + cost > SLACK_SECTION_LIMIT:
            sections.append("\n".join(current))
            current, size, cost = [], 0, units(text)
        current.append(text)
        size += cost
    if current:
        sections.append("\n".join(current))
    # Slack refuses an empty or whitespace-only section text.
    return [s for s in (s.strip("\n") for s in sections) if s.strip()]


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_url(url: str) -> str:
    return url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C").replace(" ", "%20")


def _plain_cut(text: str, limit: int) -> str:
    if units(text) <= limit:
        return text
    total = 0
    for index, char in enumerate(text):
        total += units(char)
        if total > limit - 1:
            return text[:index] + "…"
    return text


# --- CHANGELOG Markdown ------------------------------------------------------------------------

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(?P<text>.*?)\s*#*\s*$")
_ITEM = re.compile(r"^(?P<indent>\s*)[-*+]\s+")
_INLINE = re.compile(
    r"`(?P<code>[^`]+)`"
    r"|\*\*(?P<bold>[^*]+?)\*\*"
    r"|__(?P<bold2>[^_]+?)__"
    r"|\[(?P<label>[^\]]+)\]\((?P<url>https?://[^)\s]+)\)"
)

# How each channel writes plain text, code, bold and a link; and a heading.
_Markup = tuple[Callable[[str], str], Callable[[str], str], Callable[[str], str], Callable[[str, str], str]]
_TELEGRAM: _Markup = (
    _html,
    lambda t: f"<code>{_html(t)}</code>",
    lambda t: f"<b>{_html(t)}</b>",
    lambda label, url: f'<a href="{_html(url, quote=True)}">{_html(label)}</a>',
)
_SLACK: _Markup = (
    _slack_escape,
    lambda t: f"`{_slack_escape(t)}`",
    lambda t: f"*{_slack_escape(t)}*",
    lambda label, url: f"<{_slack_url(url)}|{_slack_escape(label)}>",
)


def markdown_line(text: str, markup: _Markup) -> str:
    """A CHANGELOG line in a channel's markup: headings bold, list items as bullets, inline code,
    bold and http(s) links converted; an unclosed marker stays as written."""
    plain, code, bold, link = markup
    heading = _HEADING.match(text)
    if heading:
        return bold(heading["text"])
    item = _ITEM.match(text)
    prefix = ""
    if item:
        prefix = " " * len(item["indent"].expandtabs(2)) + "• "
        text = text[item.end() :]
    out, position = [prefix], 0
    for match in _INLINE.finditer(text):
        out.append(plain(text[position : match.start()]))
        if match["code"] is not None:
            out.append(code(match["code"]))
        elif match["bold"] is not None or match["bold2"] is not None:
            out.append(bold(match["bold"] or match["bold2"]))
        else:
            out.append(link(match["label"], match["url"]))
        position = match.end()
    out.append(plain(text[position:]))
    return "".join(out)
