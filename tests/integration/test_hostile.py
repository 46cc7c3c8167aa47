"""The real daemon on a drop folder full of hostile entries, beside valid files.

Whatever lands in a drop folder was written by someone else: special files,
symlinks out of the folder and into loops, files too big to read, broken
text, names that are not text at all, files that change while they are read.
The daemon must stay up, ingest every valid feature once, never read outside
its input folders, quarantine every bad file under its rule, stay small, and
still drain and exit 0 on SIGTERM.
"""

from __future__ import annotations

import json
import os
import random
import socket
import stat
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from geoingest.config import load
from geoingest.quarantine import stored_name

from corpus import Folders, assert_exactly_once, collection, output_features, write
from daemon_process import Daemon

Start = Callable[..., Daemon]
MIB = 1 << 20
MEMORY_LIMIT = 300 * MIB
POINT = b'{"type": "Point", "coordinates": [1.0, 2.0]}'
LONG_NAME = "n" * 247 + ".geojson"  # 255 bytes, the longest a name may be

# File name -> (content, the rule it is quarantined under).
BAD_FILES: dict[str, tuple[bytes, str]] = {
    "deep.geojson": (b"[" * 5000 + b"]" * 5000, "json-too-deep"),
    "nan.geojson": (b'{"type": "Point", "coordinates": [NaN, 1]}', "json-nan"),
    "infinity.geojson": (b'{"type": "Point", "coordinates": [1, -Infinity]}', "json-nan"),
    "latin1.geojson": (b'{"type": "Point", "coordinates": [1, 2], "name": "caf\xe9"}', "encoding"),
    "bom.geojson": (b"\xef\xbb\xbf" + POINT, "bom"),
    "twice.geojson": (
        b'{"type": "Point", "coordinates": [1, 2], "type": "Point"}',
        "duplicate-member",
    ),
    "too-big-a-number.geojson": (
        b'{"type": "Point", "coordinates": [1e999, 2]}',
        "number-out-of-range",
    ),
    "empty.geojson": (b"", "empty-file"),
    "sub/not-an-object.geojson": (b"[1, 2]", "not-geojson"),
    os.fsdecode(b"new\nline\x1b[2J.geojson"): (b'{"type": "Poin', "json-syntax"),
    os.fsdecode(b"not-utf8-\xff\xfe.geojson"): (b"{}", "missing-type"),
    LONG_NAME: (b"null", "not-geojson"),
}
# Dropped while the daemon watches, so that events rather than the backfill find them.
LATE_BAD_FILES: dict[str, tuple[bytes, str]] = {
    "late/nan.geojson": (b"[NaN]", "json-nan"),
    os.fsdecode(b"late/tab\there\xc0.geojson"): (b"", "empty-file"),
}


class MemorySampler:
    """Samples the summed RSS of a process and all its descendants, from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._tree_rss())
            self.samples += 1

    def _tree_rss(self) -> int:
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rpartition(")")[2].split()
                except OSError:
                    continue
                children.setdefault(int(fields[1]), []).append(int(entry.name))
        total, todo = 0, [self.pid]
        while todo:
            pid = todo.pop()
            todo.extend(children.get(pid, []))
            total += _rss(pid)
        return total


def _rss(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _special_files(drop: Path, tag: str) -> int:
    """Make a FIFO, a socket and (where allowed) a device; return how many were made."""
    os.mkfifo(drop / f"fifo-{tag}.geojson")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(drop / f"socket-{tag}.geojson"))
    try:
        os.mknod(drop / f"device-{tag}.geojson", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        return 2
    return 3


def _symlinks(drop: Path, outside: Path, tag: str) -> int:
    """Link out of the drop folder, into a loop, to the whole filesystem; return how many."""
    links = {
        f"secret-{tag}.geojson": outside / "secret.geojson",
        f"outside-{tag}": outside,
        f"loop-{tag}": drop,
        f"root-{tag}": Path("/"),
        f"alias-{tag}.geojson": drop / "valid-0.geojson",
    }
    for name, target in links.items():
        (drop / name).symlink_to(target)
    return len(links)


def _valid(path: Path, rng: random.Random, n: int) -> list[dict[str, Any]]:
    features: list[dict[str, Any]] = write(path, collection(rng, n))["features"]
    return features


def _drop_changing_files(drop: Path, staging: Path, rng: random.Random) -> list[dict[str, Any]]:
    """Files that grow, vanish, are replaced or truncated; return what must come out."""
    grown = collection(rng, 6)
    data = json.dumps(grown).encode()
    with (drop / "growing.geojson").open("wb") as f:
        for start in range(0, len(data), len(data) // 4 + 1):
            f.write(data[start : start + len(data) // 4 + 1])
            f.flush()
            time.sleep(0.05)

    _write_bytes(drop / "vanishing.geojson", json.dumps(collection(rng, 2)).encode())
    (drop / "vanishing.geojson").unlink()

    write(drop / "replaced.geojson", collection(rng, 1))
    newer = write(staging / "replaced.geojson", collection(rng, 3))
    (staging / "replaced.geojson").rename(drop / "replaced.geojson")

    # Rewritten in place, shorter: only what the file finally holds may come out.
    write(drop / "truncated.geojson", collection(rng, 5))
    shorter = collection(rng, 2)
    with (drop / "truncated.geojson").open("r+b") as f:
        f.truncate(0)
        f.write(json.dumps(shorter).encode())
    return [*grown["features"], *newer["features"], *shorter["features"]]


def _metric(text: str, name: str, **labels: str) -> float:
    wanted = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no sample {wanted}")


class Dropped:
    """What a test put in the drop folder, and what must come of it."""

    def __init__(self) -> None:
        self.features: list[dict[str, Any]] = []
        self.bad: dict[str, tuple[bytes, str]] = {"huge.geojson": (b"", "file-too-large")}
        self.special_files = 0
        self.symlinks = 0


def _drop_before_start(drop: Path, outside: Path, rng: random.Random, dropped: Dropped) -> None:
    """Valid files, special files, symlinks, bad files and a 300 MB file, for the backfill."""
    for i in range(10):
        dropped.features += _valid(drop / f"valid-{i}.geojson", rng, 4)
    dropped.features += _valid(drop / "folder.geojson" / "inner.geojson", rng, 2)
    dropped.features += _valid(drop / os.fsdecode(b"caf\xe9-\x01.geojson"), rng, 2)
    dropped.special_files += _special_files(drop, "early")
    dropped.symlinks += _symlinks(drop, outside, "early")
    for name, (content, _) in BAD_FILES.items():
        _write_bytes(drop / name, content)
    dropped.bad.update(BAD_FILES)
    with (drop / "huge.geojson").open("wb") as f:
        f.truncate(300 * MIB)  # sparse: costs no disk, and must never be read


def _wait_for_the_watcher_after_the_backfill(daemon: Daemon, bad: int) -> None:
    """Wait until the backfill's bad files are in quarantine and the watcher is whole.

    Moving the file whose name is not UTF-8 into quarantine breaks the
    watcher's batch, and the watcher is rebuilt a second later. Skips that
    happen in between are found by the rebuild's walk, which does not count
    them: the late special files must come after it.
    """
    daemon.wait_for(lambda: len(daemon.find("file_quarantined")) >= bad, 60)
    time.sleep(0.3)
    failures = len(daemon.find("watcher_failed"))
    daemon.wait_for(
        lambda: (
            sum(e["reason"] == "watcher_restart" for e in daemon.find("rescan_finished"))
            >= failures
        ),
        30,
    )


def _drop_while_watching(
    drop: Path, outside: Path, staging: Path, rng: random.Random, dropped: Dropped
) -> None:
    """More of each kind, and files that change under the daemon, for the watcher."""
    dropped.special_files += _special_files(drop, "late")
    dropped.symlinks += _symlinks(drop, outside, "late")
    dropped.features += _valid(drop / "later.geojson" / "inner.geojson", rng, 2)
    # A name that is not UTF-8 breaks the watcher's batch, and the walk that
    # recovers its files does not count skips: let the skips arrive first.
    time.sleep(0.5)
    for i in range(5):
        dropped.features += _valid(drop / f"late-{i}.geojson", rng, 3)
    dropped.features += _valid(drop / os.fsdecode(b"late-\xff\n.geojson"), rng, 2)
    for name, (content, _) in LATE_BAD_FILES.items():
        _write_bytes(drop / name, content)
    dropped.bad.update(LATE_BAD_FILES)
    dropped.features += _drop_changing_files(drop, staging, rng)
    write(outside / "deeper" / "written-later.geojson", collection(rng, 2))


def _assert_quarantined(quarantine: Path, drop: Path, bad: dict[str, tuple[bytes, str]]) -> None:
    """Every bad file is quarantined under its rule, and nothing else is."""
    for name, (_, rule) in bad.items():
        kept = quarantine / Path(name).parent / stored_name(Path(name).name)
        reason = json.loads(kept.with_name(kept.name + ".error.json").read_bytes())
        assert reason["rule"] == rule, name
        assert not (drop / name).exists(), name
    kept_files = [p for p in quarantine.rglob("*") if p.is_file() and p.suffix != ".json"]
    assert len(kept_files) == len(bad)
    assert (quarantine / "huge.geojson").stat().st_blocks == 0  # moved, never copied or read


def test_the_metrics_endpoint_listens_on_loopback_unless_told_otherwise() -> None:
    settings = load({"input": ["drop"], "output": "out"}, {})
    assert settings.metrics_address == ("127.0.0.1", 9611)


def test_a_hostile_drop_folder_costs_only_its_quarantine(
    folders: Folders, start_daemon: Start, tmp_path: Path
) -> None:
    rng = random.Random(7)
    drop, outside, staging = folders.drop, tmp_path / "outside", tmp_path / "staging"
    staging.mkdir()
    write(outside / "secret.geojson", collection(rng, 3))
    write(outside / "deeper" / "secret.geojson", collection(rng, 3))
    dropped = Dropped()
    _drop_before_start(drop, outside, rng, dropped)

    daemon = start_daemon()
    memory = MemorySampler(daemon.proc.pid)
    try:
        daemon.wait_for_event("watching")
        _wait_for_the_watcher_after_the_backfill(daemon, len(dropped.bad))
        _drop_while_watching(drop, outside, staging, rng, dropped)
        daemon.wait_for(lambda: len(daemon.find("file_quarantined")) >= len(dropped.bad), 60)
        daemon.wait_for(lambda: len(output_features(folders.out)) >= len(dropped.features), 60)
        time.sleep(2.5)  # one reconciliation walk later, nothing may come out twice
        metrics = urllib.request.urlopen(daemon.metrics_url, timeout=5).read().decode()
        assert daemon.stop() == 0, daemon.tail()
    finally:
        memory.stop()

    # Every valid feature exactly once, nothing from outside the drop folder,
    # every bad file in quarantine under its rule.
    assert_exactly_once(folders.out, dropped.features)
    quarantine = folders.out / ".geoingest" / "quarantine"
    _assert_quarantined(quarantine, drop, dropped.bad)

    # Special files, folders named like files and symlinks are skipped and counted.
    skipped = _metric(metrics, "geoingest_skipped_files_total", reason="not-regular")
    assert skipped >= dropped.special_files + 2
    assert _metric(metrics, "geoingest_skipped_files_total", reason="symlink") >= dropped.symlinks

    # One line per event, whatever the names; nothing written for others to read.
    assert not daemon.find("unparsed")
    paths = [e["path"] for e in daemon.find("file_quarantined")]
    assert any("new\\nline\\x1b[2J.geojson" in path for path in paths)
    made_files = [*folders.out.glob("batch-*"), *quarantine.rglob("*.error.json")]
    for made in [*made_files, quarantine, folders.out / ".geoingest"]:
        assert made.stat().st_mode & 0o007 == 0, made

    # The daemon and its workers stayed small throughout.
    assert memory.samples > 20
    assert memory.peak < MEMORY_LIMIT, f"peak RSS of the process tree {memory.peak / MIB:.0f} MiB"
