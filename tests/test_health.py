"""Health verdicts: what counts as the expected version answering."""

from __future__ import annotations

import pytest

from pipeline.health import mentions_version


@pytest.mark.parametrize(
    ("body", "version", "ok"),
    [
        ('{"version": "1.0.0"}', "1.0.0", True),
        ('{"version": "v1.0.0"}', "1.0.0", True),
        ('{"version": "1.0.0-rc.1"}', "1.0.0", False),
        ('{"version": "12.0.0"}', "2.0.0", False),
        ('{"status": "ok", "build": "2.0.0"}', "2.0.0", True),
        ("app 1.0.0-rc.1 ok", "1.0.0", False),
        ("app 12.0.0 ok", "2.0.0", False),
        ("app 2.0.0.1 ok", "2.0.0", False),
        ("version=2.0.0\n", "2.0.0", True),
        ("<b>v2.0.0</b>", "2.0.0", True),
    ],
)
def test_expect_version_matches_the_whole_version_never_a_part_of_another(
    body: str, version: str, ok: bool
) -> None:
    assert mentions_version(body, version) is ok
