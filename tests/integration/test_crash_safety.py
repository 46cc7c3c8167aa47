"""Nothing lost, nothing twice: SIGKILL at random and at chosen instants, full disks."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from corpus import Folders, assert_exactly_once, collection, output_features, write
from daemon_process import Daemon

Start = Callable[..., Daemon]
MOVE = ("--on-success", "move")


def _drop(folder: Path, name: str, doc: dict[str, Any]) -> None:
    """Write a file under a dot-name, then rename it into place (one event, complete)."""
    temp = folder / f".{name}.part"
    write(temp, doc)
    temp.rename(folder / name)


def _broken(folders: Folders, n: int) -> list[str]:
    names = [f"broken-{i}.geojson" for i in range(n)]
    for name in names:
        (folders.drop / name).write_text('{"type": "FeatureCollection", "features": [')
    return names


def _drain(start_daemon: Start, folders: Folders) -> None:
    final = start_daemon(*MOVE, "--done-dir", str(folders.done), command="once")
    assert final.wait(120) == 0, final.tail()


def _assert_nothing_lost(
    folders: Folders, expected: list[dict[str, Any]], broken: list[str]
) -> None:
    assert_exactly_once(folders.out, expected)
    left = sorted(p.name for p in folders.drop.rglob("*.geojson"))
    assert left == [], f"sources left in the drop folder: {left[:10]}"
    quarantine = folders.out / ".geoingest" / "quarantine"
    for name in broken:
        reason = json.loads((quarantine / f"{name}.error.json").read_text())
        assert reason["rule"] == "json-syntax"


def test_random_sigkills_while_files_arrive(folders: Folders, start_daemon: Start) -> None:
    rng = random.Random(11)
    expected: list[dict[str, Any]] = []
    for i in range(150):
        expected += write(folders.drop / f"d{i % 7}" / f"f{i}.geojson", collection(rng, 20))[
            "features"
        ]
    broken = _broken(folders, 5)

    # A producer keeps dropping files through every kill.
    stop = threading.Event()

    def produce() -> None:
        n = 0
        while not stop.is_set():
            doc = collection(rng, 5)
            _drop(folders.drop, f"live-{n}.geojson", doc)
            expected.extend(doc["features"])
            n += 1
            time.sleep(0.01)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        for _ in range(10):
            daemon = start_daemon(
                *MOVE, "--done-dir", str(folders.done), "--batch-max-features", "50"
            )
            time.sleep(rng.uniform(0.3, 1.5))
            daemon.kill()
            assert daemon.proc.returncode == -9
    finally:
        stop.set()
        producer.join()
    _drain(start_daemon, folders)
    _assert_nothing_lost(folders, expected, broken)


@pytest.mark.parametrize("point", ["flush", "after-rename", "disposal"])
def test_sigkill_at_each_step_of_a_commit(
    point: str, folders: Folders, start_daemon: Start
) -> None:
    rng = random.Random(12)
    expected: list[dict[str, Any]] = []
    for i in range(40):
        expected += write(folders.drop / f"f{i}.geojson", collection(rng, 10))["features"]
    broken = _broken(folders, 2)
    crashing = start_daemon(
        *MOVE, "--done-dir", str(folders.done), env={"GEOINGEST_CRASH_AT": point}
    )
    assert crashing.wait(60) == -9, crashing.tail()
    _drain(start_daemon, folders)
    _assert_nothing_lost(folders, expected, broken)


def test_identical_content_under_another_name_is_not_ingested_twice(
    folders: Folders, start_daemon: Start
) -> None:
    doc = write(folders.drop / "first.geojson", collection(random.Random(13), 6))
    daemon = start_daemon()
    daemon.wait_for(lambda: len(output_features(folders.out)) == 6)
    shutil.copy(folders.drop / "first.geojson", folders.drop / "retry-of-first.geojson")
    daemon.wait_for(lambda: len(daemon.find("file_duplicate")) == 1)
    assert daemon.stop() == 0

    # Across a restart too, and in another folder.
    (folders.drop / "later").mkdir()
    shutil.copy(folders.drop / "first.geojson", folders.drop / "later" / "again.geojson")
    rerun = start_daemon(command="once")
    assert rerun.wait() == 0
    assert rerun.find("file_duplicate")
    assert_exactly_once(folders.out, doc["features"])


def test_a_kept_file_that_leaves_and_comes_back_is_not_ingested_again(
    folders: Folders, start_daemon: Start
) -> None:
    # Content checks off: only the ledger's memory of kept files stands in the way.
    doc = write(folders.drop / "kept.geojson", collection(random.Random(15), 4))
    daemon = start_daemon("--dedupe", "none", "--log-level", "debug")
    daemon.wait_for(lambda: len(output_features(folders.out)) == 4)
    away = folders.done / "kept.geojson"
    folders.done.mkdir(exist_ok=True)
    (folders.drop / "kept.geojson").rename(away)
    # A reconciliation walk (every 2 s here) misses it, and discovery forgets it.
    daemon.wait_for(lambda: len(daemon.find("rescan_finished")) >= 2, 20)
    away.rename(folders.drop / "kept.geojson")  # same size and mtime
    daemon.wait_for(lambda: len(daemon.find("rescan_finished")) >= 4, 20)
    assert daemon.stop() == 0
    assert_exactly_once(folders.out, doc["features"])


def test_worker_crash_is_retried_then_quarantined(folders: Folders, start_daemon: Start) -> None:
    rng = random.Random(14)
    good = [write(folders.drop / f"g{i}.geojson", collection(rng, 3)) for i in range(10)]
    write(folders.drop / "poison.geojson", collection(rng, 3))
    daemon = start_daemon(env={"GEOINGEST_CRASH_AT": "worker:poison.geojson"})
    daemon.wait_for(lambda: bool(daemon.find("file_quarantined")))
    daemon.wait_for(lambda: len(output_features(folders.out)) == 30)
    assert daemon.stop() == 0
    reason = json.loads(
        (folders.out / ".geoingest" / "quarantine" / "poison.geojson.error.json").read_text()
    )
    assert reason["rule"] == "worker-crash"
    assert len(daemon.find("worker_died")) >= 1
    assert_exactly_once(folders.out, [f for doc in good for f in doc["features"]])


@contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _ready_status(daemon: Daemon) -> int:
    url = daemon.metrics_url.replace("/metrics", "/readyz")
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_full_output_disk_pauses_then_resumes(
    tmp_path: Path, start_daemon: Start, folders: Folders
) -> None:
    with _tmpfs(folders.out, "2m"):
        filler = folders.out / "filler"
        with filler.open("wb") as f, pytest.raises(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        rng = random.Random(15)
        docs = [write(folders.drop / f"f{i}.geojson", collection(rng, 20)) for i in range(20)]
        daemon = start_daemon(
            "--state-dir", str(tmp_path / "state"), *MOVE, "--done-dir", str(folders.done)
        )
        daemon.wait_for(lambda: bool(daemon.find("batch_write_failed")))
        daemon.wait_for(lambda: _ready_status(daemon) == 503)
        assert list(folders.drop.glob("*.geojson")), "no source may be disposed of meanwhile"

        filler.unlink()
        daemon.wait_for(lambda: len(output_features(folders.out)) == 400, timeout_s=60)
        daemon.wait_for(lambda: _ready_status(daemon) == 200)
        assert daemon.stop() == 0
        assert_exactly_once(folders.out, [f for doc in docs for f in doc["features"]])
        assert list(folders.drop.glob("*.geojson")) == []


def test_move_across_filesystems_copies_then_unlinks(
    tmp_path: Path, start_daemon: Start, folders: Folders
) -> None:
    with _tmpfs(folders.done, "16m"):
        rng = random.Random(16)
        docs = [
            write(folders.drop / "sub" / f"f{i}.geojson", collection(rng, 2)) for i in range(10)
        ]
        daemon = start_daemon(*MOVE, "--done-dir", str(folders.done), command="once")
        assert daemon.wait() == 0
        assert sorted(p.name for p in (folders.done / "sub").iterdir()) == sorted(
            f"f{i}.geojson" for i in range(10)
        )
        assert list(folders.drop.rglob("*.geojson")) == []
        assert not list(folders.done.rglob(".*")), "no temporary copies left"
        assert_exactly_once(folders.out, [f for doc in docs for f in doc["features"]])
