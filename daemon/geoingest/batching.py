"""Batching: features from many files gathered into one batch, flushed by policy.

A file is the unit of a batch: all of its features go into the same batch, so
a source file is disposed of exactly when one batch commits. A batch is
flushed when it holds ``batch_max_features`` features or ``batch_max_bytes``
bytes, when its oldest file has waited ``batch_max_age_s``, and at shutdown.
Adding a file that would overflow a non-empty batch flushes the batch first,
so a batch only exceeds a limit when a single file does.

A flushed batch commits in the background while the next one fills, so the
workers never wait on an fsync. Batches still commit one at a time and in
order: a batch that fills while the one before it is committing waits for that
commit, which holds back new files when the output is slow or failing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from geoingest.spool import Piece, Span, SpoolFile

if TYPE_CHECKING:
    from geoingest.discovery import Candidate
    from geoingest.workers import Ingested


@dataclass(frozen=True, slots=True)
class FlushPolicy:
    """When a batch must be flushed.

    Example:
        >>> policy = FlushPolicy(max_features=10, max_bytes=1000, max_age_s=5.0)
        >>> policy.overflow(features=8, nbytes=100, more_features=3, more_bytes=10)
        'features'
        >>> policy.full(features=10, nbytes=100)
        'features'
        >>> policy.full(features=3, nbytes=100) is None
        True
    """

    max_features: int
    max_bytes: int
    max_age_s: float

    def full(self, features: int, nbytes: int) -> str | None:
        """Return the trigger that a batch of this size has reached, if any."""
        if features >= self.max_features:
            return "features"
        if nbytes >= self.max_bytes:
            return "bytes"
        return None

    def overflow(
        self, features: int, nbytes: int, more_features: int, more_bytes: int
    ) -> str | None:
        """Return the trigger that adding ``more`` to a non-empty batch would pass, if any."""
        if features and features + more_features > self.max_features:
            return "features"
        if nbytes and nbytes + more_bytes > self.max_bytes:
            return "bytes"
        return None

    def expired(self, age_s: float) -> bool:
        """Whether a batch whose oldest file has waited ``age_s`` must be flushed."""
        return age_s >= self.max_age_s


@dataclass(slots=True)
class Batch:
    """Files whose features will be committed together."""

    files: list[tuple[Candidate, Ingested]] = field(default_factory=list)
    pieces: list[Piece] = field(default_factory=list)
    features: int = 0
    nbytes: int = 0
    opened_at: float = 0.0

    def add(self, candidate: Candidate, result: Ingested, spool: SpoolFile | None = None) -> None:
        """Append one file's features; ``spool`` holds them if the result says they are spooled."""
        if not self.files:
            self.opened_at = time.monotonic()
        self.files.append((candidate, result))
        self.features += result.features
        self.nbytes += result.nbytes
        if result.spooled is not None:
            if spool is None:
                raise ValueError("a spooled result needs its spool file")
            spool.hold()
            self.pieces.append(Span(spool, *result.spooled))
        elif result.body:
            self.pieces.append(result.body)

    def release(self) -> list[str]:
        """Let go of the spool files of a committed batch; return those no one needs now."""
        return [
            piece.spool.path
            for piece in self.pieces
            if isinstance(piece, Span) and piece.spool.release()
        ]

    def age_s(self) -> float:
        """Seconds since the first file was added, 0 for an empty batch."""
        return time.monotonic() - self.opened_at if self.files else 0.0


Committer = Callable[[Batch, str], Coroutine[Any, Any, None]]


class Batcher:
    """Collects ingested files and hands full batches to ``commit``.

    Args:
        policy: When to flush.
        commit: Writes a batch durably and disposes of its sources; called with
            the batch and the trigger, one batch at a time. It returns only once
            the batch is committed (it retries on its own).
    """

    def __init__(self, policy: FlushPolicy, commit: Committer) -> None:
        self.policy = policy
        self._commit = commit
        self._batch = Batch()
        self._lock = asyncio.Lock()
        self._committing: Batch | None = None
        self._commit_task: asyncio.Task[None] | None = None

    @property
    def pending_files(self) -> int:
        """Files in the open batch and in the one committing, not yet committed."""
        committing = self._committing.files if self._committing is not None else ()
        return len(self._batch.files) + len(committing)

    async def add(
        self, candidate: Candidate, result: Ingested, spool: SpoolFile | None = None
    ) -> None:
        """Add one file, flushing before or after as the policy says."""
        async with self._lock:
            batch = self._batch
            trigger = self.policy.overflow(
                batch.features, batch.nbytes, result.features, result.nbytes
            )
            if trigger:
                await self._flush_locked(trigger)
            self._batch.add(candidate, result, spool)
            trigger = self.policy.full(self._batch.features, self._batch.nbytes)
            if trigger:
                await self._flush_locked(trigger)

    def add_now(
        self, candidate: Candidate, result: Ingested, spool: SpoolFile | None = None
    ) -> bool:
        """Add one file without waiting, if that flushes nothing; say whether it was added.

        A file that would fill the batch or overflow it, or one that comes
        while a flush holds the lock, is left to :meth:`add`.
        """
        batch = self._batch
        if self._lock.locked() or self.policy.overflow(
            batch.features, batch.nbytes, result.features, result.nbytes
        ):
            return False
        if self.policy.full(batch.features + result.features, batch.nbytes + result.nbytes):
            return False
        batch.add(candidate, result, spool)
        return True

    async def flush(self, trigger: str) -> None:
        """Commit the open batch now, if it holds anything, and wait until all is committed."""
        async with self._lock:
            await self._flush_locked(trigger)
            await self._committed()

    async def flush_when_old(self, tick_s: float = 0.1) -> None:
        """Run forever, flushing the batch whenever its oldest file is old enough."""
        while True:
            await asyncio.sleep(tick_s)
            if self._batch.files and self.policy.expired(self._batch.age_s()):
                async with self._lock:
                    if self._batch.files and self.policy.expired(self._batch.age_s()):
                        await self._flush_locked("age")

    async def _flush_locked(self, trigger: str) -> None:
        """Start committing the open batch, once the batch before it is committed."""
        batch = self._batch
        if not batch.files:
            return
        self._batch = Batch()
        await self._committed()
        self._committing = batch
        self._commit_task = asyncio.create_task(self._commit(batch, trigger))

    async def _committed(self) -> None:
        """Wait for the batch being committed, if any; a cancelled waiter leaves it running."""
        task = self._commit_task
        if task is None:
            return
        try:
            await asyncio.shield(task)
        finally:
            if task.done() and self._commit_task is task:
                self._commit_task, self._committing = None, None
