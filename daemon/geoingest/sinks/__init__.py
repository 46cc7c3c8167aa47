"""Sinks: where committed batches go.

A sink turns a :class:`~geoingest.batching.Batch` into durable output in one
atomic step. The folder sink is the one geoingest ships; the interface is
small so that a database sink can commit a batch and its bookkeeping in one
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from geoingest.batching import Batch


@dataclass(frozen=True, slots=True)
class Commit:
    """What a sink reports once a batch is durable."""

    name: str
    nbytes: int


class Sink(Protocol):
    """Commits batches atomically: after ``commit`` returns, the batch is durable."""

    def reserve_name(self) -> str:
        """Return a new, unique name for the next batch."""
        ...

    def commit(self, batch: Batch, name: str) -> Commit:
        """Write the batch durably; raise ``OSError`` and leave no trace when that fails."""
        ...

    def exists(self, name: str) -> bool:
        """Whether the batch with this name is committed."""
        ...

    def recover(self) -> int:
        """Remove what an interrupted commit left behind; return how many items."""
        ...
