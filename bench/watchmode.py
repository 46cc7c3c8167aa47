"""Watch mode under a steady stream of files: latency, exactly-once, clean shutdown.

The daemon starts on an empty drop folder. Once it is ready, files are dropped
at a fixed rate; afterwards the run waits until the daemon has logged batches
holding every dropped feature (or a grace period ends), sends SIGTERM, and
checks the exit code. Only then are the batches read and matched against the
files, so that parsing output does not compete with the daemon while it works.

The acceptance bar is a p99 latency under ``settle_s + batch_max_age_s + 1``
seconds with every feature delivered exactly once and a clean exit.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dropper import Drops, drop_files
from latency import LatencySummary, read_deliveries, summarise
from proctree import TreeUsage, kill_quietly, session_members
from progress import note
from supervise import BatchWatcher, Daemon, DaemonError, FdScraper

RATE_SHORTFALL = 0.95


@dataclass(frozen=True)
class WatchSettings:
    """How the watch-mode measurement runs."""

    launcher: list[str]
    rate: float
    seconds: float
    settle_s: float
    batch_max_age_s: float
    max_concurrency: int
    workers: int | None
    grace_s: float
    start_timeout_s: float = 60.0
    stop_timeout_s: float = 60.0

    @property
    def latency_bar_s(self) -> float:
        """The p99 latency the daemon must stay under."""
        return self.settle_s + self.batch_max_age_s + 1.0


@dataclass(slots=True)
class WatchResult:
    """What the watch-mode measurement found."""

    settings: WatchSettings
    ready: bool = False
    achieved_rate: float = 0.0
    max_behind_schedule_s: float = 0.0
    daemon_cores: float = 0.0
    bench_cores: float = 0.0
    drain_wait_s: float = 0.0
    latency: LatencySummary | None = None
    batches_logged: int = 0
    exit_code: int | None = None
    leftover_processes: list[int] = field(default_factory=list)
    peak_rss_bytes: int = 0
    peak_pss_bytes: int = 0
    open_fds_first: float | None = None
    open_fds_peak: float | None = None
    warnings_logged: int = 0
    errors_logged: int = 0
    error: str | None = None

    @property
    def rate_reached(self) -> bool:
        """Whether the producer kept close enough to the asked rate for the test to count."""
        return self.achieved_rate >= RATE_SHORTFALL * self.settings.rate

    def shortfalls(self) -> list[str]:
        """Return each way the run misses the acceptance bar; empty when it passes."""
        latency, bar = self.latency, self.settings.latency_bar_s
        reasons = [f"error: {self.error}"] if self.error else []
        if latency is None or latency.p99_s is None:
            return [*reasons, "no latency was measured"]
        if latency.p99_s >= bar:
            reasons.append(f"p99 {latency.p99_s:.3f} s is not under {bar:g} s")
        if not latency.exactly_once:
            reasons.append("not every feature came out exactly once")
        if self.exit_code != 0:
            reasons.append(f"exit code {self.exit_code} after SIGTERM")
        if self.leftover_processes:
            reasons.append(f"{len(self.leftover_processes)} processes outlived the daemon")
        if not self.rate_reached:
            reasons.append(f"the producer reached only {self.achieved_rate:.0f} files/s")
        return reasons

    @property
    def passed(self) -> bool:
        """Whether the run meets the acceptance bar."""
        return not self.shortfalls()

    def as_dict(self) -> dict[str, object]:
        """Return every figure, the settings and the verdicts."""
        figures = asdict(self)
        figures["latency"] = self.latency.as_dict() if self.latency else None
        figures["latency_bar_s"] = self.settings.latency_bar_s
        verdicts = {"rate_reached": self.rate_reached, "shortfalls": self.shortfalls()}
        return {**figures, **verdicts, "passed": self.passed}


def daemon_command(settings: WatchSettings, drop: Path, output: Path) -> list[str]:
    """Return the ``geoingest run`` command line for the measurement."""
    command = [*settings.launcher, "run", "--input", str(drop)]
    command += ["--output", str(output), "--precision", "6", "--log-format", "json"]
    command += ["--metrics-address", "127.0.0.1:0", "--settle-s", str(settings.settle_s)]
    command += ["--batch-max-age-s", str(settings.batch_max_age_s)]
    command += ["--max-concurrency", str(settings.max_concurrency)]
    if settings.workers is not None:
        command += ["--workers", str(settings.workers)]
    return command


def measure_watch(settings: WatchSettings, folder: Path) -> WatchResult:
    """Run the whole watch-mode measurement in ``folder`` and return what it found."""
    result = WatchResult(settings)
    drop, output = folder / "drop", folder / "output"
    for path in (drop, output):
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
    daemon = Daemon(daemon_command(settings, drop, output), folder)
    try:
        _measure(daemon, result, drop, output)
    except DaemonError as exc:
        result.error = str(exc)
    finally:
        if daemon.process is not None and not daemon.stopped:
            result.exit_code = daemon.terminate(settings.stop_timeout_s)
            result.leftover_processes = _reap_leftovers(daemon.pid)
    return result


def _measure(daemon: Daemon, result: WatchResult, drop: Path, output: Path) -> None:
    settings = result.settings

    # Start the daemon and wait until it says it can take files.
    note(f"watch: starting geoingest run ({daemon.stdout_log.parent})")
    address = daemon.start(settings.start_timeout_s)
    result.ready = daemon.wait_ready(address, settings.start_timeout_s)

    # Sample the process tree, open files and commits while the files arrive.
    usage, fds, batches = TreeUsage(daemon.pid), FdScraper(address), BatchWatcher(output)
    fds.tick()
    for sampler in (usage, fds, batches):
        sampler.start()
    drops = _produce(result, drop, usage)
    result.drain_wait_s = _await_delivery(daemon, drops, settings.grace_s)

    # Stop the daemon the way a service manager would, then stop sampling.
    note("watch: sending SIGTERM")
    result.exit_code = daemon.terminate(settings.stop_timeout_s)
    result.leftover_processes = _reap_leftovers(daemon.pid)
    for sampler in (usage, fds, batches):
        sampler.stop()
    batches.tick()
    _take_samples(result, daemon, usage, fds)

    # Match the committed batches against the dropped files.
    note("watch: reading the committed batches")
    result.latency = summarise(drops, read_deliveries(output, batches.seen_at))


def _produce(result: WatchResult, drop: Path, usage: TreeUsage) -> Drops:
    """Drop the files, noting the rate reached and the CPU both sides used meanwhile."""
    settings = result.settings
    note(f"watch: dropping {settings.rate:g} files/s for {settings.seconds:g} s")
    started, daemon_cpu_s, own_cpu_s = time.monotonic(), usage.cpu_s, time.process_time()
    drops = drop_files(drop, settings.rate, settings.seconds)
    elapsed = time.monotonic() - started
    result.daemon_cores = (usage.cpu_s - daemon_cpu_s) / elapsed
    result.bench_cores = (time.process_time() - own_cpu_s) / elapsed
    result.achieved_rate, result.max_behind_schedule_s = drops.achieved_rate, drops.max_behind_s
    return drops


def _await_delivery(daemon: Daemon, drops: Drops, grace_s: float) -> float:
    """Wait until the daemon logs every dropped feature as committed; return the wait."""
    started, reader = time.monotonic(), daemon.reader
    if reader is None:
        raise DaemonError("the daemon was not started")
    while reader.features_committed < drops.features:
        if not daemon.is_running():
            raise DaemonError(f"the daemon exited while files were arriving: {daemon.error_tail()}")
        if time.monotonic() - started > grace_s:
            note(f"watch: {reader.features_committed} of {drops.features} features after grace")
            break
        time.sleep(0.05)
    return time.monotonic() - started


def _reap_leftovers(session: int) -> list[int]:
    """Return processes of the daemon's session that outlived it, after killing them."""
    leftovers = session_members(session)
    for pid in leftovers:
        kill_quietly(pid)
    return leftovers


def _take_samples(result: WatchResult, daemon: Daemon, usage: TreeUsage, fds: FdScraper) -> None:
    result.peak_rss_bytes = usage.peak_rss_bytes
    result.peak_pss_bytes = usage.peak_pss_bytes
    result.open_fds_first, result.open_fds_peak = fds.first, fds.peak
    if daemon.reader is not None:
        result.batches_logged = daemon.reader.batches
        result.warnings_logged = daemon.reader.levels["warning"]
        result.errors_logged = daemon.reader.levels["error"] + daemon.reader.levels["critical"]
    for sampler in (usage, fds):
        if sampler.error is not None:
            result.error = f"{sampler.name} failed: {sampler.error!r}"
