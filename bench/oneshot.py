"""One-shot ingest of the whole corpus by each tool, timed and measured the same way.

Every tool gets a fresh output folder and a page cache warmed by one untimed
read of the corpus, so the order of the runs does not favour any of them.
After each run the disks are synced (untimed), so the writes one tool left in
the page cache are not flushed while the next one is timed.
"""

from __future__ import annotations

import compileall
import contextlib
import gc
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson
from corpora import Corpus, link_tree, warm_page_cache
from proctree import TreeUsage
from progress import note

QUARANTINE = Path(".geoingest") / "quarantine"
REASON_SUFFIX = ".error.json"


@dataclass(frozen=True, slots=True)
class Tool:
    """An ingest program under test.

    Attributes:
        name: How the tables name it.
        command: The command without its input and output folders.
        folders_as_options: Pass the folders as ``--input``/``--output`` rather than positionally.
        needs: Modules the program imports, checked before it runs.
    """

    name: str
    command: list[str]
    folders_as_options: bool = False
    needs: tuple[str, ...] = ()

    def argv(self, source: Path, output: Path) -> list[str]:
        """Return the full command line for one run."""
        if self.folders_as_options:
            return [*self.command, "--input", str(source), "--output", str(output)]
        return [*self.command, str(source), str(output)]

    def missing_modules(self) -> list[str]:
        """Return the modules the program needs that this interpreter cannot import."""
        return [name for name in self.needs if importlib.util.find_spec(name) is None]


@dataclass(slots=True)
class ToolRun:
    """What one run of one tool measured."""

    name: str
    command: list[str] = field(default_factory=list)
    exit_code: int | None = None
    wall_s: float = 0.0
    peak_rss_bytes: int = 0
    peak_pss_bytes: int = 0
    peak_processes: int = 0
    cpu_s: float = 0.0
    memory_samples: int = 0
    batches: int = 0
    features_out: int = 0
    quarantined: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the tool ran to completion and exited 0."""
        return self.error is None and self.exit_code == 0

    def as_dict(self) -> dict[str, object]:
        """Return the run's figures."""
        return asdict(self)


def byte_compile_geoingest() -> None:
    """Byte-compile the geoingest package this interpreter imports, as ``pip install`` does.

    An editable checkout run with ``PYTHONDONTWRITEBYTECODE`` set compiles
    every module of geoingest from source at each start, in the main process
    and again in the worker processes' server: a tenth of a second or more
    that an installed daemon does not pay.
    """
    spec = importlib.util.find_spec("geoingest")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            compileall.compile_dir(folder, quiet=1)


def geoingest_tool(launcher: list[str], workers: int | None) -> Tool:
    """Return geoingest's one-shot mode, started by ``launcher`` (its command before ``once``)."""
    command = [*launcher, "once", "--precision", "6"]
    command += ["--metrics-address", "127.0.0.1:0", "--log-format", "json"]
    if workers is not None:
        command += ["--workers", str(workers)]
    return Tool("geoingest", command, folders_as_options=True)


def baseline_tools(baselines: Path) -> list[Tool]:
    """Return the two reference scripts."""
    seed = Tool(
        "seed_async", [sys.executable, str(baselines / "seed_async.py")], needs=("aiofiles",)
    )
    sync = Tool("sync_naive", [sys.executable, str(baselines / "sync_naive.py")])
    return [seed, sync]


def measure(tool: Tool, corpus: Corpus, folder: Path, timeout_s: float) -> ToolRun:
    """Run ``tool`` over a mirror of the corpus into a fresh folder and return what it measured."""
    result = ToolRun(tool.name)
    missing = tool.missing_modules()
    if missing:
        result.error = f"skipped: cannot import {', '.join(missing)}"
        return result
    source, output = _fresh_folder(folder / "input"), _fresh_folder(folder / "output")
    try:
        _measure(tool, result, corpus, source, output, timeout_s)
    finally:
        # Give the disk space back, whatever happened.
        for path in (source, output):
            shutil.rmtree(path, ignore_errors=True)
    return result


def _measure(
    tool: Tool, result: ToolRun, corpus: Corpus, source: Path, output: Path, timeout_s: float
) -> None:
    link_tree(corpus.path, source)
    result.command = tool.argv(source, output)

    # Same start for every tool: warm cache, nothing left to flush.
    note(f"{tool.name}: warming the page cache")
    warm_page_cache(source)
    note(f"{tool.name}: running")
    _run(result, source.parent, timeout_s)
    os.sync()

    # Count what came out.
    note(f"{tool.name}: {result.wall_s:.1f} s, exit {result.exit_code}; counting its output")
    result.batches, result.features_out = count_output(output)
    if tool.folders_as_options:
        result.quarantined = count_quarantined(output / QUARANTINE)


def _fresh_folder(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _run(result: ToolRun, folder: Path, timeout_s: float) -> None:
    """Run the command with its output in log files, sampling its memory while it runs."""
    stdout_log, stderr_log = folder / "stdout.log", folder / "stderr.log"
    with stdout_log.open("wb") as out, stderr_log.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(result.command, stdout=out, stderr=err, start_new_session=True)
        sampler = TreeUsage(process.pid)
        sampler.start()
        try:
            result.exit_code = wait_or_kill(process, timeout_s)
        except BaseException:
            # Interrupted: the tool runs in a session of its own, so take it down too.
            kill_session(process)
            raise
        finally:
            sampler.stop()
        result.wall_s = time.perf_counter() - started
    result.peak_rss_bytes = sampler.peak_rss_bytes
    result.peak_pss_bytes = sampler.peak_pss_bytes
    result.cpu_s = sampler.cpu_s
    result.peak_processes = sampler.peak_processes
    result.memory_samples = sampler.samples
    if result.exit_code is None:
        result.error = f"killed after {timeout_s:g} s without finishing"
    elif result.exit_code != 0:
        result.error = f"exit {result.exit_code}: {tail(stderr_log)}"
    if sampler.error is not None:
        result.error = f"memory sampling failed: {sampler.error!r}"


def wait_or_kill(process: subprocess.Popen[bytes], timeout_s: float) -> int | None:
    """Wait for ``process``; past the timeout kill its whole session and return None."""
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_session(process)
        return None


def kill_session(process: subprocess.Popen[bytes]) -> None:
    """Kill the session a process was started in (it and everything it started), then reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def tail(path: Path, nbytes: int = 1500) -> str:
    """Return the end of a log file as one line of text, for an error message."""
    try:
        data = path.read_bytes()[-nbytes:]
    except OSError:
        return ""
    return " | ".join(data.decode("utf-8", "replace").strip().splitlines()[-8:])


def count_output(folder: Path) -> tuple[int, int]:
    """Return the number of batch files in ``folder`` and the features they hold.

    A batch is any visible file whose name starts with ``batch``. Its features
    are counted after parsing it; a FeatureCollection found where a feature
    should be (the seed script nests them) counts as the features inside it.
    """
    batches = features = 0
    with gc_paused():
        for entry in os.scandir(folder):
            if entry.name.startswith("batch") and entry.is_file():
                batches += 1
                features += count_features(orjson.loads(Path(entry.path).read_bytes()))
    return batches, features


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector, which slows parsing of large documents severalfold.

    Parsed batches hold no reference cycles, so reference counting frees them anyway.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def count_features(document: object) -> int:
    """Return the features in a parsed FeatureCollection, looking one level into nested ones.

    >>> count_features({"type": "FeatureCollection", "features": [{}, {}]})
    2
    """
    if not isinstance(document, dict):
        return 0
    total = 0
    for item in document.get("features") or ():
        nested = isinstance(item, dict) and item.get("type") == "FeatureCollection"
        total += len(item.get("features") or ()) if nested else 1
    return total


def count_quarantined(folder: Path) -> int:
    """Return how many files were quarantined, not counting the reason beside each."""
    if not folder.is_dir():
        return 0
    return sum(
        1 for path in folder.rglob("*") if path.is_file() and not path.name.endswith(REASON_SUFFIX)
    )
