"""Measure the ledger's size and the cost of restarts, after a clean run and after a crash.

    python bench/recovery.py CORPUS_DIR [--work-dir DIR] [--kill-after 0.6]

CORPUS_DIR is a corpus made by ``make_corpus.py`` (``bench/run.py`` keeps them
in ``<temp>/geoingest-bench``). Each phase ingests a hard-linked mirror of it
with ``geoingest once``:

1. keep: a full ingest with ``--on-success keep``; the ledger's size and rows.
2. restart: ``once`` again on the same, unchanged files, which must ingest
   nothing: how long recovery and the whole run take with a full ledger.
3. crash: a fresh ingest with ``--on-success move``, its process group
   SIGKILLed after ``--kill-after`` of phase 1's time, then ``once`` again:
   what recovery did and how long it took, and a check that every valid
   feature is in the output exactly once and no valid file is left behind.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson
from corpora import count_files, link_tree, warm_page_cache
from progress import note


@dataclass
class Run:
    """One ``geoingest once``: its exit, its wall time and its JSON log events."""

    code: int | None
    wall_s: float
    events: list[dict[str, object]] = field(default_factory=list)

    def event(self, name: str) -> dict[str, object]:
        """Return the first event of this name, or an empty one."""
        return next((e for e in self.events if e.get("event") == name), {})

    def seconds_to(self, name: str) -> float | None:
        """Return the seconds from the start to the first event of this name."""
        found = self.event(name)
        return float(str(found["t"])) if found else None


def once(drop: Path, out: Path, on_success: str, kill_after_s: float | None = None) -> Run:
    """Run ``geoingest once`` on ``drop``; SIGKILL its process group after ``kill_after_s``."""
    command = [sys.executable, "-m", "geoingest", "once", "--input", str(drop)]
    command += ["--output", str(out), "--on-success", str(on_success)]
    command += ["--done-dir", str(out.parent / "done"), "--log-format", "json"]
    command += ["--metrics-address", "127.0.0.1:0"]
    started = time.monotonic()
    log = out.parent / f"log-{time.monotonic_ns()}.jsonl"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code: int | None = proc.wait(kill_after_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
    run = Run(code, time.monotonic() - started)
    for line in log.read_bytes().splitlines():
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        # Log lines carry wall-clock timestamps; keep seconds since the start.
        event["t"] = _since(started, event)
        run.events.append(event)
    return run


def _since(started_monotonic: float, event: dict[str, object]) -> float:
    wall_started = time.time() - (time.monotonic() - started_monotonic)
    stamp = event.get("timestamp")
    if not isinstance(stamp, str):
        return 0.0
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() - wall_started


def ledger_figures(state: Path) -> tuple[int, int]:
    """Return the ledger's bytes on disk (with its WAL) and its file rows."""
    nbytes = sum(p.stat().st_size for p in state.glob("ledger.sqlite3*"))
    with sqlite3.connect(f"file:{state / 'ledger.sqlite3'}?mode=ro", uri=True) as db:
        (rows,) = db.execute("SELECT count(*) FROM files").fetchone()
    return nbytes, int(rows)


def output_features(out: Path) -> int:
    """Count the features in every batch file, reading each ``features`` array."""
    total = 0
    for batch in out.glob("batch-*"):
        total += len(orjson.loads(batch.read_bytes())["features"])
    return total


def fresh(path: Path) -> Path:
    """Empty the folder ``path`` and return it."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def main() -> int:
    """Run the three phases and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--kill-after", type=float, default=0.6)
    args = parser.parse_args()
    work = fresh(args.work_dir / "geoingest-recovery")
    files = count_files(args.corpus)
    warm_page_cache(args.corpus)

    note(f"keep: ingesting {files:,} files")
    drop, out = fresh(work / "drop"), work / "out"
    link_tree(args.corpus, drop)
    first = once(drop, out, "keep")
    nbytes, rows = ledger_figures(out / ".geoingest")
    expected, batches = output_features(out), len(list(out.glob("batch-*")))

    note("restart: the same files again")
    again = once(drop, out, "keep")
    new_batches = len(list(out.glob("batch-*"))) - batches

    note("crash: a move-mode ingest killed part way, then started again")
    shutil.rmtree(out)
    drop = fresh(work / "drop")
    link_tree(args.corpus, drop)
    killed = once(drop, out, "move", kill_after_s=first.wall_s * args.kill_after)
    recovered = once(drop, out, "move")
    report = recovered.event("recovered")

    print(f"\n{files:,} files in {args.corpus}\n")
    print("| phase | exit | wall s | ready after s | recovery s | what |")
    print("| --- | --: | --: | --: | --: | --- |")
    for name, run, what in [
        ("keep", first, f"ledger {nbytes / 1e6:.1f} MB, {rows:,} rows, {nbytes / rows:.0f} B/file"),
        ("restart", again, f"{new_batches} new batches"),
        ("crash", killed, "SIGKILL of the process group"),
        ("recover", recovered, f"recovered: {_brief(report)}"),
    ]:
        ready = run.seconds_to("watching")
        recovery = run.event("recovered").get("duration_s", "")
        ready_text = f"{ready:.2f}" if ready is not None else ""
        print(f"| {name} | {run.code} | {run.wall_s:.1f} | {ready_text} | {recovery} | {what} |")

    found = output_features(out)
    left = count_files(drop)
    print(
        f"\nafter the crash: {found:,} features in the output, {expected:,} after the clean "
        f"run; valid files left in the drop folder: {left}"
    )
    return 0 if found == expected and left == 0 else 1


def _brief(report: dict[str, object]) -> str:
    keys = ("batches_recorded", "manifests_dropped", "batches_disposed", "files_disposed")
    return ", ".join(f"{key}={report.get(key)}" for key in keys)


if __name__ == "__main__":
    sys.exit(main())
