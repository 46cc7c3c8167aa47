"""The service lifecycle: start, run, drain.

Start checks the folders, opens the metrics endpoint, starts the worker pool
and arms the watcher before the first walk. Shutdown runs in one visible
order: stop taking new files, let in-flight files finish within
``drain_timeout_s``, flush and commit the last batch (shielded from
cancellation), close. A second SIGTERM or SIGINT forces the exit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from geoingest import __version__, logs
from geoingest.commits import Committer
from geoingest.config import ConfigError, Settings
from geoingest.discovery import Candidate, Discovery
from geoingest.exitcodes import ExitCode
from geoingest.files import restrict_umask
from geoingest.geojson import ERROR_RULES
from geoingest.health import HealthServer, Heartbeat, Readiness, monitor_event_loop
from geoingest.ledger import Ledger
from geoingest.metrics import Metrics, process_registry
from geoingest.notify import Notifier, watchdog_loop
from geoingest.pipeline import Pipeline
from geoingest.recovery import recover
from geoingest.sinks.folder import FolderSink

log = structlog.get_logger("geoingest.service")


# What SIGHUP can change without a restart. The rest (folders, workers, queue,
# metrics address) is kept, and a reload that changes it says so in its log line.
RELOADABLE = (
    "inputs",
    "patterns",
    "excludes",
    "settle_s",
    "batch_max_features",
    "batch_max_bytes",
    "batch_max_age_s",
    "log_level",
    "log_format",
)


class StartupError(Exception):
    """The daemon cannot start; the message says why in one line."""


def prepare_folders(settings: Settings) -> None:
    """Create the output, state and quarantine folders and check that they are usable.

    Raises:
        StartupError: An input is missing, or a folder cannot be created or written.
    """
    for root in settings.inputs:
        if not root.path.is_dir():
            raise StartupError(f"input folder {root.path} does not exist or is not a folder")
    folders = [settings.output, settings.state_dir, settings.quarantine_dir]
    if settings.done_dir is not None:
        folders.append(settings.done_dir)
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"cannot create {folder}: {exc.strerror}") from exc
        problem = writable_problem(folder)
        if problem:
            raise StartupError(problem)


def writable_problem(folder: Path) -> str | None:
    """Return why ``folder`` cannot take new files, or ``None`` when it can."""
    probe = folder / f".geoingest-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"{folder} is not writable: {exc.strerror}"
    return None


class Service:
    """One run of the daemon, from start to a drained exit.

    Args:
        settings: The run's settings.
        once: Ingest what is in the inputs now, then exit, instead of watching.
        reload_settings: Reads the configuration again on SIGHUP; raises
            ``ConfigError`` when the new one is invalid.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        once: bool = False,
        reload_settings: Callable[[], Settings] | None = None,
    ) -> None:
        self.settings = settings
        self.once = once
        self._reload_settings = reload_settings
        self.readiness = Readiness()
        self.heartbeat = Heartbeat()
        self.notifier = Notifier.from_environment()
        self.metrics = Metrics(
            process_registry(), [root.name for root in settings.inputs], rules=tuple(ERROR_RULES)
        )
        self._stop = asyncio.Event()
        self._signals = 0

    async def run(self) -> ExitCode:
        """Run until a signal (or, with ``once``, until the inputs are ingested)."""
        prepare_folders(self.settings)
        ledger = Ledger(self.settings.state_dir)
        try:
            return await self._run_with(ledger)
        finally:
            ledger.close()

    async def _run_with(self, ledger: Ledger) -> ExitCode:
        server = self._start_health_server()
        sink = FolderSink(self.settings.output, self.settings.output_format)
        report = await asyncio.to_thread(recover, self.settings, sink, ledger)
        compacted = await asyncio.to_thread(ledger.compact, self.settings.ledger_retention_s)
        queue: asyncio.Queue[Candidate] = asyncio.Queue(self.settings.queue_size)
        self.metrics.queue_capacity.set(self.settings.queue_size)
        discovery = self._make_discovery(queue)
        committer = Committer(self.settings, sink, ledger, self.metrics, self._flush_trouble)
        pipeline = Pipeline(self.settings, queue, discovery, self.metrics, committer)
        self._install_signal_handlers(discovery, pipeline)
        started = time.monotonic()
        log.info(
            "started",
            version=__version__,
            inputs=[str(r.path) for r in self.settings.inputs],
            output=self.settings.output,
            once=self.once,
            ledger_entries_compacted=compacted,
            batches_recovered=report.batches_recorded + report.batches_disposed,
            metrics_address=f"{server.address[0]}:{server.address[1]}",
        )
        try:
            background = self._start_tasks(discovery, pipeline, queue)
            await self._wait_until_ready(discovery)
            await self._run_until_stopped(discovery, pipeline)
            return await self._drain(discovery, pipeline, background, started)
        finally:
            pipeline.close()
            server.stop()

    def _start_health_server(self) -> HealthServer:
        host, port = self.settings.metrics_address
        server = HealthServer(self.metrics.registry, self.readiness, self.heartbeat, host, port)
        try:
            server.start()
        except OSError as exc:
            raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        return server

    def _make_discovery(self, queue: asyncio.Queue[Candidate]) -> Discovery:
        s = self.settings
        return Discovery(
            s.inputs,
            queue,
            self.metrics,
            patterns=s.patterns,
            excludes=s.excludes,
            settle_s=s.settle_s,
            rescan_interval_s=s.rescan_interval_s,
            watch=not self.once,
            force_polling=s.force_polling,
        )

    def _start_tasks(
        self, discovery: Discovery, pipeline: Pipeline, queue: asyncio.Queue[Candidate]
    ) -> list[asyncio.Task[None]]:
        coroutines = [
            monitor_event_loop(self.metrics, self.heartbeat),
            self._refresh_gauges(pipeline, queue),
            watchdog_loop(self.notifier, self.heartbeat.is_fresh),
        ]
        if self.once and sys.stderr.isatty():
            coroutines.append(self._show_progress(pipeline))
        if pipeline.adaptive is not None:
            coroutines.append(pipeline.adaptive.run())
        background = [asyncio.create_task(c) for c in coroutines]
        # Intake tasks are kept apart: the drain stops them first.
        self._intake = [
            asyncio.create_task(discovery.run()),
            asyncio.create_task(pipeline.dispatch()),
            asyncio.create_task(pipeline.batcher.flush_when_old()),
        ]
        return background

    async def _wait_until_ready(self, discovery: Discovery) -> None:
        watching = asyncio.create_task(discovery.watching.wait())
        stopping = asyncio.create_task(self._stop.wait())
        await asyncio.wait([watching, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if watching.done():
            self.readiness.set_ready()
            self.metrics.ready.set(1)
            # Logged before READY=1 goes out, so the journal never shows it after systemd's start.
            log.info("watching", inputs=len(self.settings.inputs))
            self.notifier.ready()
        else:
            watching.cancel()

    async def _run_until_stopped(self, discovery: Discovery, pipeline: Pipeline) -> None:
        if not self.once:
            await self._stop.wait()
            return
        # With `once`, the end comes when discovery has walked everything and
        # nothing is left in the queue or in a worker: then the last batch is
        # committed, which lets discovery see that nothing is claimed.
        while not self._stop.is_set():
            if (
                discovery.backfill_done.is_set()
                and not pipeline.in_flight
                and pipeline.queue.empty()
            ):
                await pipeline.batcher.flush("shutdown")
                if discovery.idle():
                    return
            await asyncio.sleep(0.01)

    async def _drain(
        self,
        discovery: Discovery,
        pipeline: Pipeline,
        background: list[asyncio.Task[None]],
        started: float,
    ) -> ExitCode:
        self.readiness.set_not_ready("shutting down")
        self.notifier.stopping()
        log.info("draining", in_flight=len(pipeline.in_flight), queued=pipeline.queue.qsize())

        # Stop intake: no new files from the walks, the watcher or the queue.
        discovery.stop()
        for task in self._intake:
            task.cancel()
        await asyncio.gather(*self._intake, return_exceptions=True)

        # Let in-flight files finish, within the deadline.
        abandoned = 0
        if pipeline.in_flight:
            _, pending = await asyncio.wait(
                set(pipeline.in_flight), timeout=self.settings.drain_timeout_s
            )
            abandoned = len(pending)
            for task in pending:
                task.cancel()
        if abandoned:
            log.error(
                "drain_timeout", abandoned_files=abandoned, timeout_s=self.settings.drain_timeout_s
            )

        # Flush and commit the last batch; a cancellation must not cut it short.
        await asyncio.shield(pipeline.batcher.flush("shutdown"))

        # Close.
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        totals = pipeline.totals
        log.info(
            "stopped",
            duration_s=round(time.monotonic() - started, 3),
            ingested=totals["ingested"],
            quarantined=totals["quarantined"],
            vanished=totals["vanished"],
            errors=totals["error"],
            features=totals["features"],
            batches=totals["batches"],
            abandoned=abandoned,
        )
        if abandoned or totals["error"]:
            return ExitCode.PROBLEMS
        return ExitCode.OK

    def _install_signal_handlers(self, discovery: Discovery, pipeline: Pipeline) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        loop.add_signal_handler(signal.SIGHUP, self._reload, discovery, pipeline)

    def _reload(self, discovery: Discovery, pipeline: Pipeline) -> None:
        """Apply a new configuration where that needs no restart; keep the old one if invalid."""
        self.notifier.reloading()
        try:
            new = self._reload_settings() if self._reload_settings else self.settings
        except ConfigError as exc:
            log.error("reload_rejected", key=exc.key, reason=exc.message)
            self.notifier.ready()
            return
        changed = {key for key in RELOADABLE if getattr(new, key) != getattr(self.settings, key)}
        needs_restart = sorted(
            f.name
            for f in dataclasses.fields(new)
            if f.name not in RELOADABLE and getattr(new, f.name) != getattr(self.settings, f.name)
        )
        self.settings = dataclasses.replace(
            self.settings, **{key: getattr(new, key) for key in RELOADABLE}
        )
        pipeline.apply(self.settings)
        discovery.update_roots(self.settings.inputs, self.settings.patterns, self.settings.excludes)
        logs.configure(self.settings.log_level, self.settings.log_format)
        log.info("reloaded", changed=sorted(changed), needs_restart=needs_restart)
        self.notifier.ready()

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("signal_received", signal=signal.Signals(signum).name, action="drain")
            self._stop.set()
            return
        log.error(
            "forced_exit",
            signal=signal.Signals(signum).name,
            reason="second signal during drain; files in flight stay in the input "
            "folders and are ingested on the next start",
        )
        os._exit(ExitCode.FORCED)

    def _flush_trouble(self, reason: str | None) -> None:
        if reason is None:
            self.readiness.set_ready()
            self.metrics.ready.set(1)
        else:
            self.readiness.set_not_ready(reason)
            self.metrics.ready.set(0)

    async def _refresh_gauges(self, pipeline: Pipeline, queue: asyncio.Queue[Candidate]) -> None:
        while True:
            self.metrics.queue_length.set(queue.qsize())
            self.metrics.files_in_progress.set(len(pipeline.in_flight))
            self.notifier.status(
                f"ingested {pipeline.totals['ingested']} files, "
                f"quarantined {pipeline.totals['quarantined']}, queued {queue.qsize()}"
            )
            await asyncio.sleep(0.5)

    async def _show_progress(self, pipeline: Pipeline) -> None:
        started = time.monotonic()
        try:
            while True:
                await asyncio.sleep(0.5)
                self._print_progress(pipeline, started, end="")
        except asyncio.CancelledError:
            self._print_progress(pipeline, started, end="\n")
            raise

    @staticmethod
    def _print_progress(pipeline: Pipeline, started: float, end: str) -> None:
        totals = pipeline.totals
        done = sum(totals[k] for k in ("ingested", "quarantined", "duplicate", "vanished", "error"))
        done += pipeline.batcher.pending_files
        rate = done / max(time.monotonic() - started, 1e-9)
        sys.stderr.write(
            f"\r{done} files ({totals['quarantined']} quarantined), "
            f"{totals['features']} features committed, {rate:.0f} files/s   {end}"
        )
        sys.stderr.flush()


MAIN_SWITCH_INTERVAL_S = 0.001


def serve(
    settings: Settings,
    *,
    once: bool = False,
    reload_settings: Callable[[], Settings] | None = None,
) -> ExitCode:
    """Run the daemon in a fresh event loop and return its exit code."""
    restrict_umask()
    # The metrics server's thread must answer within milliseconds while the
    # event loop is busy; a shorter GIL switch interval than Python's 5 ms
    # hands it the interpreter sooner at each of a scrape's steps.
    sys.setswitchinterval(MAIN_SWITCH_INTERVAL_S)
    service = Service(settings, once=once, reload_settings=reload_settings)
    try:
        return asyncio.run(service.run())
    except StartupError as exc:
        log.error("startup_failed", reason=str(exc))
        return ExitCode.STARTUP
