"""Measure ``--max-concurrency auto`` against fixed limits on the same corpus.

    python bench/concurrency.py CORPUS_DIR [--limits 4,8,16,32,64,128,256] [--repeat 3] [--cold]

CORPUS_DIR is a corpus made by ``make_corpus.py`` (``bench/run.py`` keeps them
in ``<temp>/geoingest-bench``). Each setting runs ``geoingest once`` over a
hard-linked mirror of it, ``--repeat`` times, the settings taking turns so
that a slow spell of the machine does not fall on one of them alone. The page
cache is warmed before each run, or dropped with ``--cold`` (root only), so
that reads come from the disk.

While ``auto`` runs, its ``geoingest_concurrency_limit`` is scraped from
``/metrics`` every 0.2 s. The report gives files/s for each setting (the
median of its runs), its ratio to the best fixed limit, and where the
adaptive limit settled: the median, minimum and maximum over the second half
of each run, once the controller has had time to find its level.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from corpora import count_files, link_tree, warm_page_cache
from oneshot import byte_compile_geoingest
from progress import note

_LIMIT = re.compile(rb"^geoingest_concurrency_limit ([0-9.e+]+)$", re.MULTILINE)
_DROP_CACHES = Path("/proc/sys/vm/drop_caches")


@dataclass
class Run:
    """One ``geoingest once`` with one setting."""

    setting: str
    wall_s: float
    code: int
    limits: list[tuple[float, float]] = field(default_factory=list)

    def settled(self) -> list[float]:
        """The limits scraped in the second half of the run."""
        return [limit for at, limit in self.limits if at >= self.wall_s / 2]


def free_port() -> int:
    """A TCP port on the loopback nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Scraper(threading.Thread):
    """Reads the concurrency limit from ``/metrics`` until stopped."""

    def __init__(self, port: int, started: float) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.started = started
        self.limits: list[tuple[float, float]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.2):
            try:
                text = urllib.request.urlopen(self.url, timeout=1).read()
            except OSError:
                continue  # not listening yet, or already gone
            if match := _LIMIT.search(text):
                self.limits.append((time.monotonic() - self.started, float(match[1])))


def run_once(corpus: Path, work: Path, setting: str, cold: bool) -> Run:
    """Ingest a fresh mirror of the corpus with one ``--max-concurrency`` setting."""
    source, output = work / "in", work / "out"
    for folder in (source, output):
        shutil.rmtree(folder, ignore_errors=True)
    link_tree(corpus, source)
    if cold:
        subprocess.run(["sync"], check=True)
        _DROP_CACHES.write_text("3\n")
    else:
        warm_page_cache(source)
    port = free_port()
    command = [sys.executable, "-m", "geoingest", "once", "--input", str(source)]
    command += ["--output", str(output), "--precision", "6", "--log-format", "json"]
    command += ["--max-concurrency", setting, "--metrics-address", f"127.0.0.1:{port}"]
    started = time.monotonic()
    scraper = Scraper(port, started)
    scraper.start()
    with (work / "log").open("wb") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    wall_s = time.monotonic() - started
    scraper.stopped.set()
    scraper.join()
    return Run(setting, wall_s, code.returncode, scraper.limits)


def report(runs: list[Run], files: int, corpus: Path, cold: bool) -> str:
    """The Markdown table of files/s per setting, and where ``auto`` settled."""
    settings = list(dict.fromkeys(run.setting for run in runs))
    speed = {
        s: statistics.median(files / r.wall_s for r in runs if r.setting == s) for s in settings
    }
    fixed = [s for s in settings if s != "auto"]
    best = max(fixed, key=speed.__getitem__) if fixed else None
    cache = "cold (dropped before each run)" if cold else "warm"
    lines = [
        f"## --max-concurrency: {files:,} files from {corpus.name}, page cache {cache}",
        "",
        "| max_concurrency | files/s | vs best fixed | limit, second half: median (min-max) |",
        "| --- | --: | --: | --- |",
    ]
    for s in settings:
        ratio = f"{speed[s] / speed[best]:.2f}x" if best else "-"
        settled = [limit for r in runs if r.setting == s for limit in r.settled()]
        where = "fixed"
        if s == "auto":
            where = (
                f"{statistics.median(settled):.0f} ({min(settled):.0f}-{max(settled):.0f})"
                if settled
                else "not scraped"
            )
        lines.append(f"| {s} | {speed[s]:,.0f} | {ratio} | {where} |")
    lines += ["", f"Best fixed limit: {best}. Runs per setting: {len(runs) // len(settings)}."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--limits", default="4,8,16,32,64,128,256")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="drop the page cache before each run")
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args()
    settings = [*args.limits.split(","), "auto"]
    byte_compile_geoingest()
    files = count_files(args.corpus)
    work = Path(tempfile.mkdtemp(prefix="geoingest-concurrency-", dir=args.work_dir))
    runs: list[Run] = []
    try:
        for round_ in range(args.repeat):
            for setting in settings if round_ % 2 == 0 else reversed(settings):
                run = run_once(args.corpus, work, setting, args.cold)
                note(f"max_concurrency {setting}: {files / run.wall_s:,.0f} files/s")
                if run.code != 0:
                    print(f"geoingest exited with {run.code}; see {work / 'log'}", file=sys.stderr)
                    return 1
                runs.append(run)
    finally:
        if all(run.code == 0 for run in runs):
            shutil.rmtree(work, ignore_errors=True)
    print(report(runs, files, args.corpus, args.cold))
    return 0


if __name__ == "__main__":
    sys.exit(main())
