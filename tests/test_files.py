"""The bounded reader of local files: one clear line for whatever is not small UTF-8 text."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from pipeline.files import MissingFile, UnreadableFile, read_optional, read_text


def test_a_small_utf8_file_is_read_as_text(tmp_path: Path) -> None:
    (tmp_path / "VERSION").write_text("1.2.0\n", encoding="utf-8")
    assert read_text(tmp_path / "VERSION", "VERSION", root=tmp_path) == "1.2.0\n"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe1.2.0\n", "VERSION: not UTF-8 text (byte 0xff at offset 0)"),
        (b"1.2.0 \xe9t\xe9\n", "VERSION: not UTF-8 text (byte 0xe9 at offset 6)"),
        (b"1.2.0\0\n", "VERSION: binary content (a NUL byte at offset 5), not text"),
        (b"\x89PNG\r\n\x1a\n\0\0", "VERSION: binary content (a NUL byte at offset 8), not text"),
    ],
)
def test_binary_and_non_utf8_content_is_refused_with_the_offset(
    tmp_path: Path, data: bytes, message: str
) -> None:
    (tmp_path / "VERSION").write_bytes(data)
    with pytest.raises(UnreadableFile) as caught:
        read_text(tmp_path / "VERSION", "VERSION")
    assert str(caught.value) == message


def test_a_file_over_the_limit_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 5000)
    with pytest.raises(UnreadableFile, match=r"^VERSION: larger than 4 KiB, the limit for this file"):
        read_text(tmp_path / "big", "VERSION", limit=4096)
    assert read_text(tmp_path / "big", "VERSION", limit=5000) == "x" * 5000


def test_a_directory_is_refused_as_a_directory(tmp_path: Path) -> None:
    (tmp_path / "VERSION").mkdir()
    with pytest.raises(UnreadableFile) as caught:
        read_text(tmp_path / "VERSION", "VERSION")
    assert str(caught.value) == "VERSION: is a directory, not a file"


def test_a_fifo_is_refused_without_opening_it_so_it_never_hangs(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "CHANGELOG.md")
    with pytest.raises(UnreadableFile) as caught:
        read_text(tmp_path / "CHANGELOG.md", "CHANGELOG.md")
    assert str(caught.value) == "CHANGELOG.md: is a named pipe (FIFO), not a file"


def test_a_device_and_a_socket_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match=r"^VERSION: is a device, not a file$"):
        read_text(Path("/dev/null"), "VERSION")
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(tmp_path / "sock"))
        with pytest.raises(UnreadableFile, match=r"^VERSION: is a socket, not a file$"):
            read_text(tmp_path / "sock", "VERSION")
    finally:
        server.close()


def test_a_missing_file_is_its_own_error_and_optional_reads_give_none(tmp_path: Path) -> None:
    with pytest.raises(MissingFile, match=r"^VERSION: file not found$"):
        read_text(tmp_path / "VERSION", "VERSION")
    assert read_optional(tmp_path / "VERSION", "VERSION") is None
    (tmp_path / "file").write_text("x")
    assert read_optional(tmp_path / "file" / "VERSION", "VERSION") is None


def test_a_symlink_inside_the_project_is_followed_and_one_outside_refused(tmp_path: Path) -> None:
    project, outside = tmp_path / "project", tmp_path / "secret"
    project.mkdir()
    outside.write_text("hunter2\n")
    (project / "real").write_text("1.0.0\n")
    (project / "VERSION").symlink_to(project / "real")
    assert read_text(project / "VERSION", "VERSION", root=project) == "1.0.0\n"
    (project / "CHANGELOG.md").symlink_to(outside)
    with pytest.raises(UnreadableFile) as caught:
        read_text(project / "CHANGELOG.md", "CHANGELOG.md", root=project)
    assert str(caught.value) == (
        f"CHANGELOG.md: resolves to {outside}, outside the project {project}; refused"
    )
    with pytest.raises(UnreadableFile, match="outside the project"):
        read_text(project / ".." / "secret", "../secret", root=project)
