"""What each channel is sent: release notes and incidents in Telegram HTML, Slack Block Kit and JSON,
within each API's limits however long the CHANGELOG or the evidence."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

import pytest

from pipeline.notify import Notification, slack_payload, telegram_payload, webhook_payload
from pipeline.notifyformat import (
    _SLACK,
    _TELEGRAM,
    SLACK_BLOCK_LIMIT,
    SLACK_HEADER_LIMIT,
    SLACK_SECTION_LIMIT,
    TELEGRAM_TEXT_LIMIT,
    markdown_line,
    units,
    visible_text,
)
from pipeline.releasenotes import ReleaseNotes

NOTES_URL = "https://github.com/acme/app/blob/0123456789ab/CHANGELOG.md"
RUN_URL = "https://github.com/acme/app/actions/runs/42"


class TelegramHtml(HTMLParser):
    """Fails on what the Bot API's HTML parser refuses: unknown tags, unclosed or stray tags,
    entities other than the four it knows."""

    ALLOWED = frozenset({"b", "i", "u", "s", "code", "pre", "a"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in self.ALLOWED, tag
        assert tag != "a" or [name for name, _ in attrs] == ["href"]
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open.pop() == tag, f"stray </{tag}>"

    def handle_entityref(self, name: str) -> None:
        assert name in {"lt", "gt", "amp", "quot"}, name

    def handle_charref(self, name: str) -> None:
        raise AssertionError(f"&#{name};")


def assert_valid_telegram_html(text: str) -> None:
    parser = TelegramHtml()
    for line in text.split("\n"):  # every tag opened on a line is closed on it
        parser.feed(line)
        assert parser.open == [], line
    parser.close()


def notes(lines: list[str], url: str = NOTES_URL) -> ReleaseNotes:
    return ReleaseNotes("2.0.0", tuple(lines), url=url)


def deployed(release_notes: ReleaseNotes | None, run_url: str = RUN_URL, **report: Any) -> Notification:
    data = {"version": "2.0.0", "units": {"web1": "deployed"}, **report}
    return Notification(
        "production",
        "2.0.0",
        "deployed",
        "2.0.0 deployed to production",
        run_url=run_url,
        report=data,
        commit="0123456789abcdef0123",
        who="alice",
        notes=release_notes,
    )


HUGE = [
    "### Added",
    *(
        f"- **Item {i}** with `code <{i}>` & an emoji 🚀 and [a link](https://example.com/{i})"
        for i in range(600)
    ),
]


def test_release_notes_go_to_telegram_as_html_with_the_teams_facts_first() -> None:
    lines = [
        "### Added",
        "- **Voice** messages in `bot` <3 & [docs](https://docs.example.com)",
        "",
        "### Fixed",
    ]
    text = telegram_payload(deployed(notes([*lines, "- a crash"])), "-1")["text"]
    assert text.split("\n") == [
        "<b>✅ production: 2.0.0 deployed</b>",
        "2.0.0 deployed to production",
        "<b>Version:</b> 2.0.0",
        "<b>Environment:</b> production",
        "<b>Commit:</b> 0123456789ab",
        "<b>By:</b> alice",
        f'<b>Run:</b> <a href="{RUN_URL}">CI run</a>',
        "",
        "<b>What's new in 2.0.0</b>",
        "<b>Added</b>",
        '• <b>Voice</b> messages in <code>bot</code> &lt;3 &amp; <a href="https://docs.example.com">docs</a>',
        "",
        "<b>Fixed</b>",
        "• a crash",
    ]
    assert_valid_telegram_html(text)


def test_a_huge_changelog_is_cut_for_telegram_at_a_line_with_a_link_to_the_full_notes() -> None:
    payload = telegram_payload(deployed(notes(HUGE)), "-1")
    text = payload["text"]
    assert_valid_telegram_html(text)
    assert TELEGRAM_TEXT_LIMIT - 200 < units(visible_text(text)) <= TELEGRAM_TEXT_LIMIT
    *kept, last = text.split("\n")
    assert last == f'<b>… full notes:</b> <a href="{NOTES_URL}">{NOTES_URL}</a>'
    assert kept[-1].startswith("• <b>Item ") and kept[-1].endswith("</a>")  # whole lines only
    assert len(text) > TELEGRAM_TEXT_LIMIT  # the markup is not counted, as Telegram does not count it


def test_entities_count_as_one_character_so_a_message_just_under_the_limit_is_not_cut() -> None:
    body = ["&" * 1000, "<" * 1000, ">" * 1000]
    text = telegram_payload(deployed(notes(body)), "-1")["text"]
    assert "… full notes" not in text
    assert text.count("&amp;") == 1000 and units(visible_text(text)) < TELEGRAM_TEXT_LIMIT


def test_one_endless_line_is_shortened_to_fit_and_the_link_follows() -> None:
    text = telegram_payload(deployed(notes(["- " + "🔥 <x> & " * 2000])), "-1")["text"]
    assert_valid_telegram_html(text)
    assert units(visible_text(text)) <= TELEGRAM_TEXT_LIMIT
    cut = text.split("\n")[-2]
    assert cut.startswith("• 🔥 &lt;x&gt; &amp;") and cut.endswith("…")


def test_without_a_changelog_link_the_cut_points_to_the_run_else_says_so() -> None:
    to_run = telegram_payload(deployed(notes(HUGE, url="")), "-1")["text"]
    assert to_run.endswith(f'<b>… full notes:</b> <a href="{RUN_URL}">{RUN_URL}</a>')
    nowhere = telegram_payload(deployed(notes(HUGE, url=""), run_url=""), "-1")["text"]
    assert nowhere.endswith("… cut to fit: the rest is in the deploy's output")
    assert units(visible_text(nowhere)) <= TELEGRAM_TEXT_LIMIT


def test_missing_release_notes_are_said_and_the_deploy_is_still_told() -> None:
    missing = ReleaseNotes("2.0.0", missing="CHANGELOG.md has no section for 2.0.0")
    text = telegram_payload(deployed(missing), "-1")["text"]
    assert text.endswith(
        "<b>What's new in 2.0.0</b>\nNo release notes: CHANGELOG.md has no section for 2.0.0."
    )
    assert webhook_payload(deployed(missing))["notes"] == {
        "version": "2.0.0",
        "found": False,
        "missing": "CHANGELOG.md has no section for 2.0.0",
        "markdown": "",
        "url": "",
    }


def test_a_huge_changelog_fits_slacks_block_kit_limits() -> None:
    payload = slack_payload(deployed(notes(HUGE * 3)))
    blocks = payload["blocks"]
    assert len(blocks) <= SLACK_BLOCK_LIMIT
    assert blocks[0]["type"] == "header" and blocks[0]["text"]["type"] == "plain_text"
    assert all(units(b["text"]["text"]) <= SLACK_SECTION_LIMIT for b in blocks[1:])
    assert all(b["text"]["text"].strip() for b in blocks)
    assert blocks[-1]["text"]["text"] == f"*… full notes:* <{NOTES_URL}|{NOTES_URL}>"
    assert payload["text"] == "✅ production: 2.0.0 deployed\n2.0.0 deployed to production"


def test_a_changelog_that_fits_in_fifty_blocks_is_split_between_lines_not_cut() -> None:
    payload = slack_payload(deployed(notes(HUGE)))
    sections = [b["text"]["text"] for b in payload["blocks"][1:]]
    assert len(sections) > 2
    said = "\n".join(sections)
    assert all(f"*Item {i}*" in said for i in range(600)) and "full notes" not in said


def test_a_long_title_is_cut_to_slacks_header_limit_and_a_huge_line_to_a_section() -> None:
    long_env = "e" * 300
    note = Notification(long_env, "2.0.0", "message", "x" * 5000)
    payload = slack_payload(note)
    header = payload["blocks"][0]["text"]["text"]
    assert units(header) == SLACK_HEADER_LIMIT and header.endswith("…")
    assert all(units(b["text"]["text"]) <= SLACK_SECTION_LIMIT for b in payload["blocks"][1:])


@pytest.mark.parametrize(
    ("markdown", "telegram", "slack"),
    [
        ("### Added", "<b>Added</b>", "*Added*"),
        ("- item", "• item", "• item"),
        ("  * nested", "  • nested", "  • nested"),
        ("**bold** and __also__", "<b>bold</b> and <b>also</b>", "*bold* and *also*"),
        ("`a<b>`", "<code>a&lt;b&gt;</code>", "`a&lt;b&gt;`"),
        (
            "[docs](https://x.io/a?b=1&c=2)",
            '<a href="https://x.io/a?b=1&amp;c=2">docs</a>',
            "<https://x.io/a?b=1&c=2|docs>",
        ),
        ("[local](../README.md)", "[local](../README.md)", "[local](../README.md)"),
        ("**unclosed & <tag>", "**unclosed &amp; &lt;tag&gt;", "**unclosed &amp; &lt;tag&gt;"),
        ('say "hi"', 'say "hi"', 'say "hi"'),
    ],
)
def test_changelog_markdown_becomes_each_channels_markup(markdown: str, telegram: str, slack: str) -> None:
    assert markdown_line(markdown, _TELEGRAM) == telegram
    assert markdown_line(markdown, _SLACK) == slack


FAILED = {
    "version": "2.0.0",
    "previous": {"web1": "1.0.0", "web2": "1.0.0"},
    "stages": [{"name": "migrate", "status": "failed", "detail": "web1: alembic exited 1"}],
    "rollback": [
        {"name": "downgrade", "status": "failed", "host": "web1", "detail": "alembic downgrade exited 1"},
        {"name": "restore", "status": "ok", "host": "web1"},
        {"name": "restore", "status": "ok", "host": "web2"},
    ],
    "units": {"web1": "rollback failed", "web2": "restored"},
    "evidence": [{"host": "web1", "kind": "output of migrate", "text": "step 1\nIntegrityError: <null>\n"}],
    "emergency": "payments are down, hotfix",
    "waived": ["changelog", "version"],
    "backups": [
        {
            "host": "web1",
            "name": "pre-2.0.0.sql.gz",
            "restore": "invoke restore --env production --from pre-2.0.0.sql.gz",
        }
    ],
}


def incident(**changes: Any) -> Notification:
    return Notification(
        "production",
        "2.0.0",
        "rollback_failed",
        "2.0.0 failed and the ROLLBACK FAILED",
        run_url=RUN_URL,
        report={**FAILED, **changes},
        commit="0123456789abcdef",
        who="alice",
    )


def test_a_failed_rollback_is_an_incident_that_calls_for_a_human_now() -> None:
    text = telegram_payload(incident(), "-1")["text"]
    assert_valid_telegram_html(text)
    assert text.split("\n")[:10] == [
        "<b>🔥 production: rollback FAILED</b>",
        "🚨 <b>EMERGENCY deploy: payments are down, hotfix</b>",
        "<b>What failed:</b> migrate: web1: alembic exited 1",
        "<b>Impact:</b> UNKNOWN on web1: a broken, old or mixed release may serve users",
        "<b>Rollback:</b> downgrade FAILED [web1]; restore ok [web1, web2] "
        "(web1: alembic downgrade exited 1)",
        "<b>Serving now:</b> unknown (rollback failed) on web1; 1.0.0 on web2",
        "🚨 <b>Human needed now: YES: the rollback failed; check what serves, "
        "restore the backup if one was taken</b>",
        "<b>Backup:</b> host: web1; name: pre-2.0.0.sql.gz; restore: invoke restore --env production --from "
        "pre-2.0.0.sql.gz",
        "<b>Waived checks:</b> changelog, version",
        "<b>Version:</b> 2.0.0",
    ]
    assert text.endswith(
        "<b>Evidence</b>\n<code>output of migrate from web1:</code>\n<code>  | step 1</code>\n"
        "<code>  | IntegrityError: &lt;null&gt;</code>"
    )


def test_the_incident_goes_to_slack_and_the_webhook_too() -> None:
    section = slack_payload(incident())["blocks"][1]["text"]["text"]
    assert section.startswith(
        ":rotating_light: *EMERGENCY deploy: payments are down, hotfix*\n*What failed:*"
    )
    assert ":rotating_light: *Human needed now: YES: the rollback failed" in section
    sent = webhook_payload(incident())
    assert sent["incident"]["human_needed"] is True
    assert sent["incident"]["serving"] == "unknown (rollback failed) on web1; 1.0.0 on web2"
    assert (sent["emergency"], sent["waived"]) == ("payments are down, hotfix", ["changelog", "version"])
    assert sent["backups"] == FAILED["backups"]
    assert json.loads(json.dumps(sent)) == sent


def test_a_report_without_the_other_features_fields_renders_without_them() -> None:
    bare = {k: v for k, v in FAILED.items() if k not in ("emergency", "waived", "backups")}
    text = telegram_payload(incident(), "-1")["text"]
    plain = telegram_payload(Notification("p", "2.0.0", "rolled_back", "s", report=bare), "-1")["text"]
    assert "EMERGENCY" in text and "EMERGENCY" not in plain
    assert "Backup" not in plain and "Waived" not in plain


def test_huge_evidence_keeps_the_incident_and_cuts_the_evidence_with_a_link_to_the_run() -> None:
    evidence = [{"host": f"web{i}", "kind": "logs", "text": ("x" * 199 + "\n") * 50} for i in range(3)]
    health = [
        {"host": f"web{i}", "check": "http", "ok": False, "detail": "answered 500 " + "y" * 400}
        for i in range(40)
    ]
    text = telegram_payload(incident(evidence=evidence, health=health), "-1")["text"]
    assert_valid_telegram_html(text)
    assert units(visible_text(text)) <= TELEGRAM_TEXT_LIMIT
    assert "<b>Human needed now" in text or "Human needed now:" in text
    assert text.endswith(f'<b>… full report:</b> <a href="{RUN_URL}">{RUN_URL}</a>')
