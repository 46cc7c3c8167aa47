"""The worker's reader: what it makes of files that are too big, odd, or moving."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from geoingest import workers
from geoingest.workers import Ingested, Job, Rejected, Skipped, Unready, process_file

MIB = 1 << 20
POINT = b'{"type": "Point", "coordinates": [1.0, 2.0]}'


def job_for(path: Path, *, max_file_bytes: int = 64 * MIB) -> Job:
    """The job discovery would hand on for ``path`` as it is now."""
    st = os.lstat(path)
    return Job(str(path), st.st_size, st.st_mtime_ns, 6, max_file_bytes, "geojson")


def on_read(monkeypatch: pytest.MonkeyPatch, action: Callable[[], None]) -> None:
    """Run ``action`` right after the worker has read the file."""
    read_all = workers._read_all

    def read_then_act(fd: int, size: int, limit: int) -> bytes:
        data = read_all(fd, size, limit)
        action()
        return data

    monkeypatch.setattr(workers, "_read_all", read_then_act)


def test_a_valid_file_is_ingested(tmp_path: Path) -> None:
    path = tmp_path / "ok.geojson"
    path.write_bytes(POINT)
    result = process_file(job_for(path))
    assert isinstance(result, Ingested)
    assert (result.features, result.size) == (1, len(POINT))


def test_a_file_over_the_limit_is_rejected_without_being_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "huge.geojson"
    with path.open("wb") as f:
        f.truncate(300 * MIB)  # sparse: costs no disk and no time

    def no_read(fd: int, size: int) -> bytes:
        raise AssertionError("the file was read")

    monkeypatch.setattr(workers.os, "read", no_read)
    result = process_file(job_for(path))
    assert result == Rejected(
        sha256="",
        size=300 * MIB,
        rule="file-too-large",
        pointer="",
        message=f"the file has {300 * MIB} bytes, more than max_file_bytes ({64 * MIB})",
    )


def test_a_file_at_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "exact.geojson"
    path.write_bytes(POINT)
    assert isinstance(process_file(job_for(path, max_file_bytes=len(POINT))), Ingested)
    assert isinstance(process_file(job_for(path, max_file_bytes=len(POINT) - 1)), Rejected)


def test_a_fifo_swapped_in_is_skipped_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "pipe.geojson"
    os.mkfifo(path)
    started = time.monotonic()
    assert process_file(job_for(path)) == Skipped(reason="not-regular")
    assert time.monotonic() - started < 1.0


def test_a_socket_swapped_in_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "sock.geojson"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        assert process_file(job_for(path)) == Skipped(reason="not-regular")


def test_a_symlink_swapped_in_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.geojson"
    secret.write_bytes(POINT)
    link = tmp_path / "link.geojson"
    link.symlink_to(secret)
    assert process_file(job_for(link)) == Skipped(reason="symlink")


def test_a_file_gone_before_it_is_opened_has_vanished(tmp_path: Path) -> None:
    path = tmp_path / "gone.geojson"
    path.write_bytes(POINT)
    job = job_for(path)
    path.unlink()
    assert process_file(job) == Unready(vanished=True, reason="vanished before it was opened")


def test_a_file_changed_since_it_settled_goes_back(tmp_path: Path) -> None:
    path = tmp_path / "late.geojson"
    path.write_bytes(POINT)
    job = job_for(path)
    path.write_bytes(POINT + b" ")
    assert process_file(job) == Unready(vanished=False, reason="changed after it settled")


def test_a_file_that_grows_while_it_is_read_goes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "growing.geojson"
    path.write_bytes(POINT)

    def append() -> None:
        with path.open("ab") as f:
            f.write(b"\n")

    on_read(monkeypatch, append)
    assert process_file(job_for(path)) == Unready(
        vanished=False, reason="changed while it was read"
    )


def test_a_file_truncated_while_it_is_read_goes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "shrinking.geojson"
    path.write_bytes(POINT)
    on_read(monkeypatch, lambda: os.truncate(path, 10))
    assert process_file(job_for(path)) == Unready(
        vanished=False, reason="changed while it was read"
    )


def test_a_file_replaced_while_it_is_read_goes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "replaced.geojson"
    path.write_bytes(POINT)
    newer = tmp_path / ".newer"
    newer.write_bytes(POINT)
    on_read(monkeypatch, lambda: newer.rename(path))
    assert process_file(job_for(path)) == Unready(
        vanished=False, reason="replaced while it was read"
    )


def test_a_file_deleted_while_it_is_read_has_vanished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "deleted.geojson"
    path.write_bytes(POINT)
    on_read(monkeypatch, path.unlink)
    assert process_file(job_for(path)) == Unready(
        vanished=True, reason="vanished while it was read"
    )


def test_a_file_whose_check_fails_is_set_aside_as_internal_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import geoingest.geojson

    def broken(raw: bytes, precision: int) -> object:
        raise ValueError("a bug")

    monkeypatch.setattr(geoingest.geojson, "ingest_document", broken)
    path = tmp_path / "trips.geojson"
    path.write_bytes(POINT)
    result = process_file(job_for(path))
    assert isinstance(result, Rejected)
    assert (result.rule, result.message) == (
        "internal-error",
        "geoingest failed on this file (ValueError: a bug)",
    )


@pytest.mark.parametrize(
    ("name", "content", "rule"),
    [
        ("empty", b"", "empty-file"),
        ("bom", b"\xef\xbb\xbf" + POINT, "bom"),
        ("latin1", b'{"type": "Point", "name": "caf\xe9"}', "encoding"),
        ("nan", b'{"type": "Point", "coordinates": [NaN, 1]}', "json-nan"),
        ("deep", b"[" * 5000 + b"]" * 5000, "json-too-deep"),
        ("huge-number", b'{"type": "Point", "coordinates": [1e999, 1]}', "number-out-of-range"),
        ("twice", b'{"type": "Point", "type": "Point", "coordinates": [1, 2]}', "duplicate-member"),
    ],
)
def test_hostile_content_is_rejected_with_its_rule(
    tmp_path: Path, name: str, content: bytes, rule: str
) -> None:
    path = tmp_path / f"{name}.geojson"
    path.write_bytes(content)
    result = process_file(job_for(path))
    assert isinstance(result, Rejected)
    assert result.rule == rule
