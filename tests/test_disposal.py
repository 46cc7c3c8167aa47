"""Sources are kept, moved or deleted after their batch commits."""

from __future__ import annotations

from pathlib import Path

import pytest

from geoingest.config import InputRoot
from geoingest.discovery import Candidate
from geoingest.disposal import dispose


@pytest.fixture
def candidate(tmp_path: Path) -> Candidate:
    root = tmp_path / "drop"
    path = root / "d" / "a.geojson"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"{}")
    return Candidate(InputRoot("drop", root), path, 2, path.stat().st_mtime_ns, "backfill")


def test_keep_leaves_the_file(candidate: Candidate) -> None:
    dispose(candidate, "keep", None)
    assert candidate.path.read_bytes() == b"{}"


def test_move_preserves_the_relative_path(candidate: Candidate, tmp_path: Path) -> None:
    dispose(candidate, "move", tmp_path / "done")
    assert (tmp_path / "done" / "d" / "a.geojson").read_bytes() == b"{}"
    assert not candidate.path.exists()


def test_delete_removes_the_file(candidate: Candidate) -> None:
    dispose(candidate, "delete", None)
    assert not candidate.path.exists()


def test_a_file_already_gone_counts_as_disposed(candidate: Candidate) -> None:
    candidate.path.unlink()
    dispose(candidate, "delete", None)


def test_a_deferred_move_names_every_folder_to_sync(candidate: Candidate, tmp_path: Path) -> None:
    done = tmp_path / "done"
    done.mkdir()
    changed: set[Path] = set()
    dispose(candidate, "move", done, changed)
    assert (done / "d" / "a.geojson").exists()
    # The source's folder, the target's, and the done folder that gained "d".
    assert changed == {candidate.path.parent, done / "d", done}
