"""The ledger records files by content hash and survives reopening."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path, PurePath

from geoingest.ledger import FileKey, Ledger


def _key(n: int, sha: str | None = None) -> FileKey:
    return FileKey(sha or f"{n:064x}", "drop", PurePath(f"d/{n}.geojson"), 100 + n, 10**9 + n)


def test_content_counts_as_ingested_only_once_its_batch_is_committed(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.begin_batch("b1", [_key(1)])
    assert not ledger.has_content(_key(1).sha256)
    ledger.mark_batch("b1", "committed")
    assert ledger.has_content(_key(1).sha256)
    assert ledger.has_file("drop", PurePath("d/1.geojson"), 101, 10**9 + 1)
    assert not ledger.has_file("drop", PurePath("d/1.geojson"), 102, 10**9 + 1)


def test_forgotten_manifest_leaves_nothing(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.begin_batch("b1", [_key(1), _key(2)])
    ledger.forget_batch("b1")
    assert ledger.counts() == {}


def test_state_survives_reopening_and_runs_in_wal_mode(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.begin_batch("b1", [_key(1)])
    ledger.close()
    reopened = Ledger(tmp_path)
    assert reopened.batches_in("in_batch") == ["b1"]
    reopened.close()
    db = sqlite3.connect(tmp_path / "ledger.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_compaction_removes_only_old_finished_entries(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.begin_batch("old", [_key(1)])
    ledger.mark_batch("old", "disposed")
    ledger.begin_batch("open", [_key(2)])
    time.sleep(0.05)
    ledger.record(_key(3), "quarantined", "json-syntax")
    assert ledger.compact(older_than_s=0.02) == 1
    assert ledger.counts() == {"in_batch": 1, "quarantined": 1}


def test_find_by_hash_or_relative_path(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.record(_key(1, "ab" * 32), "duplicate")
    assert [e.state for e in ledger.find("ab" * 32)] == ["duplicate"]
    assert [e.sha256 for e in ledger.find("d/1.geojson")] == ["ab" * 32]
    assert ledger.find("d/2.geojson") == []


def test_paths_that_are_not_utf8_round_trip(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    name = PurePath(b"bad\xff\nname.geojson".decode("utf-8", "surrogateescape"))
    ledger.record(FileKey("cd" * 32, "drop", name, 1, 1), "quarantined")
    assert ledger.recent()[0].path == name


def _hashed(n: int) -> FileKey:
    return _key(n, hashlib.sha256(b"%d" % n).hexdigest())


def test_a_chunk_of_files_is_looked_up_at_once(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.begin_batch("b1", [_hashed(1), _hashed(2)])
    ledger.mark_batch("b1", "committed")
    ledger.record(_hashed(3), "duplicate")
    ledger.record(_hashed(4), "quarantined", "json-syntax")
    hashes = [_hashed(n).sha256 for n in range(1, 6)]
    assert ledger.committed_contents(hashes) == {_hashed(n).sha256 for n in (1, 2, 3)}
    asked = [(k.path, k.size, k.mtime_ns) for k in map(_hashed, range(1, 6))]
    moved_on = (_hashed(1).path, _hashed(1).size + 1, _hashed(1).mtime_ns)
    assert ledger.committed_files("drop", [*asked, moved_on]) == set(asked[:3])
    assert ledger.committed_files("elsewhere", asked) == set()


def test_what_was_committed_is_known_after_reopening(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.begin_batch("b1", [_hashed(1)])
    ledger.mark_batch("b1", "committed")
    ledger.begin_batch("b2", [_hashed(2)])  # never committed
    ledger.close()
    for reopened in (Ledger(tmp_path), Ledger(tmp_path, readonly=True)):
        assert reopened.committed_contents([_hashed(1).sha256, _hashed(2).sha256]) == {
            _hashed(1).sha256
        }
        assert reopened.has_file("drop", _hashed(1).path, _hashed(1).size, _hashed(1).mtime_ns)
        reopened.close()
