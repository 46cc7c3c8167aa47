"""The pipeline: settled files in, committed batches and quarantined files out.

The dispatcher takes settled files from the bounded queue, at most
``max_concurrency`` at a time (an ``asyncio.Semaphore``), and hands each to
the worker pool. What comes back decides the file's fate: its features join
the batch, it goes to quarantine, or it goes back to discovery to be looked at
again. Sources are disposed of only once the batch holding their features is
committed.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
import time
from collections import Counter
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from geoingest import spool, workers
from geoingest.batching import Batch, Batcher, FlushPolicy
from geoingest.commits import Committer, file_key
from geoingest.concurrency import AUTO_START, AdaptiveLimit, Limiter, fd_ceiling
from geoingest.disposal import dispose
from geoingest.ledger import FileKey, FileState
from geoingest.metrics import Children
from geoingest.pool import Pool
from geoingest.quarantine import Reason, quarantine

if TYPE_CHECKING:
    from geoingest.config import Settings
    from geoingest.discovery import Candidate, Discovery
    from geoingest.metrics import Metrics

log = structlog.get_logger("geoingest.pipeline")

WORKER_CRASH_ATTEMPTS = 3
CHUNK_MAX_FILES = 64
CHUNK_MAX_BYTES = 4 * 1024 * 1024


def _make_limiter(max_concurrency: int | str) -> tuple[Limiter, AdaptiveLimit | None]:
    """A fixed limit on files in flight, or an adaptive one for ``auto``."""
    if max_concurrency == "auto":
        limiter = Limiter(AUTO_START)
        return limiter, AdaptiveLimit(limiter, ceiling=fd_ceiling())
    return Limiter(int(max_concurrency)), None


class Pipeline:
    """Moves files from the queue through the workers into batches.

    Args:
        settings: The run's settings.
        queue: Settled files, filled by discovery.
        discovery: Told when the pipeline is done with each file.
        metrics: Where counts and timings go.
        committer: Commits batches and disposes of their sources.
    """

    def __init__(
        self,
        settings: Settings,
        queue: asyncio.Queue[Candidate],
        discovery: Discovery,
        metrics: Metrics,
        committer: Committer,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.discovery = discovery
        self.metrics = metrics
        self.committer = committer
        self.ledger = committer.ledger
        self._pending_hashes: set[str] = set()
        self._commits = 0  # batches committed, so that a chunk sees its look-up go stale
        self._keeps_sources = settings.on_success == "keep"
        # Files committed before this run, which a walk may meet in place.
        self._committed_before = self.ledger.holds_committed_files()
        self.totals: Counter[str] = Counter()
        self._processed = Children(metrics.files_processed)
        self.in_flight: set[asyncio.Task[None]] = set()
        self.limiter, self.adaptive = _make_limiter(settings.max_concurrency)
        self._pool = Pool(settings.workers)
        self._spool_dir = settings.state_dir / "spool"
        spool.clear(self._spool_dir)
        self._spool_names = itertools.count(1)
        self._isolation_pool: Pool | None = None
        self._isolation_lock = asyncio.Lock()
        policy = FlushPolicy(
            settings.batch_max_features, settings.batch_max_bytes, settings.batch_max_age_s
        )
        self.batcher = Batcher(policy, self._commit)
        metrics.concurrency_limit.set_function(lambda: self.limiter.limit)

    @property
    def busy(self) -> bool:
        """Whether files are queued, in a worker, or waiting in an uncommitted batch."""
        return bool(self.in_flight) or not self.queue.empty() or self.batcher.pending_files > 0

    async def dispatch(self) -> None:
        """Take files from the queue in small chunks, one task per chunk, forever.

        A chunk is whatever is queued already, up to ``CHUNK_MAX_FILES`` files or
        ``CHUNK_MAX_BYTES`` bytes, and each of its files holds a place under the
        limit. One call into the worker pool per chunk, rather than per file,
        keeps the main process's share of the work small during a backfill; a
        file arriving alone still goes on at once. While files are queued and
        the limit is reached, a chunk waits for places to fill up rather than
        leaving with the one place a finished file gave back: the workers are
        busy then, and a stream of one-file chunks would only cost the main
        process more. A chunk takes at most a quarter of the limit, so that
        every worker has a chunk queued behind the one it is working on.
        """
        while True:
            chunk = [await self.queue.get()]
            await self.limiter.acquire()
            nbytes = chunk[0].size
            while (
                len(chunk) < min(CHUNK_MAX_FILES, self.limiter.limit // 4)
                and nbytes < CHUNK_MAX_BYTES
                and not self.queue.empty()
            ):
                await self.limiter.acquire()
                chunk.append(self.queue.get_nowait())
                nbytes += chunk[-1].size
            task = asyncio.create_task(self._handle(chunk))
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)

    def apply(self, settings: Settings) -> None:
        """Take new settings after a reload; batch limits apply from the next file."""
        self.settings = settings
        self.batcher.policy = FlushPolicy(
            settings.batch_max_features, settings.batch_max_bytes, settings.batch_max_age_s
        )

    def close(self) -> None:
        """Stop the worker processes; files still in them are abandoned."""
        self._pool.close()
        if self._isolation_pool is not None:
            self._isolation_pool.close()

    async def _handle(self, chunk: list[Candidate]) -> None:
        # A file the ledger knows as committed (kept in place across a restart)
        # is not read again. Moved and deleted sources are gone once disposed
        # of, and recovery disposes of any a crash left behind. Files this run
        # committed are remembered by discovery, so on a first ingest (an empty
        # ledger at the start) the ledger has nothing to say until discovery
        # forgets one of them.
        if self._keeps_sources and (self._committed_before or self.discovery.forgot_kept_files):
            chunk = self._unknown(chunk)
        if not chunk:
            return
        # Each file holds its place until its result is routed: a batch that
        # cannot commit (a full disk) then holds back the workers, the queue and
        # discovery, instead of letting results pile up in memory.
        held = len(chunk)
        spooled: spool.SpoolFile | None = None
        try:
            started = time.perf_counter()
            results, spooled = await self._process(chunk)
            if self.adaptive is not None:
                in_flight_s = (time.perf_counter() - started) / len(chunk)
                for _ in chunk:
                    self.adaptive.record(in_flight_s)
            committed, as_of = self._committed_contents(results), self._commits
            for index, (candidate, result) in enumerate(zip(chunk, results, strict=True)):
                if self._commits != as_of:
                    # A batch committed meanwhile, and its hashes are no longer pending.
                    # (Only the files still to route: the ones routed may be in it.)
                    committed = self._committed_contents(results[index:])
                    as_of = self._commits
                if isinstance(result, workers.Ingested) and not self._is_duplicate(
                    result.sha256, committed
                ):
                    # Nearly every file: into the open batch, with no await unless
                    # it fills the batch or a flush is under way.
                    self.metrics.input_bytes.inc(result.size)
                    self._pending_hashes.add(result.sha256)
                    if not self.batcher.add_now(candidate, result, spooled):
                        await self.batcher.add(candidate, result, spooled)
                else:
                    await self._route(candidate, result)
                self.limiter.release()
                held -= 1
        finally:
            for _ in range(held):
                self.limiter.release()
            if spooled is not None and spooled.release():
                spool.discard(spooled.path)

    def _unknown(self, chunk: list[Candidate]) -> list[Candidate]:
        """Return the files of a chunk the ledger does not know as committed; let go of the rest.

        At most one query per input folder for the whole chunk, and usually
        none: the ledger's sieve rules out files it has never committed.
        """
        states = [(c.root.name, (c.rel_text, c.size, c.mtime_ns)) for c in chunk]
        known: set[tuple[str, FileState]] = set()
        for source in {source for source, _ in states}:
            files = [state for name, state in states if name == source]
            known.update((source, found) for found in self.ledger.committed_files(source, files))
        unknown = []
        for candidate, state in zip(chunk, states, strict=True):
            if state in known:
                self.limiter.release()
                self.discovery.release(candidate, remember=True)
            else:
                unknown.append(candidate)
        return unknown

    def _committed_contents(self, results: list[workers.Result]) -> set[str]:
        """Return the hashes among ``results`` whose content is committed already."""
        if self.settings.dedupe != "content":
            return set()
        hashes = [result.sha256 for result in results if isinstance(result, workers.Ingested)]
        return self.ledger.committed_contents(hashes)

    def _options(self) -> workers.Options:
        settings = self.settings
        return workers.Options(settings.precision, settings.max_file_bytes, settings.output_format)

    async def _process(
        self, chunk: list[Candidate]
    ) -> tuple[list[workers.Result], spool.SpoolFile | None]:
        """Run a chunk through a worker; after a worker death, retry each file on its own.

        Returns:
            The results, and the spool file holding their output, if any.
        """
        files = [(c.path_text, c.size, c.mtime_ns) for c in chunk]
        path = f"{self._spool_dir}/{os.getpid()}-{next(self._spool_names)}{spool.SUFFIX}"
        try:
            results = await self._run(self._pool, files, path)
        except BrokenProcessPool:
            spool.discard(path)
        except BaseException:
            spool.discard(path)
            raise
        else:
            spooled = any(isinstance(r, workers.Ingested) and r.spooled for r in results)
            return results, spool.SpoolFile(path) if spooled else None
        alone = [
            await self._process_alone(candidate, file)
            for candidate, file in zip(chunk, files, strict=True)
        ]
        return alone, None

    async def _run(
        self, pool: Pool, files: list[workers.FileRef], spool_path: str = ""
    ) -> list[workers.Result]:
        started = time.perf_counter()
        results = await pool.submit(files, self._options(), spool_path)
        per_file_s = (time.perf_counter() - started) / len(files)
        for _ in files:
            self.metrics.file_processing_duration_seconds.observe(per_file_s)
        return results

    async def _process_alone(self, candidate: Candidate, file: workers.FileRef) -> workers.Result:
        """Retry a file that was in a worker when it died, one file at a time.

        Every file of the chunks that worker held sees it die, so only a death
        with the file alone in a single-worker pool is held against it.
        """
        async with self._isolation_lock:
            if self._isolation_pool is None:
                self._isolation_pool = Pool(1)
            for attempt in range(1, WORKER_CRASH_ATTEMPTS + 1):
                try:
                    return (await self._run(self._isolation_pool, [file]))[0]
                except BrokenProcessPool:
                    log.warning("worker_died_on_file", path=candidate.path, attempt=attempt)
        return workers.Rejected(
            sha256="",
            size=candidate.size,
            rule="worker-crash",
            pointer="",
            message=f"a worker process died {WORKER_CRASH_ATTEMPTS} times on this file alone",
        )

    async def _route(self, candidate: Candidate, result: workers.Result) -> None:
        """Route a file that does not go into the batch: a duplicate, a rejection, the rest."""
        match result:
            case workers.Ingested():  # a duplicate: the others went into the batch
                self.metrics.input_bytes.inc(result.size)
                await self._drop_duplicate(candidate, result.sha256)
            case workers.Rejected():
                self.metrics.input_bytes.inc(result.size)
                reason = Reason(result.rule, result.pointer, result.message, result.sha256)
                await self._quarantine(candidate, reason)
            case workers.Unready(vanished=True):
                self._finish(candidate, "vanished", remember=False)
            case workers.Unready():
                log.debug("file_not_ready", path=candidate.path, reason=result.reason)
                self.discovery.release(candidate, remember=False)
            case workers.Skipped():
                self.metrics.skipped_files.labels(reason=result.reason).inc()
                self.discovery.release(candidate, remember=True)
            case workers.Failed():
                log.warning("file_failed", path=candidate.path, error=result.message)
                self._finish(candidate, "error", remember=True)

    def _is_duplicate(self, sha256: str, committed: set[str]) -> bool:
        if self.settings.dedupe != "content":
            return False
        return sha256 in self._pending_hashes or sha256 in committed

    async def _drop_duplicate(self, candidate: Candidate, sha256: str) -> None:
        """Dispose of a file whose content is already committed or in a batch."""
        key = file_key(candidate, sha256)
        try:
            await asyncio.to_thread(self._dispose_duplicate, candidate, key)
        except (OSError, sqlite3.Error) as exc:
            log.error("dispose_failed", path=candidate.path, error=str(exc))
            self._finish(candidate, "error", remember=True)
            return
        log.info("file_duplicate", path=candidate.path, sha256=sha256)
        self._finish(candidate, "duplicate", remember=self.settings.on_success == "keep")

    def _dispose_duplicate(self, candidate: Candidate, key: FileKey) -> None:
        dispose(candidate, self.settings.on_success, self.settings.done_dir)
        self.ledger.record(key, "duplicate")

    def _quarantine_and_record(self, candidate: Candidate, reason: Reason) -> Path:
        target = quarantine(candidate, reason, self.settings.quarantine_dir)
        self.ledger.record(file_key(candidate, reason.sha256), "quarantined", reason.rule)
        return target

    async def _quarantine(self, candidate: Candidate, reason: Reason) -> None:
        try:
            target = await asyncio.to_thread(self._quarantine_and_record, candidate, reason)
        except (OSError, sqlite3.Error) as exc:
            log.error("quarantine_failed", path=candidate.path, rule=reason.rule, error=str(exc))
            self._finish(candidate, "error", remember=True)
            return
        log.info(
            "file_quarantined",
            path=candidate.path,
            rule=reason.rule,
            pointer=reason.pointer,
            message=reason.message,
            quarantined_as=target,
        )
        self.metrics.files_rejected.labels(rule=reason.rule).inc()
        self._finish(candidate, "quarantined", remember=False)

    def _finish(self, candidate: Candidate, outcome: str, *, remember: bool) -> None:
        self.totals[outcome] += 1
        self._processed(candidate.root.name, outcome).inc()
        self.discovery.release(candidate, remember=remember)

    async def _commit(self, batch: Batch, trigger: str) -> None:
        """Commit a batch, then dispose of its sources and finish them."""
        manifest = await self.committer.commit(batch, trigger)
        await asyncio.to_thread(spool.discard_all, batch.release())
        self.totals["features"] += batch.features
        self.totals["batches"] += 1
        failed = await self.committer.dispose(batch, manifest)

        # A file that could not be disposed of stays where it is; remember it
        # so that this run does not ingest its features a second time.
        keep = self.settings.on_success == "keep"
        self._commits += 1
        for candidate, result in batch.files:
            self._pending_hashes.discard(result.sha256)
            self._finish(candidate, "ingested", remember=keep or candidate in failed)
