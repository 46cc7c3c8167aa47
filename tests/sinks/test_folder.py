"""The folder sink writes whole batches atomically."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from geoingest.batching import Batch
from geoingest.config import InputRoot
from geoingest.discovery import Candidate
from geoingest.sinks.folder import FolderSink
from geoingest.workers import Ingested, encode_features

ROOT = InputRoot("drop", Path("/drop"))


def _batch(output_format: str, *files: list[bytes]) -> Batch:
    batch = Batch()
    for index, features in enumerate(files):
        candidate = Candidate(ROOT, ROOT.path / f"{index}.geojson", 1, 0, "backfill")
        body = encode_features(features, output_format)
        batch.add(candidate, Ingested("0" * 64, 1, len(features), body, ()))
    return batch


def _feature(n: int) -> bytes:
    return orjson.dumps({"type": "Feature", "properties": {"n": n}, "geometry": None})


def test_batch_is_one_feature_collection(tmp_path: Path) -> None:
    sink = FolderSink(tmp_path)
    commit = sink.commit(
        _batch("geojson", [_feature(1), _feature(2)], [], [_feature(3)]), sink.reserve_name()
    )
    doc = orjson.loads((tmp_path / commit.name).read_bytes())
    assert doc["type"] == "FeatureCollection"
    assert [f["properties"]["n"] for f in doc["features"]] == [1, 2, 3]
    assert commit.nbytes == (tmp_path / commit.name).stat().st_size


def test_geojsonseq_batch_is_a_text_sequence(tmp_path: Path) -> None:
    sink = FolderSink(tmp_path, "geojsonseq")
    commit = sink.commit(_batch("geojsonseq", [_feature(1)], [_feature(2)]), sink.reserve_name())
    assert commit.name.endswith(".geojsons")
    records = (tmp_path / commit.name).read_bytes().split(b"\x1e")
    assert records[0] == b""
    assert [orjson.loads(r)["properties"]["n"] for r in records[1:]] == [1, 2]


def test_names_are_unique_and_sort_by_time(tmp_path: Path) -> None:
    sink = FolderSink(tmp_path)
    names = [
        sink.commit(_batch("geojson", [_feature(i)]), sink.reserve_name()).name for i in range(50)
    ]
    assert len(set(names)) == 50
    assert names == sorted(names)


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError):
        sink = FolderSink(tmp_path)
        sink.commit(_batch("geojson", [_feature(1)]), sink.reserve_name())
    assert list(tmp_path.iterdir()) == []


def test_recover_removes_temporary_files_only(tmp_path: Path) -> None:
    (tmp_path / ".batch-20261203T000000.000000Z-000001.geojson.tmp").write_bytes(b"{")
    (tmp_path / "batch-20261203T000000.000000Z-000001.geojson").write_bytes(b"{}")
    assert FolderSink(tmp_path).recover() == 1
    assert [p.name for p in tmp_path.iterdir()] == ["batch-20261203T000000.000000Z-000001.geojson"]
