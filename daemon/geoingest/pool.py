"""The worker pool: processes fed through pipes that the event loop reads itself.

``concurrent.futures.ProcessPoolExecutor`` runs two threads in the main
process, one to pickle and send calls and one to receive and unpickle
results, and wakes them through a pipe on every call. On a busy ingest host
those threads and the event loop take turns at the GIL for every chunk, and
the loop waits at each turn. Here each worker has one pipe; the loop writes a
chunk's jobs to the worker with the fewest chunks pending and reads results
when the pipe is readable, with no thread in between.

A worker that dies fails the chunks it held with ``BrokenProcessPool`` and is
replaced at once; the other workers carry on.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections import deque
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import structlog

from geoingest import workers

log = structlog.get_logger("geoingest.pool")

# How long ``close`` waits for a killed worker to be reaped.
_REAP_S = 1.0


def _serve(conn: Connection) -> None:
    """A worker's life: process each chunk sent, answer, until the pipe closes."""
    workers.init_worker()
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        files, options, spool_path = request
        try:
            reply: tuple[bool, object] = (True, workers.process_chunk(files, options, spool_path))
        except Exception as exc:  # a bug: the chunk fails as if the worker had died
            reply = (False, f"{type(exc).__name__}: {exc}")
        conn.send(reply)


class _Worker:
    """One worker process, its end of the pipe, and the chunks it holds, oldest first."""

    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.pending: deque[asyncio.Future[list[workers.Result]]] = deque()


class Pool:
    """A fixed number of worker processes, each fed a chunk at a time.

    Args:
        size: How many worker processes to run.
    """

    def __init__(self, size: int) -> None:
        # forkserver keeps workers free of the main process's threads (the
        # watcher, the metrics server), which a plain fork would copy mid-lock.
        self._context = multiprocessing.get_context("forkserver")
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._workers = [self._start() for _ in range(size)]

    def submit(
        self, files: list[workers.FileRef], options: workers.Options, spool_path: str = ""
    ) -> asyncio.Future[list[workers.Result]]:
        """Send a chunk to the least busy worker; the future holds its results.

        Raises:
            BrokenProcessPool: The pool is closed, or the worker died as the chunk was sent.
        """
        if self._closed:
            raise BrokenProcessPool("the worker pool is closed")
        worker = min(self._workers, key=lambda w: len(w.pending))
        future: asyncio.Future[list[workers.Result]] = self._loop.create_future()
        try:
            worker.conn.send((files, options, spool_path))
        except OSError:
            self._lost(worker)
            raise BrokenProcessPool("a worker process died") from None
        worker.pending.append(future)
        return future

    def close(self) -> None:
        """Stop every worker; chunks still in them fail with ``BrokenProcessPool``."""
        self._closed = True
        for worker in self._workers:
            self._stop(worker)
        for worker in self._workers:
            worker.process.join(_REAP_S)

    def _start(self) -> _Worker:
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(target=_serve, args=(theirs,), daemon=True)
        process.start()
        theirs.close()
        worker = _Worker(process, ours)
        self._loop.add_reader(ours.fileno(), self._on_readable, worker)
        return worker

    def _on_readable(self, worker: _Worker) -> None:
        # One answer per call: the loop calls again while the pipe holds more.
        # A worker writes each answer whole, so the read does not wait long.
        try:
            ok, payload = worker.conn.recv()
            future = worker.pending.popleft()
        except (EOFError, OSError, IndexError):
            self._lost(worker)
            return
        if future.done():
            return
        if ok:
            future.set_result(payload)
        else:
            log.error("worker_failed", error=payload)
            future.set_exception(BrokenProcessPool(str(payload)))

    def _lost(self, worker: _Worker) -> None:
        """A worker died: fail what it held and start another in its place."""
        if worker not in self._workers:
            return
        self._stop(worker)
        worker.process.join(_REAP_S)
        if not self._closed:
            log.error("worker_died", pid=worker.process.pid, exitcode=worker.process.exitcode)
            self._workers[self._workers.index(worker)] = self._start()

    def _stop(self, worker: _Worker) -> None:
        self._loop.remove_reader(worker.conn.fileno())
        worker.conn.close()
        if worker.process.is_alive():
            worker.process.kill()
        while worker.pending:
            future = worker.pending.popleft()
            if not future.done():
                future.set_exception(BrokenProcessPool("a worker process died"))
