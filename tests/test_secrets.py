"""Secrets that hide themselves when printed, and the redactor every outgoing text goes through."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest

from pipeline.errors import ConfigError, ExitCode
from pipeline.secrets import Redactor, Secret, redactor_for, secret_from_env, split_credentials

TOKEN = "s3cr3t-token"


def test_a_secret_prints_as_stars_in_str_repr_and_fstrings() -> None:
    secret = Secret(TOKEN)
    assert str(secret) == "***"
    assert repr(secret) == "***"
    assert f"{secret}" == "***"
    assert f"{secret!r}" == "***"
    assert f"{secret:>20}" == "***"


def test_a_secret_stays_hidden_inside_containers_dataclasses_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @dataclass(frozen=True)
    class Channel:
        token: Secret

    secret = Secret(TOKEN)
    logging.getLogger("test").warning("token is %s in %r", secret, Channel(secret))
    printed = [repr([secret]), repr({"t": secret}), str(Channel(secret)), caplog.text]
    assert all(TOKEN not in text for text in printed)
    assert "Channel(token=***)" in caplog.text


def test_reveal_gives_the_value() -> None:
    assert Secret(TOKEN).reveal() == TOKEN


def test_secrets_are_equal_and_hash_alike_by_value() -> None:
    assert Secret(TOKEN) == Secret(TOKEN)
    assert Secret(TOKEN) != Secret("other-token")
    assert Secret(TOKEN) != TOKEN
    assert len({Secret(TOKEN), Secret(TOKEN), Secret("other-token")}) == 2


def test_redact_replaces_every_occurrence_of_every_secret() -> None:
    redactor = Redactor([TOKEN, "hunter22"])
    text = f"curl -H 'X: {TOKEN}' https://x/?a={TOKEN}&p=hunter22"
    assert redactor.redact(text) == "curl -H 'X: ***' https://x/?a=***&p=***"


def test_values_shorter_than_four_characters_and_empty_ones_are_not_redacted() -> None:
    redactor = Redactor(["abc", "", Secret("xy")])
    assert redactor.redact("abc xy abcd") == "abc xy abcd"
    redactor.add("abcd")
    assert redactor.redact("abc xy abcd") == "abc xy ***"


def test_a_secret_contained_in_a_longer_one_leaves_no_fragment() -> None:
    redactor = Redactor(["token", "token-extended"])
    assert redactor.redact("a token-extended b token c") == "a *** b *** c"


def test_partly_overlapping_secrets_are_hidden_entirely() -> None:
    redactor = Redactor(["abcdef", "defghi"])
    assert redactor.redact("xx abcdefghi yy defghi") == "xx *** yy ***"


def test_overlapping_occurrences_of_one_secret_are_hidden_entirely() -> None:
    assert Redactor(["aaaa"]).redact("<aaaaaa>") == "<***>"


def test_the_url_encoded_form_of_a_secret_is_redacted_too() -> None:
    redactor = Redactor(["p@ss/word+1"])
    assert redactor.redact("https://h/login?pw=p%40ss%2Fword%2B1 or p@ss/word+1") == (
        "https://h/login?pw=*** or ***"
    )


def test_text_without_secrets_comes_back_unchanged() -> None:
    assert Redactor().redact("nothing to hide") == "nothing to hide"
    assert Redactor([TOKEN]).redact("") == ""


def test_redact_data_walks_dicts_lists_and_tuples_and_keeps_other_values() -> None:
    redactor = Redactor([TOKEN])
    report = {
        "ok": False,
        "exit_code": 1,
        "stages": [{"name": "deploy", "evidence": (f"Bearer {TOKEN}", None)}],
        TOKEN: 2.5,
    }
    assert redactor.redact_data(report) == {
        "ok": False,
        "exit_code": 1,
        "stages": [{"name": "deploy", "evidence": ("Bearer ***", None)}],
        "***": 2.5,
    }


def test_a_redactor_accepts_a_secret_and_never_prints_its_values() -> None:
    redactor = Redactor()
    redactor.add(Secret(TOKEN))
    assert redactor.redact(TOKEN) == "***"
    assert TOKEN not in repr(redactor)


def test_secret_from_env_reads_the_variable_without_surrounding_whitespace() -> None:
    assert secret_from_env({"SLACK_URL": f"{TOKEN}\n"}, "SLACK_URL", "k") == Secret(TOKEN)


@pytest.mark.parametrize("env", [{}, {"SLACK_URL": ""}, {"SLACK_URL": " \n"}])
def test_a_missing_or_empty_variable_is_a_config_error_naming_the_key(
    env: dict[str, str],
) -> None:
    key = "pipeline.environments.prod.notify[0].slack.webhook_env"
    with pytest.raises(ConfigError) as caught:
        secret_from_env(env, "SLACK_URL", key)
    assert str(caught.value) == f"{key}: environment variable SLACK_URL is not set"
    assert caught.value.exit_code == ExitCode.BAD_INPUT


QUIRKY = "qu'o\"te wörd|\\ß&<x>"  # quotes, non-ASCII, a backslash, a space, markup


def _shell_word(value: str) -> str:
    import shlex

    return shlex.join(["curl", f"--password={value}"])


@pytest.mark.parametrize(
    "encode",
    [
        lambda v: v,
        lambda v: __import__("urllib.parse").parse.quote(v, safe=""),
        lambda v: __import__("urllib.parse").parse.quote_plus(v),
        lambda v: __import__("json").dumps({"v": v}),
        lambda v: __import__("json").dumps({"v": v}, ensure_ascii=False),
        lambda v: __import__("json").dumps({"log": __import__("json").dumps({"v": v})}),
        lambda v: __import__("shlex").quote(v),
        _shell_word,
        lambda v: repr(v),
        lambda v: __import__("base64").b64encode(v.encode()).decode(),
    ],
    ids=["raw", "url", "form", "json", "json-utf8", "json-in-json", "shell", "shell-word", "repr", "base64"],
)
@pytest.mark.parametrize("value", [TOKEN, QUIRKY])
def test_every_form_a_secret_takes_on_the_way_out_is_redacted(encode: Any, value: str) -> None:
    shown = encode(value)
    redacted = Redactor([value]).redact(f"before {shown} after")
    assert shown not in redacted
    assert "***" in redacted and redacted.startswith("before ") and redacted.endswith(" after")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "fatal: unable to access 'https://ghp_abc123@github.com/acme/app.git/'",
            "fatal: unable to access 'https://***@github.com/acme/app.git/'",
        ),
        ("pull https://bot:hunter2@git.example.com/x", "pull https://bot:***@git.example.com/x"),
        ("DATABASE_URL=postgresql://app:pw@db/app", "DATABASE_URL=postgresql://app:***@db/app"),
        ("clone ssh://git@github.com/acme/app.git", "clone ssh://git@github.com/acme/app.git"),
        (
            "mail me@example.com or see https://example.com/a@b",
            "mail me@example.com or see https://example.com/a@b",
        ),
    ],
)
def test_credentials_in_any_url_are_hidden_even_when_no_one_declared_them(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


@pytest.mark.parametrize(
    ("url", "shown", "secrets"),
    [
        ("https://ghp_T0ken@github.com/acme/app.git", "https://github.com/acme/app.git", ["ghp_T0ken"]),
        (
            "https://bot:p%40ss%3Aw@git.example.com:8443/a.git",
            "https://git.example.com:8443/a.git",
            ["p@ss:w"],
        ),
        ("ssh://git:pw12@host/r.git", "ssh://git@host/r.git", ["pw12"]),
        ("ssh://git@host/r.git", "ssh://git@host/r.git", []),
        ("git@github.com:acme/app.git", "git@github.com:acme/app.git", []),
        ("/srv/origin.git", "/srv/origin.git", []),
        ("https://github.com/acme/app.git", "https://github.com/acme/app.git", []),
    ],
)
def test_a_url_splits_into_what_may_be_shown_and_its_credentials(
    url: str, shown: str, secrets: list[str]
) -> None:
    credentials = split_credentials(url)
    assert (credentials.url, credentials.secrets) == (shown, secrets)


def test_the_basic_auth_header_is_what_git_would_send_for_the_urls_user_and_password() -> None:
    assert split_credentials("https://ghp_T0ken@github.com/a.git").basic_auth() == "Basic Z2hwX1Qwa2VuOg=="
    assert split_credentials("https://u:p%40ss@h/a.git").basic_auth() == "Basic dTpwQHNz"
    assert split_credentials("ssh://git@h/a.git").basic_auth() == ""
    assert split_credentials("https://h/a.git").basic_auth() == ""


def test_the_redactor_of_an_environment_knows_every_env_secret_and_url_credential() -> None:
    from pipeline.config import load_config

    env = load_config(
        {
            "environments": {
                "prod": {
                    "target": "compose",
                    "hosts": ["web1"],
                    "path": "/srv/app",
                    "repository": "https://ghp_RepoT0ken@github.com/acme/app.git",
                    "health": [{"http": "https://monitor:M0nitorPw@{host}/health"}],
                    "notify": [
                        {"slack": {"webhook_env": "SLACK_URL"}},
                        {"telegram": {"token_env": "TG_TOKEN", "chat_env": "TG_CHAT"}},
                    ],
                }
            }
        }
    ).environment("prod")
    environ = {"SLACK_URL": "https://hooks.slack.com/T/B/xyz\n", "TG_TOKEN": QUIRKY, "OTHER": "n0t-a-secret"}
    redactor = redactor_for(env, environ)
    text = " ".join(
        ["ghp_RepoT0ken", "M0nitorPw", "https://hooks.slack.com/T/B/xyz", QUIRKY, "Z2hwX1JlcG9UMGtlbjo="]
    )
    assert redactor.redact(text) == " ".join(["***"] * 5)
    assert redactor.redact("n0t-a-secret") == "n0t-a-secret"  # named by no *_env key


def test_redact_data_copies_dataclasses_with_every_string_redacted() -> None:
    @dataclass(frozen=True)
    class Inner:
        text: str
        count: int

    @dataclass
    class Outer:
        inner: Inner
        lines: list[str]

    original = Outer(Inner(f"a {TOKEN}", 3), [TOKEN, "b"])
    assert Redactor([TOKEN]).redact_data(original) == Outer(Inner("a ***", 3), ["***", "b"])
    assert original.inner.text == f"a {TOKEN}"


def test_an_error_leaves_with_its_message_and_attributes_redacted() -> None:
    from pipeline.checklist import CheckResult
    from pipeline.errors import ChecklistFailed, StageError

    failed = ChecklistFailed(
        f"lint said {TOKEN}", (CheckResult("lint", "fail", "exited 1", (f"x {TOKEN}",)),)
    )
    stage = StageError("migrate", f"[web1] failed: {TOKEN}", "web1", f"output {TOKEN}")
    redactor = Redactor([TOKEN])
    redactor.redact_error(failed)
    redactor.redact_error(stage)
    assert str(failed) == "lint said ***" and failed.results[0].details == ("x ***",)  # type: ignore[attr-defined]
    assert (str(stage), stage.output) == ("[web1] failed: ***", "output ***")


def test_a_secret_url_hides_its_path_and_the_tokens_in_it_when_they_are_shown_alone() -> None:
    redactor = Redactor(
        ["https://hooks.slack.com/services/T0AB/B0CD/xoxbCanaryT0ken1234567?key=QueryT0ken-abcdefgh"]
    )
    path = "/services/T0AB/B0CD/xoxbCanaryT0ken1234567?key=QueryT0ken-abcdefgh"
    logged = f"POST {path} 404; token xoxbCanaryT0ken1234567"
    assert redactor.redact(logged) == "POST *** 404; token ***"
    assert redactor.redact("retry QueryT0ken-abcdefgh later") == "retry *** later"
    assert redactor.redact("POST /services/T0AB ok") == "POST /services/T0AB ok"  # short parts stay
    assert Redactor(["http://127.0.0.1:9/hook"]).redact("GET /hook") == "GET /hook"
