"""invoke.yaml read strictly: every way a file can be wrong is one ConfigError naming it, never a crash."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import PipelineConfig, load_config
from pipeline.configfile import MAX_BYTES, pipeline_section, read_config_file
from pipeline.errors import ConfigError


def error_of(tmp_path: Path, content: str | bytes, name: str = "invoke.yaml") -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ConfigError) as caught:
        pipeline_section(read_config_file(str(path), name), name)
    return str(caught.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("pipeline: {lint: [a}\n", "invoke.yaml: line 1, column 20: expected ',' or ']', but got '}'"),
        ("a: 1\na: 2\n", "invoke.yaml: line 2: duplicate key 'a' (first on line 1)"),
        ("pipeline:\n\tlint: []\n", "invoke.yaml: line 2, column 1: found character '\\t' that cannot start"),
        (
            "pipeline:\n  checklist:\n    tag_prefix: v\n    tag_prefix: r\n",
            "line 4: duplicate key 'tag_prefix'",
        ),
        ("x: !!binary aGVsbG8=\npipeline: !foo bar\n", "the tag '!foo' is not allowed (plain YAML only)"),
        ("pipeline: &x [*x]\n", "invoke.yaml: an anchor refers to itself (a recursive alias)"),
        (b"pipeline: {}\n\xff\xfe", "invoke.yaml: not UTF-8 text (byte 0xff at offset 13)"),
        ("pipeline: {lint: ['a\0b']}\n", "invoke.yaml: contains a NUL byte (offset 20); not a text file"),
        ("42\n", "invoke.yaml: the top level must be a mapping of keys, got a number"),
        ("pipeline: yes\n", "invoke.yaml: pipeline: expected a mapping of keys, got a boolean"),
        ('{"pipeline": {"a": 1, "a": 2}}', "invoke.json: duplicate key 'a'"),
        ('{"pipeline": [}', "invoke.json: line 1, column 15: Expecting value"),
    ],
)
def test_each_malformed_file_is_one_line_naming_the_file_and_where(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    name = "invoke.json" if message.startswith("invoke.json") else "invoke.yaml"
    assert message in error_of(tmp_path, content, name)


def test_a_merge_key_may_be_overridden_without_counting_as_a_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "invoke.yaml"
    path.write_text("base: &b {tag_prefix: v}\npipeline:\n  checklist:\n    <<: *b\n    tag_prefix: r\n")
    data = read_config_file(str(path), "invoke.yaml")
    assert data["pipeline"]["checklist"] == {"tag_prefix": "r"}


def test_anchors_that_expand_past_the_limit_are_refused_not_expanded(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    assert "more than 100000 values once anchors are expanded" in error_of(tmp_path, "\n".join(lines))


def test_a_directory_a_fifo_and_a_huge_file_are_refused_without_reading_them(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    os.mkfifo(tmp_path / "fifo.yaml")  # opening it would block forever
    (tmp_path / "big.yaml").write_bytes(b"#" * (MAX_BYTES + 1))
    for name, message in (
        ("dir.yaml", "dir.yaml: not a regular file"),
        ("fifo.yaml", "fifo.yaml: not a regular file"),
        ("big.yaml", f"big.yaml: {MAX_BYTES + 1} bytes; a configuration file is at most {MAX_BYTES}"),
    ):
        with pytest.raises(ConfigError, match=message):
            read_config_file(str(tmp_path / name), name)
    with pytest.raises(FileNotFoundError):  # Invoke goes on to the next suffix
        read_config_file(str(tmp_path / "missing.yaml"), "missing.yaml")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"checklist": {"tag_prefix": "v\x1b[2J"}},
            "pipeline.checklist.tag_prefix: contains the control character",
        ),
        ({"lint": ["x" * 10_001]}, "pipeline.lint[0]: 10001 characters; at most 10000"),
        ({"checklist": [1]}, "invoke.yaml: pipeline.checklist: expected object, got array"),
        (
            {"checklist": {"changelog": "/etc/passwd"}},
            "pipeline.checklist.changelog: '/etc/passwd' must be a path",
        ),
        (
            {"checklist": {"version_file": "a/../../V"}},
            "pipeline.checklist.version_file: 'a/../../V' must be",
        ),
        (
            {
                "environments": {
                    "p": {"target": "compose", "hosts": ["h"], "path": "/a", "batch_size": 10**30}
                }
            },
            "pipeline.environments.p.batch_size: ",
        ),
        (
            {
                "environments": {
                    "p": {"target": "compose", "hosts": ["h"], "path": "/a", "deadlines": {"lock": -1}}
                }
            },
            "pipeline.environments.p.deadlines.lock: -1.0 must be more than 0",
        ),
        (
            {
                "environments": {
                    "p": {
                        "target": "compose",
                        "hosts": ["h"],
                        "path": "/a",
                        "health": [{"compose": True, "interval": float("inf")}],
                    }
                }
            },
            "pipeline.environments.p.health[0].interval: inf is not a number this setting can use",
        ),
    ],
)
def test_values_a_file_can_hold_but_no_setting_can_use_are_refused(
    raw: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(raw, "invoke.yaml")
    assert message in str(caught.value)


def test_an_error_from_a_variable_names_the_variable_not_the_file() -> None:
    environ = {"INVOKE_PIPELINE_CHECKLIST_BRANCHES": '["main; rm -rf /"]'}
    with pytest.raises(ConfigError) as caught:
        load_config({"checklist": {"tag_prefix": "v"}}, "invoke.yaml", environ)
    assert str(caught.value).startswith("INVOKE_PIPELINE_CHECKLIST_BRANCHES: pipeline.checklist.branches[0]:")


def test_variables_reach_environments_and_nested_sections_by_their_key_type() -> None:
    env = {"target": "compose", "hosts": ["h"], "path": "/srv/a"}
    environ = {
        "INVOKE_PIPELINE_ENVIRONMENTS_PROD_SSH_STRICT_HOST_KEY_CHECKING": "no",
        "INVOKE_PIPELINE_ENVIRONMENTS_PROD_BATCH_SIZE": "1",
        "INVOKE_PIPELINE_ENVIRONMENTS_PROD_DEADLINES_LOCK": "12.5",
    }
    prod = load_config({"environments": {"prod": env}}, "invoke.yaml", environ).environments["prod"]
    assert (prod.ssh.strict_host_key_checking, prod.batch_size, prod.deadlines.lock) == (False, 1, 12.5)
    with pytest.raises(ConfigError, match=r"PROD_HOSTS: pipeline\.environments\.prod\.hosts: cannot be set"):
        load_config(
            {"environments": {"prod": env}}, "invoke.yaml", {"INVOKE_PIPELINE_ENVIRONMENTS_PROD_HOSTS": "x"}
        )


# YAML documents built from fragments that reach the loader's and the validator's branches.
FRAGMENTS = st.sampled_from(
    [
        "pipeline:", "  checklist:", "    tag_prefix: v", "    tag_prefix: r", "  lint: [a, b]", "  lint: *x",
        "  lint: &x [c]", "- item", "\t", "  environments:",
        "    prod: {target: compose, hosts: [h], path: /a}", "    prod: &p [*p]",
        "  test: !!python/name:os.system", "  checklist: {require_clean: .nan}", "  <<: *x",
        "pipeline: [", "pipeline: 3", "'", '"\\x00"', "  release: {remote: '-x'}", "…", "%YAML 1.1", "---",
    ]
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(FRAGMENTS | st.text(max_size=12), max_size=8))
def test_any_invoke_yaml_document_is_a_config_or_one_config_error_naming_the_file(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str]
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "invoke.yaml"
    path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    try:
        section = pipeline_section(read_config_file(str(path), "invoke.yaml"), "invoke.yaml")
        config = load_config(section, "invoke.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("invoke.yaml: ")
    else:
        assert isinstance(config, PipelineConfig)
