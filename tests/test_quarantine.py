"""Rejected files are moved aside with their reason."""

from __future__ import annotations

import os
from pathlib import Path

from geoingest.config import InputRoot
from geoingest.discovery import Candidate
from geoingest.quarantine import Reason, quarantine, read_reason


def _candidate(root: Path, rel: str, data: bytes) -> Candidate:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    st = path.stat()
    return Candidate(InputRoot("drop", root), path, st.st_size, st.st_mtime_ns, "backfill")


def test_moves_the_file_at_its_relative_path_beside_its_reason(tmp_path: Path) -> None:
    candidate = _candidate(tmp_path / "drop", "2026/a.geojson", b"{")
    reason = Reason("json-syntax", "", "unexpected end of input", "ab" * 32)
    target = quarantine(candidate, reason, tmp_path / "q")
    assert target == tmp_path / "q" / "2026" / "a.geojson"
    assert target.read_bytes() == b"{"
    assert not candidate.path.exists()
    report = read_reason(target)
    assert (report["rule"], report["pointer"], report["sha256"]) == ("json-syntax", "", "ab" * 32)
    assert report["message"] == "unexpected end of input"
    assert isinstance(report["time"], str)


def test_a_second_file_at_the_same_path_does_not_overwrite_the_first(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    first = quarantine(
        _candidate(tmp_path / "drop", "a.geojson", b"1"), Reason("r", "", "m"), folder
    )
    second = quarantine(
        _candidate(tmp_path / "drop", "a.geojson", b"2"), Reason("r", "", "m"), folder
    )
    assert first != second
    assert (first.read_bytes(), second.read_bytes()) == (b"1", b"2")


def test_a_name_of_any_bytes_is_kept_as_it_is_and_shown_escaped(tmp_path: Path) -> None:
    name = os.fsdecode(b"bad\n\xff\x1b.geojson")
    candidate = _candidate(tmp_path / "drop", f"sub/{name}", b"[")
    target = quarantine(candidate, Reason("not-geojson", "", "m"), tmp_path / "q")
    assert target == tmp_path / "q" / "sub" / name
    assert read_reason(target)["path"] == "sub/bad\\n\\xff\\x1b.geojson"


def test_a_name_too_long_for_the_reason_beside_it_is_shortened(tmp_path: Path) -> None:
    name = "x" * 247 + ".geojson"  # 255 bytes, the most a name may hold
    folder = tmp_path / "q"
    first = quarantine(_candidate(tmp_path / "drop", name, b"1"), Reason("r", "", "m"), folder)
    second = quarantine(_candidate(tmp_path / "drop", name, b"2"), Reason("r", "", "m"), folder)
    assert first.name.endswith(".geojson")
    assert len(first.name) < len(name)
    assert (first.read_bytes(), second.read_bytes()) == (b"1", b"2")
    assert read_reason(first)["path"] == read_reason(second)["path"] == name
