"""What `invoke prune` keeps and removes (journals in, versions out), and how a rollback refuses a
pruned release."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import InputError
from pipeline.journal import FAILED, HEALTHY, IN_PROGRESS, PRUNED, RESTORED, ROLLED_BACK, Entry
from pipeline.prune import (
    PRUNE,
    candidates,
    check_keep,
    healthy_everywhere_order,
    kept_versions,
    pruned_versions,
    refuse_pruned,
)


def entry(version: str, result: str = HEALTHY, event: str = "deploy", run: str = "", **more: str) -> Entry:
    return Entry(
        event=event, version=version, commit=None, previous_version=more.get("previous"), db_before=None,
        db_after=None, result=result, reason="", who="ci", at="2026-12-01T00:00:00Z", run=run,
    )  # fmt: skip


def deployed(*versions: str) -> list[Entry]:
    return [entry(v) for v in versions]


def test_keep_two_keeps_the_serving_release_and_the_two_before_it() -> None:
    journal = deployed("1.0.0", "1.1.0", "1.2.0", "1.3.0")
    kept = kept_versions({"h1": journal, "h2": journal}, 2)
    assert kept == {
        "1.3.0": "serving on every host",
        "1.2.0": "rollback target 1 of 2 (healthy on every host)",
        "1.1.0": "rollback target 2 of 2 (healthy on every host)",
    }
    assert [v for v in candidates(journal, []) if v not in kept] == ["1.0.0"]


def test_a_release_healthy_on_one_host_only_is_no_rollback_target() -> None:
    first = deployed("1.0.0", "1.1.0", "1.2.0")
    second = [
        entry("1.0.0"),
        entry("1.1.0", ROLLED_BACK),
        entry("1.0.0", RESTORED, "rollback"),
        entry("1.2.0"),
    ]
    kept = kept_versions({"h1": first, "h2": second}, 1)
    assert set(kept) == {"1.2.0", "1.0.0"}  # 1.1.0 never served on h2: no rollback goes there


def test_each_hosts_serving_release_stays_when_they_differ() -> None:
    kept = kept_versions({"h1": deployed("1.0.0", "2.0.0"), "h2": deployed("1.0.0")}, 1)
    assert kept["2.0.0"] == "serving on h1"
    assert kept["1.0.0"] == "serving on h2"


def test_a_release_rolled_back_to_counts_as_the_newest_served() -> None:
    journal = [*deployed("1.0.0", "1.1.0", "1.2.0"), entry("1.0.0", RESTORED, "rollback")]
    assert healthy_everywhere_order([journal]) == ["1.0.0", "1.2.0", "1.1.0"]
    assert set(kept_versions({"h1": journal}, 1)) == {"1.0.0", "1.2.0"}


def test_an_unfinished_run_keeps_what_it_deployed_and_what_it_would_go_back_to() -> None:
    journal = [
        *deployed("1.0.0", "1.1.0", "1.2.0"),
        entry("1.3.0", IN_PROGRESS, run="dead", previous="1.2.0"),
    ]
    old = [entry("0.9.0"), *journal]
    kept = kept_versions({"h1": old}, 1)
    assert kept["1.3.0"] == "named by run dead on h1, which never finished"
    finished = [*old, entry("1.3.0", FAILED, run="dead")]
    assert "1.3.0" not in kept_versions({"h1": finished}, 1)


def test_a_host_that_served_nothing_yet_does_not_make_every_release_prunable() -> None:
    kept = kept_versions({"h1": deployed("1.0.0", "1.1.0"), "new": []}, 1)
    assert set(kept) == {"1.1.0", "1.0.0"}


def test_candidates_are_the_journals_versions_then_release_folders_of_version_shape() -> None:
    journal = deployed("1.0.0", "1.1.0", "1.0.0")
    assert candidates(journal, ["0.9.0", "..", "-rf", "1.1.0", "tmp dir"]) == ["1.0.0", "1.1.0", "0.9.0"]


journals = st.lists(
    st.lists(
        st.tuples(
            st.sampled_from(["1.0.0", "1.1.0", "1.2.0", "2.0.0", "2.1.0"]),
            st.sampled_from([HEALTHY, ROLLED_BACK, RESTORED, FAILED]),
        ),
        max_size=12,
    ),
    min_size=1,
    max_size=4,
)


@given(journals, st.integers(min_value=1, max_value=4))
def test_prune_never_removes_what_serves_nor_the_default_rollback_target(
    raw: list[list[tuple[str, str]]], keep: int
) -> None:
    units = {f"h{i}": [entry(v, r) for v, r in lines] for i, lines in enumerate(raw)}
    kept = kept_versions(units, keep)
    for entries in units.values():
        serving = next((e for e in reversed(entries) if e.serving), None)
        if serving is not None:
            assert serving.version in kept
    if all(any(e.serving for e in entries) for entries in units.values()):
        order = healthy_everywhere_order(units.values())
        current = {next(e for e in reversed(x) if e.serving).version for x in units.values()}
        others = [v for v in order if v not in current]
        assert set(others[:keep]) <= set(kept)  # the rollback targets, newest first
        assert len([v for v in kept if v not in current]) <= keep  # and no more


def pruned(version: str) -> Entry:
    return entry(version, PRUNED, PRUNE)


def test_a_pruned_release_is_known_until_it_is_deployed_again() -> None:
    journal = [*deployed("1.0.0", "1.1.0"), pruned("1.0.0")]
    assert set(pruned_versions(journal)) == {"1.0.0"}
    assert pruned_versions([*journal, entry("1.0.0")]) == {}
    assert pruned_versions([*journal, entry("1.0.0", ROLLED_BACK)]).keys() == {"1.0.0"}


def test_a_release_already_pruned_does_not_count_among_the_kept() -> None:
    journal = [*deployed("1.0.0", "1.1.0", "1.2.0", "1.3.0"), pruned("1.2.0")]
    assert set(kept_versions({"h1": journal, "h2": deployed("1.0.0", "1.1.0", "1.2.0", "1.3.0")}, 1)) == {
        "1.3.0",
        "1.1.0",
    }


def test_a_prune_line_never_counts_as_serving() -> None:
    assert not pruned("1.0.0").serving


def test_a_rollback_to_a_pruned_release_is_refused_with_exit_2() -> None:
    journals = {"h1": [*deployed("1.0.0", "1.1.0", "1.2.0"), pruned("1.0.0")]}
    refuse_pruned(journals, {"h1": "1.1.0"})
    refuse_pruned(journals, {"h1": None})
    with pytest.raises(InputError) as caught:
        refuse_pruned(journals, {"h1": "1.0.0"}, "prod")
    assert caught.value.exit_code == 2
    assert "`invoke deploy --env prod --version 1.0.0`" in str(caught.value)
    assert "h1: 1.0.0 was pruned (2026-12-01T00:00:00Z by ci)" in str(caught.value)
    assert "nothing was changed" in str(caught.value)


@pytest.mark.parametrize("value", ["0", "-1", "1001", "two", "1.5", " ", "9" * 20])
def test_keep_outside_one_to_a_thousand_is_an_input_error_naming_the_flag(value: str) -> None:
    with pytest.raises(InputError, match=r"^--keep must be a whole number from 1 to 1000"):
        check_keep(value, 3)


def test_keep_defaults_to_the_configured_number() -> None:
    assert check_keep(None, 3) == 3
    assert check_keep("5", 3) == 5
