"""Committing a batch: manifest, rename, ledger, disposal, in that order.

1. The batch's manifest (the source files and their content hashes) goes into
   the ledger as ``in_batch`` rows, in one synced transaction.
2. The sink writes the batch under a temporary name, syncs it and renames it
   into place. The rename is the commit point.
3. The ledger marks the batch ``committed``.
4. Each source is disposed of (kept, moved or deleted), then the ledger marks
   the batch ``disposed``.

A crash between any two steps is repaired at the next start by
:mod:`geoingest.recovery`: before the rename the manifest is dropped and the
sources, still in place, are ingested again; after it the sources are
disposed of, never ingested again.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from geoingest import crashpoints
from geoingest.disposal import dispose, sync_folders
from geoingest.ledger import FileKey, Ledger

if TYPE_CHECKING:
    from pathlib import Path

    from geoingest.batching import Batch
    from geoingest.config import Settings
    from geoingest.discovery import Candidate
    from geoingest.metrics import Metrics
    from geoingest.sinks import Sink

log = structlog.get_logger("geoingest.commits")

_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


def file_key(candidate: Candidate, sha256: str) -> FileKey:
    """The ledger's key for one source file."""
    return FileKey(
        sha256, candidate.root.name, candidate.rel_text, candidate.size, candidate.mtime_ns
    )


class Committer:
    """Makes batches durable and disposes of their sources.

    Args:
        settings: The run's settings (``on_success``, ``done_dir``).
        sink: Where batches go.
        ledger: Where manifests and states go.
        metrics: Where counts and timings go.
        on_trouble: Called with a reason while commits fail, and with ``None``
            once a commit succeeds again.
    """

    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        ledger: Ledger,
        metrics: Metrics,
        on_trouble: Callable[[str | None], None],
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.ledger = ledger
        self.metrics = metrics
        self._on_trouble = on_trouble

    async def commit(self, batch: Batch, trigger: str) -> str:
        """Make a batch durable, retrying with backoff until it is; return its manifest name."""
        files = [file_key(candidate, result.sha256) for candidate, result in batch.files]
        started = time.perf_counter()
        attempt = 0
        while True:
            try:
                manifest, name, nbytes = await asyncio.to_thread(self._commit_once, batch, files)
            except (OSError, sqlite3.Error) as exc:
                attempt += 1
                self._report_failure(exc, attempt, batch)
                await asyncio.sleep(_BACKOFF_S[min(attempt, len(_BACKOFF_S)) - 1])
                continue
            if attempt:
                self._on_trouble(None)
            self._count(batch, trigger, nbytes, time.perf_counter() - started)
            log.info(
                "batch_written",
                name=name,
                features=batch.features,
                files=len(batch.files),
                bytes=nbytes,
                trigger=trigger,
                duration_s=round(time.perf_counter() - started, 4),
            )
            return manifest

    async def dispose(self, batch: Batch, manifest: str) -> set[Candidate]:
        """Dispose of every source of a committed batch; return those that failed."""
        return await asyncio.to_thread(self._dispose_all, batch, manifest)

    def _commit_once(self, batch: Batch, files: list[FileKey]) -> tuple[str, str | None, int]:
        """One attempt at steps 1 to 3 (runs in a thread); the manifest, file name and size."""
        if batch.features == 0:
            # No output file: the sources are committed by the manifest alone.
            manifest = f"empty-{time.time_ns()}"
            self.ledger.begin_batch(manifest, files)
            self.ledger.mark_batch(manifest, "committed")
            return manifest, None, 0
        name = self.sink.reserve_name()
        self.ledger.begin_batch(name, files)
        try:
            commit = self.sink.commit(batch, name)
        except BaseException:
            self._forget_quietly(name)
            raise
        crashpoints.reached("after-rename")
        self.ledger.mark_batch(name, "committed")
        return name, commit.name, commit.nbytes

    def _forget_quietly(self, name: str) -> None:
        # A manifest left behind is harmless (recovery drops it, since its batch
        # never appeared); a failure to drop it must not hide the first error.
        try:
            self.ledger.forget_batch(name)
        except sqlite3.Error as exc:
            log.warning("manifest_not_dropped", batch=name, error=str(exc))

    def _dispose_all(self, batch: Batch, manifest: str) -> set[Candidate]:
        on_success, done_dir = self.settings.on_success, self.settings.done_dir
        failed: set[Candidate] = set()
        changed: set[Path] = set()
        for index, (candidate, _) in enumerate(batch.files):
            try:
                dispose(candidate, on_success, done_dir, changed)
            except OSError as exc:
                log.error("dispose_failed", path=candidate.path, error=exc.strerror)
                failed.add(candidate)
            if index == 0:
                crashpoints.reached("disposal")
        try:
            sync_folders(changed)
        except OSError as exc:
            # The batch stays "committed": recovery disposes of it again.
            log.error("dispose_failed", folders=len(changed), error=exc.strerror)
            return failed
        self._mark_disposed(batch, manifest)
        return failed

    def _mark_disposed(self, batch: Batch, manifest: str) -> None:
        try:
            self.ledger.mark_batch(manifest, "disposed")
        except sqlite3.Error as exc:
            # The batch stays "committed": recovery disposes of it again, which
            # finds the sources already gone or kept.
            log.warning(
                "ledger_update_failed", batch=manifest, error=str(exc), files=len(batch.files)
            )

    def _report_failure(self, exc: OSError | sqlite3.Error, attempt: int, batch: Batch) -> None:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        self.metrics.batch_flush_failures.inc()
        self._on_trouble(f"cannot commit a batch: {reason}")
        log.error(
            "batch_write_failed",
            error=reason,
            attempt=attempt,
            features=batch.features,
            retry_in_s=_BACKOFF_S[min(attempt, len(_BACKOFF_S)) - 1],
        )

    def _count(self, batch: Batch, trigger: str, nbytes: int, duration_s: float) -> None:
        now = time.time()
        if batch.features:
            # A batch of files without features writes no file: it is no flush.
            self.metrics.batches_flushed.labels(trigger=trigger).inc()
            self.metrics.batch_flush_duration_seconds.observe(duration_s)
            self.metrics.last_flush_timestamp_seconds.set(now)
            self.metrics.features_written.inc(batch.features)
            self.metrics.output_bytes.inc(nbytes)
        for candidate, _ in batch.files:
            self.metrics.ingest_lag_seconds.observe(max(0.0, now - candidate.mtime_ns / 1e9))
