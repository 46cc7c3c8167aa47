"""The real daemon on real folders: backfill, drops while running, quarantine, drain."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import corpus
from corpus import Folders, assert_exactly_once, collection, output_features, write
from daemon_process import Daemon

Start = Callable[..., Daemon]


def _written(folders: Folders) -> int:
    return len(output_features(folders.out))


def _ingested(daemon: Daemon) -> int:
    return sum(e["files"] for e in daemon.find("batch_written"))


def test_backfill_of_a_nested_tree(folders: Folders, start_daemon: Start) -> None:
    rng = random.Random(1)
    docs = [
        write(folders.drop / f"2026-11-{d:02d}" / f"h{h:02d}" / f"f{i}.geojson", collection(rng, 5))
        for d in range(1, 4)
        for h in range(3)
        for i in range(4)
    ]
    expected = [f for doc in docs for f in corpus.features_of(doc)]
    daemon = start_daemon()
    daemon.wait_for(lambda: _written(folders) >= len(expected))
    assert daemon.stop() == 0
    assert_exactly_once(folders.out, expected)
    assert len(daemon.find("batch_written")) >= 1, daemon.tail(40)


def test_files_dropped_while_running_in_every_way(
    folders: Folders, start_daemon: Start, tmp_path: Path
) -> None:
    rng = random.Random(2)
    daemon = start_daemon()
    daemon.wait_for_event("watching")
    expected: list[dict[str, Any]] = []

    # Written in several chunks with pauses shorter than settle_s.
    doc = collection(rng, 20)
    data = json.dumps(doc).encode()
    with (folders.drop / "chunked.geojson").open("wb") as f:
        for start in range(0, len(data), len(data) // 4 + 1):
            f.write(data[start : start + len(data) // 4 + 1])
            f.flush()
            time.sleep(0.08)
    expected += doc["features"]

    # Renamed into place from a temporary name.
    doc = write(folders.drop / ".incoming.geojson.part", collection(rng, 3))
    (folders.drop / ".incoming.geojson.part").rename(folders.drop / "renamed.geojson")
    expected += doc["features"]

    # A whole folder moved in with files already inside.
    staging = tmp_path / "staging" / "batch-7"
    for i in range(10):
        expected += write(staging / "deep" / f"m{i}.geojson", collection(rng, 2))["features"]
    staging.rename(folders.drop / "batch-7")

    # mkdir -p with many files created at once.
    nested = folders.drop / "a" / "b" / "c"
    nested.mkdir(parents=True)
    for i in range(50):
        expected += write(nested / f"n{i}.geojson", collection(rng, 1))["features"]

    daemon.wait_for(lambda: _written(folders) >= len(expected))
    time.sleep(2.5)  # one reconciliation walk later, nothing may come out twice
    assert daemon.stop() == 0
    assert_exactly_once(folders.out, expected)


def test_broken_files_are_quarantined_with_their_rule(
    folders: Folders, start_daemon: Start
) -> None:
    rng = random.Random(3)
    good = write(folders.drop / "good.geojson", collection(rng, 4))
    broken = {
        "truncated.geojson": (json.dumps(collection(rng, 2))[:-7], "json-syntax"),
        "open-ring.geojson": (
            json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}),
            "ring-not-closed",
        ),
        "short.geojson": (
            json.dumps(
                {
                    "type": "Feature",
                    "properties": {},
                    "geometry": {"type": "Point", "coordinates": [1]},
                }
            ),
            "position-too-short",
        ),
        "sub/empty.geojson": ("", "empty-file"),
    }
    for name, (text, _) in broken.items():
        (folders.drop / name).parent.mkdir(parents=True, exist_ok=True)
        (folders.drop / name).write_text(text)
    daemon = start_daemon()
    daemon.wait_for(lambda: len(daemon.find("file_quarantined")) == len(broken))
    daemon.wait_for(lambda: _written(folders) >= len(good["features"]))
    assert daemon.stop() == 0

    quarantine = folders.out / ".geoingest" / "quarantine"
    for name, (text, rule) in broken.items():
        assert (quarantine / name).read_text() == text
        reason = json.loads((quarantine / f"{name}.error.json").read_text())
        assert reason["rule"] == rule, name
        assert set(reason) >= {"rule", "pointer", "message", "sha256", "time"}
        assert not (folders.drop / name).exists()
    assert_exactly_once(folders.out, good["features"])


def test_sigterm_drains_and_loses_nothing(folders: Folders, start_daemon: Start) -> None:
    rng = random.Random(4)
    docs = [
        write(folders.drop / f"d{i // 50}" / f"f{i}.geojson", collection(rng, 30))
        for i in range(400)
    ]
    expected = [f for doc in docs for f in doc["features"]]
    daemon = start_daemon("--on-success", "move", "--done-dir", str(folders.done))
    daemon.wait_for(lambda: _ingested(daemon) > 0)
    assert daemon.stop() == 0

    # Whatever the drain committed is gone from the drop folder; the rest is
    # still there and a second run ingests it. Together: each feature once.
    left = list(folders.drop.rglob("*.geojson"))
    assert len(left) < len(docs)
    rerun = start_daemon("--on-success", "move", "--done-dir", str(folders.done), command="once")
    assert rerun.wait() == 0
    assert list(folders.drop.rglob("*.geojson")) == []
    assert len(list(folders.done.rglob("*.geojson"))) == len(docs)
    assert_exactly_once(folders.out, expected)


def test_once_ingests_everything_then_exits(folders: Folders, start_daemon: Start) -> None:
    rng = random.Random(5)
    docs = [write(folders.drop / f"f{i}.geojson", collection(rng, 3)) for i in range(30)]
    (folders.drop / "bad.geojson").write_text("{")
    daemon = start_daemon(command="once")
    assert daemon.wait() == 0
    assert_exactly_once(folders.out, [f for doc in docs for f in doc["features"]])
    stopped = daemon.find("stopped")[0]
    assert (stopped["ingested"], stopped["quarantined"]) == (30, 1)
    assert list((folders.out / ".geoingest" / "spool").iterdir()) == []


def test_metrics_endpoint_counts_what_happened(folders: Folders, start_daemon: Start) -> None:
    rng = random.Random(6)
    for i in range(12):
        write(folders.drop / f"f{i}.geojson", collection(rng, 2))
    (folders.drop / "bad.geojson").write_text("[")
    daemon = start_daemon()
    daemon.wait_for(lambda: _written(folders) >= 24)
    daemon.wait_for(lambda: len(daemon.find("file_quarantined")) == 1)
    text = urllib.request.urlopen(daemon.metrics_url, timeout=5).read().decode()
    assert "geoingest_features_written_total 24.0" in text
    assert 'geoingest_files_processed_total{outcome="quarantined",source="drop"} 1.0' in text
    assert 'geoingest_files_rejected_total{rule="json-syntax"} 1.0' in text
    assert daemon.stop() == 0


def test_config_error_names_the_key_and_exits_2(folders: Folders) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "geoingest",
            "run",
            "--input",
            str(folders.drop),
            "--output",
            str(folders.out),
            "--settle-s",
            "soon",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "settle_s" in proc.stderr


def test_unwritable_output_is_a_startup_failure(folders: Folders, start_daemon: Start) -> None:
    folders.out.write_text("a file where the output folder should be")
    daemon = start_daemon()
    assert daemon.wait() == 3
    assert daemon.find("startup_failed")


def test_once_on_the_benchmark_corpus_writes_every_feature(tmp_path: Path) -> None:
    make_corpus = Path(__file__).parents[2] / ".." / "shared" / "bench" / "make_corpus.py"
    if not make_corpus.exists():
        import pytest

        pytest.skip("the shared benchmark corpus generator is not beside the repository")
    drop, out = tmp_path / "corpus", tmp_path / "out"
    summary = subprocess.run(
        [sys.executable, str(make_corpus), str(drop), "--files", "10000"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout.split()
    expected = int(dict(item.split("=") for item in summary)["features"])
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "geoingest",
            "once",
            "--input",
            str(drop),
            "--output",
            str(out),
            "--metrics-address",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ],
        capture_output=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert len(output_features(out)) == expected
