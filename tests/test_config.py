"""Configuration: validated once into frozen objects, every error naming the file and key path."""

from __future__ import annotations

import msgspec
import pytest

from pipeline.config import (
    CONVENTIONAL_TYPES,
    ChecklistConfig,
    ReleaseConfig,
    defaults,
    load_config,
)
from pipeline.errors import ConfigError, ExitCode

CHECKLIST_KEYS = (
    "version_file, changelog, convention, types, allow_merge_commits, allow_revert_commits, "
    "branches, tag_prefix, commits_from, changelog_unreleased_ok, require_clean, run_tests"
)


def config_error(raw: object, source: str = "ci/invoke.yaml") -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(raw, source)  # type: ignore[arg-type]
    assert caught.value.exit_code == ExitCode.BAD_INPUT == 2
    return str(caught.value)


@pytest.mark.parametrize("raw", [None, {}])
def test_no_configuration_gives_the_documented_defaults(raw):
    config = load_config(raw)
    assert config.checklist == ChecklistConfig(
        version_file="VERSION",
        changelog="CHANGELOG.md",
        convention="conventional",
        types=CONVENTIONAL_TYPES,
        allow_merge_commits=True,
        allow_revert_commits=True,
        branches=("main", "master"),
        tag_prefix="v",
        commits_from="",
        changelog_unreleased_ok=False,
        require_clean=True,
        run_tests=False,
    )
    assert config.release == ReleaseConfig(
        remote="origin", commit_message="chore(release): {tag}", tag_message="Release {tag}"
    )
    assert (config.lint, config.test) == ((), ())


def test_defaults_as_plain_data_load_back_to_the_default_config():
    data = defaults()
    assert data["checklist"]["tag_prefix"] == "v"
    assert list(data["lint"]) == []
    assert load_config(data) == load_config(None)


def test_a_partial_section_keeps_the_defaults_of_the_keys_it_leaves_out():
    config = load_config({"checklist": {"tag_prefix": "release-"}})
    assert config.checklist.tag_prefix == "release-"
    assert config.checklist.branches == ("main", "master")
    assert config.release.remote == "origin"


def test_a_project_configuration_is_validated_into_typed_values():
    config = load_config(
        {
            "checklist": {"branches": ["main", "release/*"], "changelog_unreleased_ok": True},
            "lint": ["ruff check .", 'pytest -q -m "not e2e"'],
            "release": {"remote": "upstream", "tag_message": "Release {version} ({tag})"},
        }
    )
    assert config.checklist.branches == ("main", "release/*")
    assert config.checklist.changelog_unreleased_ok is True
    assert config.lint == ("ruff check .", 'pytest -q -m "not e2e"')
    assert config.release.remote == "upstream"


def test_the_validated_configuration_is_frozen():
    config = load_config({})
    with pytest.raises(AttributeError):
        config.checklist.tag_prefix = "x"  # type: ignore[misc]


def test_invoke_data_proxies_and_tuples_are_read_as_plain_data():
    class Proxy:
        def __init__(self, data):
            self._data = data

        def items(self):
            return self._data.items()

    config = load_config(Proxy({"checklist": Proxy({"branches": ("trunk",)})}))  # type: ignore[arg-type]
    assert config.checklist.branches == ("trunk",)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"checklist": {"branches": "main"}},
            "pipeline.checklist.branches: expected array, got str",
        ),
        ({"lint": "ruff check ."}, "pipeline.lint: expected array, got str"),
        (
            {"checklist": {"require_clean": 1}},
            "pipeline.checklist.require_clean: expected bool, got int",
        ),
        (
            {"checklist": {"run_tests": "yes"}},
            "pipeline.checklist.run_tests: expected bool, got str",
        ),
        (
            {"checklist": {"types": ["feat", 3]}},
            "pipeline.checklist.types[1]: expected str, got int",
        ),
        ({"checklist": None}, "pipeline.checklist: expected object, got null"),
        ({"checklist": ["main"]}, "pipeline.checklist: expected object, got array"),
        ("main", "pipeline: expected object, got str"),
        (
            {"checklist": {"convention": "angular"}},
            "pipeline.checklist.convention: got 'angular'; expected one of conventional, none",
        ),
    ],
)
def test_a_value_of_the_wrong_type_names_the_file_and_the_key_path(raw, message):
    assert config_error(raw) == f"ci/invoke.yaml: {message}"


def test_a_misspelt_key_suggests_the_right_one_and_lists_the_known_keys():
    assert config_error({"checklist": {"brnches": ["main"]}}) == (
        "ci/invoke.yaml: pipeline.checklist.brnches: unknown key (did you mean `branches`?) "
        f"(known: {CHECKLIST_KEYS})"
    )


def test_an_unknown_top_level_key_is_named_with_the_known_ones():
    assert config_error({"deploy": {}}) == (
        "ci/invoke.yaml: pipeline.deploy: unknown key (known: checklist, release, lint, test, environments)"
    )


def test_an_unknown_release_key_suggests_the_right_one():
    message = config_error({"release": {"remot": "origin"}})
    assert message.startswith("ci/invoke.yaml: pipeline.release.remot: unknown key (did you mean `remote`?)")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"checklist": {"tag_prefix": "v; rm -rf /"}},
            "pipeline.checklist.tag_prefix: 'v; rm -rf /' cannot start a tag name",
        ),
        (
            {"checklist": {"tag_prefix": "-v"}},
            "pipeline.checklist.tag_prefix: '-v' cannot start a tag name",
        ),
        (
            {"checklist": {"branches": ["main; rm -rf /"]}},
            "pipeline.checklist.branches[0]: 'main; rm -rf /' is not a branch name",
        ),
        (
            {"checklist": {"branches": ["main", "--force"]}},
            "pipeline.checklist.branches[1]: '--force' is not a branch name",
        ),
        (
            {"checklist": {"branches": ["$(reboot)"]}},
            "pipeline.checklist.branches[0]: '$(reboot)' is not a branch name",
        ),
        (
            {"checklist": {"branches": ["a..b"]}},
            "pipeline.checklist.branches[0]: 'a..b' is not a branch name",
        ),
        (
            {"checklist": {"commits_from": "--all"}},
            "pipeline.checklist.commits_from: '--all' is not a ref",
        ),
        (
            {"release": {"remote": "--upload-pack=touch /tmp/x"}},
            "pipeline.release.remote: '--upload-pack=touch /tmp/x' is not a remote name",
        ),
        (
            {"lint": ["ruff check 'x"]},
            'pipeline.lint[0]: "ruff check \'x" cannot be parsed (No closing quotation)',
        ),
        ({"test": ["pytest", "  "]}, "pipeline.test[1]: the command is empty"),
        (
            {"checklist": {"types": []}},
            "pipeline.checklist.types: must list at least one commit type",
        ),
        (
            {"checklist": {"types": ["feat", "Fix"]}},
            "pipeline.checklist.types[1]: 'Fix' is not a lowercase word",
        ),
        (
            {"release": {"commit_message": "chore: {nope}"}},
            "pipeline.release.commit_message: 'chore: {nope}' is not a valid template ('nope')",
        ),
        (
            {"release": {"tag_message": "Release {tag"}},
            "pipeline.release.tag_message: 'Release {tag' is not a valid template "
            "(expected '}' before end of string)",
        ),
    ],
)
def test_a_hostile_or_unusable_value_names_the_file_and_the_key_path(raw, message):
    assert config_error(raw) == f"ci/invoke.yaml: {message}"


def test_every_semantic_problem_is_reported_one_per_line():
    raw = {"checklist": {"tag_prefix": "v;", "branches": ["-x"]}, "release": {"remote": "a b"}}
    assert config_error(raw, "invoke.yaml").splitlines() == [
        "invoke.yaml: pipeline.checklist.branches[0]: '-x' is not a branch name",
        "invoke.yaml: pipeline.checklist.tag_prefix: 'v;' cannot start a tag name",
        "invoke.yaml: pipeline.release.remote: 'a b' is not a remote name",
    ]


@pytest.mark.parametrize(
    "checklist",
    [
        {"tag_prefix": ""},
        {"tag_prefix": "release/"},
        {"branches": ["release/*", "hotfix-1.2"]},
        {"commits_from": "v1.0.0~3"},
        {"convention": "none", "types": []},
    ],
)
def test_reasonable_values_are_accepted(checklist):
    assert isinstance(load_config({"checklist": checklist}).checklist, ChecklistConfig)


def test_no_third_party_validation_error_leaks():
    with pytest.raises(ConfigError) as caught:
        load_config({"checklist": {"branches": 5}})
    assert not isinstance(caught.value, msgspec.ValidationError)
    assert caught.value.__cause__ is None


# -- bugs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        pytest.param({"checklist": {"branches": ["main\n"]}}, "pipeline.checklist.branches[0]"),
        pytest.param({"release": {"remote": "origin\n"}}, "pipeline.release.remote"),
        pytest.param({"checklist": {"commits_from": "v1.0.0\n"}}, "pipeline.checklist.commits_from"),
        pytest.param({"checklist": {"types": ["feat\n"]}}, "pipeline.checklist.types[0]"),
    ],
)
def test_a_name_with_a_trailing_newline_is_rejected(raw, key):
    assert f"invoke.yaml: {key}: " in config_error(raw)


@pytest.mark.parametrize("template", ["Release {tag.nope}", "{version.real}", "{tag[x]}"])
def test_a_template_with_attribute_or_item_access_is_a_config_error(template):
    message = config_error({"release": {"tag_message": template}})
    assert message.startswith("ci/invoke.yaml: pipeline.release.tag_message: ")


def test_an_empty_list_is_not_a_configuration():
    assert config_error([]) == "ci/invoke.yaml: pipeline: expected object, got array"
