"""Host text on a terminal: control characters are shown as escapes, never acted on."""

from __future__ import annotations

import pytest

from pipeline.terminal import printable


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[2J\x1b]0;owned\x07", "\\x1b[2J\\x1b]0;owned\\x07"),
        ("ok\rFAIL", "ok\\x0dFAIL"),
        ("abc\b\b\bxyz", "abc\\x08\\x08\\x08xyz"),
        ("\x00\x7f", "\\x00\\x7f"),
        ("\x9b31m", "\\x9b31m"),  # C1: a one-character CSI on some terminals
        ("user\u202egnp.exe", "user\\u202egnp.exe"),  # a bidi override reorders what is seen
        ("\udc80", "\\udc80"),  # a lone surrogate from JSON cannot be encoded for output
        ("1.0.0 déployé ✓", "1.0.0 déployé ✓"),
    ],
)
def test_control_characters_are_escaped_and_other_text_is_kept(text: str, shown: str) -> None:
    assert printable(text) == shown
    shown.encode("utf-8")


def test_newlines_and_tabs_are_kept_in_text_and_escaped_in_one_line_fields() -> None:
    assert printable("a\n\tb") == "a\n\tb"
    assert printable("a\nweb2: serving 9.9.9\tb", keep_lines=False) == "a\\x0aweb2: serving 9.9.9\\x09b"
