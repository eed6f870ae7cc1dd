"""Emergency deploys: the flags, which checklist items are waived and which never, the mark in the
journal, the report and the notification, the tag, and preflight's list of undocumented emergencies.

The checklist runs on real git repositories (``tests/gitrepos.py``), the tag is pushed to a real bare
repository, and the engine runs against the shipped FakeTarget.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from gitrepos import Repo, invoke

from pipeline import emergency
from pipeline.checklist import CheckResult
from pipeline.config import load_config
from pipeline.emergency import WAIVED, check_skip, reason_of, record_tag, tag_message, waive
from pipeline.engine.run import Context, Engine
from pipeline.engine.values import Policy, Release
from pipeline.errors import ChecklistFailed, InputError
from pipeline.executor import LocalExecutor
from pipeline.journal import Entry, parse_journal, read_journal
from pipeline.notify import Notification, webhook_payload
from pipeline.operate import render_history, render_status
from pipeline.orchestrate import DeployRequest, local_stages
from pipeline.runreport import RunReport
from pipeline.targets.fake import FakeTarget

REASON = "payments drop every order since 03:10"


# -- the flags --------------------------------------------------------------------------------------


def test_the_reason_is_required_with_emergency_and_refused_without_it() -> None:
    assert reason_of(True, f"  {REASON} ") == REASON
    assert reason_of(False, None) == ""
    for given in (None, "", "   "):
        with pytest.raises(InputError, match=r"--emergency needs --reason"):
            reason_of(True, given)
    with pytest.raises(InputError, match=r"--reason: only with --emergency"):
        reason_of(False, REASON)


@pytest.mark.parametrize("reason", ["two\nlines", "a\ttab", "an \x1b[31mescape", "x" * 201])
def test_a_reason_that_is_not_one_short_printable_line_is_refused(reason: str) -> None:
    with pytest.raises(InputError, match=r"^--reason: "):
        reason_of(True, reason)


def test_with_emergency_only_lint_and_test_may_be_skipped() -> None:
    check_skip(REASON, ["lint", "test"])
    check_skip("", ["migrate", "health", "preflight", "notify"])  # a normal deploy: as before
    for stage, why in [
        ("migrate", "migrate, health and rollback always run"),
        ("health", "migrate, health and rollback always run"),
        ("preflight", "waives what a hotfix cannot meet yet"),
        ("notify", "the team is told"),
    ]:
        with pytest.raises(InputError, match=rf"^--skip {stage}: not with --emergency \(.*{why}"):
            check_skip(REASON, [stage])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--emergency"], "error: --emergency needs --reason"),
        (["--reason", REASON], "error: --reason: only with --emergency"),
        (["--emergency", "--reason", "a\nb"], "error: --reason: one line of printable text"),
        (
            ["--emergency", "--reason", REASON, "--skip", "health"],
            "error: --skip health: not with --emergency",
        ),
    ],
)
def test_bad_emergency_flags_exit_2_with_one_line_and_touch_nothing(
    repo: Repo, args: list[str], message: str
) -> None:
    before = repo.git("for-each-ref")
    run = invoke(repo.path, "deploy", "--env", "prod", *args)
    assert run.code == 2, run.stdout + run.stderr
    assert run.stderr.strip().startswith(message), run.stderr
    assert "Traceback" not in run.stderr
    assert repo.git("for-each-ref") == before


# -- waived, and never waived -------------------------------------------------------------------------


def hotfix_config(**top: Any) -> Any:
    env = {"target": "compose", "hosts": ["web1"], "path": "/srv/app"}
    return load_config({"checklist": {"branches": ["main"]}, "environments": {"prod": env}, **top})


def stages(repo: Repo, reason: str = REASON, **top: Any) -> list[CheckResult]:
    """The deploy's local stages as an emergency deploy runs them (not a dry run: lint and test run)."""
    config = hotfix_config(**top)
    request = DeployRequest("prod", emergency=reason)
    return local_stages(LocalExecutor(), repo.path, config, config.environment("prod"), request)


@pytest.fixture
def hotfix(repo: Repo) -> Repo:
    """A hotfix as on-call makes it: VERSION bumped, on a branch of its own, a free-form message, and
    no CHANGELOG entry (the [Unreleased] section is emptied)."""
    repo.git("checkout", "-q", "-b", "hotfix")
    text = repo.path.joinpath("CHANGELOG.md").read_text().replace("### Added\n- Something new.\n\n", "")
    repo.write("CHANGELOG.md", text)
    repo.write("VERSION", "1.1.1\n")
    repo.commit("quick fix for the payment webhook")
    return repo


def test_an_emergency_waives_the_changelog_the_commit_messages_and_the_branch(hotfix: Repo) -> None:
    with pytest.raises(ChecklistFailed) as failed:
        stages(hotfix, reason="")
    assert {r.name for r in failed.value.results if r.failed} == {"changelog", "commits", "branch"}  # type: ignore[attr-defined]

    results = {r.name: r for r in stages(hotfix)}
    for name in ("changelog", "commits", "branch"):
        assert results[name].status == "skip" and results[name].reason.startswith(WAIVED), name
    assert "on hotfix, which is not allowed" in results["branch"].reason
    assert results["commits"].details  # still run: which commit breaks the convention is shown
    assert (results["version"].status, results["clean"].status) == ("pass", "pass")
    assert [r.name for r in emergency.waived(results.values())] == ["changelog", "commits", "branch"]


def test_an_emergency_waives_failing_lint_and_tests(hotfix: Repo) -> None:
    results = {r.name: r for r in stages(hotfix, lint=["false"], test=["sh -c 'echo 3 failed; exit 1'"])}
    assert results["lint"].reason == WAIVED + "`false` exited 1"
    assert results["test"].status == "skip" and results["test"].details == ("3 failed",)


def test_an_emergency_waives_an_undocumented_earlier_emergency(hotfix: Repo) -> None:
    hotfix.git("tag", "-a", "emergency/prod/1.0.1", "-m", "Emergency\n\nReason: before\n", "v1.0.0")
    results = {r.name: r for r in stages(hotfix)}
    assert results["emergency"].status == "skip" and "1.0.1" in results["emergency"].reason


@pytest.mark.parametrize(
    ("breaks", "item"),
    [
        ("bad version", "version"),
        ("version not above the last release", "version"),
        ("dirty tree", "clean"),
        ("two migration heads", "migrations"),
    ],
)
def test_an_emergency_never_waives_what_decides_what_ships(hotfix: Repo, breaks: str, item: str) -> None:
    if breaks == "bad version":
        hotfix.commit("chore: version", "VERSION", "1.1\n")
    elif breaks == "version not above the last release":
        hotfix.commit("chore: version", "VERSION", "1.0.0\n")
    elif breaks == "dirty tree":
        hotfix.write("app.py", "print('not committed')\n")
    else:
        for name, down in [("a1", "base0"), ("b2", "base0"), ("base0", None)]:
            hotfix.write(
                f"migrations/versions/{name}.py",
                f'revision = "{name}"\ndown_revision = {down!r}\n'.replace("'", '"'),
            )
        hotfix.write("alembic.ini", "[alembic]\nscript_location = migrations\n")
        hotfix.commit("two heads")
    with pytest.raises(ChecklistFailed) as failed:
        stages(hotfix)
    results = {r.name: r for r in failed.value.results}  # type: ignore[attr-defined]
    assert [n for n, r in results.items() if r.failed] == [item]
    assert str(failed.value).endswith(
        "(an emergency waives only changelog, commits, branch, lint, test, emergency)"
    )
    assert results["changelog"].status == "skip" or item == "version"  # the rest is still waived


def test_waive_leaves_passes_skips_and_items_it_does_not_know_alone() -> None:
    results = [
        CheckResult("version", "fail", "VERSION: below"),
        CheckResult("changelog", "pass", "ok"),
        CheckResult("helm-lint", "fail", "an item added later"),
        CheckResult("test", "skip", "not requested"),
    ]
    assert waive(results) == results


# -- the journal, the report, the notification ---------------------------------------------------------


def test_every_journal_record_of_an_emergency_run_carries_its_reason() -> None:
    target = FakeTarget(("web1", "web2"))
    context = Context(who="oncall", now=lambda: "2026-12-01T03:20:00Z", say=lambda line: None)
    context.emergency = REASON
    engine = Engine("prod", target, Policy(database=target.database), context)
    report = engine.deploy(Release("2.0.0", "commit-2.0.0"), engine.read())
    assert report.outcome == "deployed"
    for unit in target.state.values():
        mine = [e for e in unit.journal if e.version == "2.0.0"]
        assert mine and {e.emergency for e in mine} == {REASON}
        assert unit.journal[0].emergency == ""  # the release before was no emergency


def test_an_emergency_whose_health_fails_is_still_rolled_back_and_says_so() -> None:
    target = FakeTarget(("web1", "web2"))
    target.broken.add("2.0.0")
    context = Context(who="oncall", say=lambda line: None, emergency=REASON)
    engine = Engine("prod", target, Policy(database=target.database), context)
    report = engine.deploy(Release("2.0.0", "commit-2.0.0"), engine.read())
    assert (report.outcome, int(report.exit_code)) == ("rolled_back", 1)
    assert {u.serving for u in target.state.values()} == {"1.0.0"}
    restored = target.state["web1"].journal[-1]
    assert (restored.version, restored.result, restored.emergency) == ("1.0.0", "restored", REASON)


def test_the_journal_reads_the_emergency_field_and_lines_written_before_it() -> None:
    entry = Entry("deploy", "2.0.0", "abc1234", "1.0.0", None, None, "healthy", "", "me", "now")
    marked = Entry(**{**entry.__dict__, "emergency": REASON})
    assert parse_journal(entry.line() + marked.line()) == [entry, marked]
    old = entry.line().replace(', "emergency": ""', "")
    assert "emergency" not in old and parse_journal(old) == [entry]
    entries, damaged = read_journal(entry.line().replace('"emergency": ""', '"emergency": 7'))
    assert entries == [] and damaged[0].reason == "emergency: a number where a string belongs"


def test_history_and_status_mark_an_emergency_deploy() -> None:
    target = FakeTarget(("web1",))
    engine = Engine("prod", target, Policy(), Context(say=lambda line: None, emergency=REASON))
    engine.deploy(Release("2.0.0", "commit-2.0.0"), engine.read())
    states = engine.read()
    history = render_history(states, 10)
    assert history[-1].endswith(f"EMERGENCY ({REASON})") and "EMERGENCY" not in history[1]
    assert render_status("prod", states)[1].endswith(f"EMERGENCY ({REASON})")


def emergency_report(**changes: Any) -> RunReport:
    report = RunReport("prod", "1.1.1", "abc", outcome="deployed", emergency=REASON, waived=["changelog"])
    for key, value in changes.items():
        setattr(report, key, value)
    return report


def test_the_report_carries_the_reason_and_the_waived_items_in_every_rendering() -> None:
    report = emergency_report()
    data = report.to_data()
    assert (data["emergency"], data["waived"]) == (REASON, ["changelog"])
    assert report.render_text().splitlines()[:2] == [
        f"deploy prod: OK: 1.1.1 deployed to prod (EMERGENCY: {REASON})",
        "waived (emergency): changelog",
    ]
    markdown = report.render_markdown()
    assert markdown.startswith(f"### deploy prod: OK: 1.1.1 deployed to prod (EMERGENCY: {REASON})\n")
    assert "**waived (emergency): changelog**" in markdown
    plain = RunReport("prod", "1.1.1", "abc", outcome="deployed")
    assert "EMERGENCY" not in plain.render_text() + plain.render_markdown()
    assert (plain.to_data()["emergency"], plain.to_data()["waived"]) == ("", [])


def test_the_notification_title_marks_an_emergency() -> None:
    report = emergency_report()
    note = Notification(
        "prod", "1.1.1", "deployed", report.summary(), tuple(report.details()), report=report.to_data(),
        emergency=True,
    )  # fmt: skip
    payload = webhook_payload(note)
    assert payload["title"] == "✅ prod: 1.1.1 deployed [EMERGENCY]"
    assert REASON in payload["summary"] and payload["report"]["emergency"] == REASON
    assert Notification("prod", "1.1.1", "deployed", "s").title == "✅ prod: 1.1.1 deployed"


# -- the tag, and preflight's list ----------------------------------------------------------------------


@pytest.fixture
def origin(repo: Repo, tmp_path: Path) -> Path:
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    repo.git("remote", "add", "origin", str(bare))
    return bare


def remote_tags(bare: Path) -> str:
    return subprocess.run(["git", "tag", "-n9"], cwd=bare, capture_output=True, text=True).stdout


def message(version: str = "1.1.1") -> str:
    return tag_message("prod", version, REASON, "oncall", "2026-12-01T03:20:00Z", "https://ci/run/1")


def test_a_deployed_emergency_is_tagged_with_its_reason_and_pushed(repo: Repo, origin: Path) -> None:
    done = record_tag(LocalExecutor(), repo.path, "origin", "emergency/prod/1.1.1", repo.head(), message())
    assert (done.ok, done.detail) == (True, "emergency/prod/1.1.1 pushed to origin")
    assert repo.git("rev-parse", "emergency/prod/1.1.1^{commit}") == repo.head()
    shown = remote_tags(origin)
    assert "emergency/prod/1.1.1 Emergency deploy of 1.1.1 to prod" in shown and f"Reason: {REASON}" in shown
    again = record_tag(LocalExecutor(), repo.path, "origin", "emergency/prod/1.1.1", "HEAD", message())
    assert again.ok  # a re-run keeps the tag and pushes it again


def test_a_tag_of_that_name_on_another_commit_is_left_alone(repo: Repo, origin: Path) -> None:
    repo.git("tag", "-a", "emergency/prod/1.1.1", "-m", "earlier", "v1.0.0")
    done = record_tag(LocalExecutor(), repo.path, "origin", "emergency/prod/1.1.1", "HEAD", message())
    assert not done.ok and "already names" in done.detail and "left as it is" in done.detail
    assert repo.git("rev-parse", "emergency/prod/1.1.1^{commit}") == repo.git("rev-parse", "v1.0.0^{commit}")


def test_without_the_remote_the_tag_is_made_here_and_the_detail_says_to_push_it(repo: Repo) -> None:
    done = record_tag(LocalExecutor(), repo.path, "origin", "emergency/prod/1.1.1", "HEAD", message())
    assert done.ok and "no remote `origin`" in done.detail
    assert "emergency/prod/1.1.1" in repo.tags()


def test_a_refused_push_is_a_warning_that_says_how_to_finish(repo: Repo, tmp_path: Path) -> None:
    repo.git("remote", "add", "origin", str(tmp_path / "no-such-repository"))
    done = record_tag(LocalExecutor(), repo.path, "origin", "emergency/prod/1.1.1", "HEAD", message())
    assert not done.ok and "made here, not pushed to origin" in done.detail
    assert done.detail.endswith("`git push origin emergency/prod/1.1.1`")


@pytest.mark.parametrize("how", ["deadline", "signal"])
def test_a_push_that_hangs_ends_at_its_deadline_or_at_a_signal(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    repo.git("remote", "add", "origin", "ssh://git@example.invalid/app.git")
    monkeypatch.setenv("GIT_SSH_COMMAND", "sleep 60 #")
    monkeypatch.setattr(emergency, "PUSH_SECONDS", 1.0 if how == "deadline" else 30.0)
    stop = (lambda: False) if how == "deadline" else (lambda: True)
    started = time.monotonic()
    done = record_tag(LocalExecutor(), repo.path, "origin", "emergency/prod/1.1.1", "HEAD", message(), stop)
    assert time.monotonic() - started < 10
    said = "no answer within the deadline" if how == "deadline" else "stopped by a signal"
    assert not done.ok and said in done.detail


def test_a_runner_without_a_git_identity_still_makes_the_tag(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL"):
        monkeypatch.delenv(key)
    repo.git("config", "user.useConfigOnly", "true")
    done = record_tag(LocalExecutor(), repo.path, "origin", "emergency/prod/1.1.1", "HEAD", message())
    assert done.ok, done.detail
    assert "invoke-pipeline" in repo.git("for-each-ref", "--format=%(taggername)", "refs/tags/emergency")


def preflight_item(repo: Repo) -> CheckResult:
    from pipeline.checklist import run_checks

    config = load_config({"checklist": {"changelog_unreleased_ok": True}})
    return next(r for r in run_checks(LocalExecutor(), repo.path, config.checklist) if r.name == "emergency")


def test_preflight_lists_emergencies_without_a_changelog_section_until_one_is_written(repo: Repo) -> None:
    assert preflight_item(repo).status == "skip"
    old = repo.head()
    repo.commit("fix: after the emergency")
    record_tag(LocalExecutor(), repo.path, "origin", "emergency/prod/1.0.1", old, message("1.0.1"))
    record_tag(LocalExecutor(), repo.path, "origin", "emergency/staging/1.0.1", old, message("1.0.1"))
    item = preflight_item(repo)
    assert item.failed
    assert item.reason == (
        "2 emergency deploy(s) not documented in CHANGELOG.md: add a section `## [VERSION] - YYYY-MM-DD` "
        "for 1.0.1"
    )
    assert item.details == (
        f"emergency/prod/1.0.1 ({old[:10]}): {REASON}",
        f"emergency/staging/1.0.1 ({old[:10]}): {REASON}",
    )
    run = invoke(repo.path, "preflight")
    assert run.code == 3 and f"emergency/prod/1.0.1 ({old[:10]}): {REASON}" in run.stdout

    text = repo.path.joinpath("CHANGELOG.md").read_text()
    repo.commit(
        "docs: mention it", "CHANGELOG.md", text.replace("- Something new.", "- Something new.\n- 1.0.1")
    )
    assert preflight_item(repo).failed  # [Unreleased] mentioning it is no section of its own
    repo.commit(
        "docs: the emergency 1.0.1",
        "CHANGELOG.md",
        text.replace("## [1.0.0]", "## [1.0.1] - 2026-12-01\n\n### Fixed\n- Payments.\n\n## [1.0.0]"),
    )
    item = preflight_item(repo)
    assert (item.status, item.reason) == (
        "pass",
        "2 emergency deploy(s), each with its section in CHANGELOG.md",
    )
    assert invoke(repo.path, "preflight").code == 0


def test_tags_under_emergency_that_the_pipeline_did_not_make_are_ignored(repo: Repo) -> None:
    for name in ("emergency/notes", "emergency/prod/latest", "emergency/prod/v1.0.1", "emergency/a/b/1.0.1"):
        repo.git("tag", name)
    assert preflight_item(repo).status == "skip"


def marked(repo: Repo, outcome: str, **request: Any) -> RunReport:
    """The report after ``emergency.mark`` of a run that ended in ``outcome``."""
    config = hotfix_config()
    report = RunReport("prod", "1.1.1", repo.head(), outcome=outcome)
    checked = waive([CheckResult("changelog", "fail", "no section"), CheckResult("version", "pass", "ok")])
    context = Context(who="oncall", run_url="https://ci/run/7")
    emergency.mark(
        LocalExecutor(), repo.path, config, DeployRequest("prod", emergency=REASON, **request),
        Release("1.1.1", repo.head()), report, checked, context, lambda text: text.replace("order", "***"),
    )  # fmt: skip
    return report


def test_a_deployed_emergency_is_marked_and_tagged_with_the_redacted_reason(repo: Repo) -> None:
    report = marked(repo, "deployed")
    assert (report.emergency, report.waived) == (REASON, ["changelog"])
    stage = report.stages[-1]
    assert (stage.name, stage.status) == ("emergency tag", "ok") and "no remote `origin`" in stage.detail
    text = repo.git("for-each-ref", "--format=%(contents)", "refs/tags/emergency/prod/1.1.1")
    assert "Reason: payments drop every *** since 03:10" in text and "Run: https://ci/run/7" in text


@pytest.mark.parametrize("outcome", ["rolled_back", "noop", "rollback_failed", "cancelled"])
def test_an_emergency_that_did_not_deploy_is_marked_but_not_tagged(repo: Repo, outcome: str) -> None:
    report = marked(repo, outcome)
    assert report.emergency == REASON and report.stages == []
    assert not [t for t in repo.tags() if t.startswith("emergency/")]


def test_a_bug_while_tagging_is_a_failed_stage_never_another_outcome(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(emergency, "record_tag", broken)
    report = marked(repo, "deployed")
    assert (report.outcome, int(report.exit_code)) == ("deployed", 0)
    stage = report.stages[-1]
    assert (stage.status, stage.detail) == ("failed", "emergency/prod/1.1.1 was not made: RuntimeError: boom")


def test_the_announcement_says_what_is_waived_and_in_a_dry_run_which_tag_would_be_made() -> None:
    said: list[str] = []
    checked = waive([CheckResult("commits", "fail", "1 of 1 commit(s) break it", ("abc 'wip': no type",))])
    emergency.announce(DeployRequest("prod", dry_run=True, emergency=REASON), "1.1.1", checked, said.append)
    assert said == [
        f"EMERGENCY deploy: {REASON}",
        "waived (emergency): commits: 1 of 1 commit(s) break it",
        "    abc 'wip': no type",
        "emergency: once deployed, tag emergency/prod/1.1.1 at its commit",
    ]
    said.clear()
    emergency.announce(DeployRequest("prod", emergency=REASON), "1.1.1", [], said.append)
    assert said == [f"EMERGENCY deploy: {REASON}", "waived (emergency): nothing (every item passed)"]
