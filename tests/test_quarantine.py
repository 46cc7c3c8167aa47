"""Rejected files are moved aside with their reason."""

from __future__ import annotations

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
