"""Secrets that hide themselves when printed, and the redactor every outgoing text goes through."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

from pipeline.errors import ConfigError, ExitCode
from pipeline.secrets import Redactor, Secret, secret_from_env

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
