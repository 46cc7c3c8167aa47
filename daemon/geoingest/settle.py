"""The completeness check: a file is ready once its size and mtime stop changing.

Nothing here touches the filesystem or reads a clock. Discovery stats the
files and passes the wall-clock time in; :class:`Settler` answers whether a
file is complete and says when each file still settling should be stat-ed
again. That keeps the rules testable in microseconds.

The quiet period is measured from the later of two moments it can trust: the
file's mtime, and the first stat that saw the current size and mtime. A file
whose mtime is already ``settle_s`` old on its first stat (a backfill, a file
renamed into place) is ready at once. An mtime in the future, which clock skew
on a network filesystem can produce, is not trusted: such a file waits until
it has looked the same for ``settle_s``. A wall clock stepped forward can hand
on a file early, and one stepped back delays it.

Example:
    >>> settler = Settler[str](settle_s=1.0)
    >>> settler.observe("a.geojson", "drop", size=10, mtime_ns=100 * 10**9, now=100.2)
    >>> settler.due(now=101.0)
    ['a.geojson']
    >>> settler.observe("a.geojson", "drop", size=10, mtime_ns=100 * 10**9, now=101.0)
    'drop'
    >>> len(settler)
    0
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

_NS = 1_000_000_000


@dataclass(slots=True)
class _Pending(Generic[T]):
    """What is known of one file that is still settling."""

    tag: T
    size: int
    mtime_ns: int
    since: float
    trust_mtime: bool
    due: float


class Settler(Generic[T]):
    """Tracks files until their size and mtime have been quiet for ``settle_s``.

    Each file is known by a string key (its path) and carries a tag of the
    caller's choosing, kept from the first observation.

    Args:
        settle_s: How long a file's size and mtime must stay unchanged, in
            seconds.
    """

    def __init__(self, settle_s: float) -> None:
        self.settle_s = settle_s
        self._pending: dict[str, _Pending[T]] = {}
        self._schedule: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, key: object) -> bool:
        return key in self._pending

    def observe(self, key: str, tag: T, size: int, mtime_ns: int, now: float) -> T | None:
        """Record one stat of a file and say whether it is complete.

        Args:
            key: The file's path.
            tag: Kept with the file if this is its first observation.
            size: Size from the stat, in bytes.
            mtime_ns: Modification time from the stat, in nanoseconds.
            now: The wall-clock time of the stat, in seconds since the epoch.

        Returns:
            The tag of the file's first observation if the file is complete
            (it is then no longer tracked), or None if it is still settling.
        """
        entry = self._pending.get(key)
        if entry is None:
            entry = _Pending(tag, size, mtime_ns, now, trust_mtime=True, due=0.0)
        elif (entry.size, entry.mtime_ns) != (size, mtime_ns):
            # A moving mtime is a live one; a size that moved under a fixed mtime
            # means the mtime says nothing about when the file was last written.
            entry.trust_mtime = entry.mtime_ns != mtime_ns
            entry.size, entry.mtime_ns, entry.since = size, mtime_ns, now

        quiet_from = entry.since
        if entry.trust_mtime:
            quiet_from = min(quiet_from, mtime_ns / _NS)
        if now - quiet_from >= self.settle_s:
            self._pending.pop(key, None)
            return entry.tag

        self._pending[key] = entry
        self._plan(key, entry, quiet_from + self.settle_s)
        return None

    def due(self, now: float) -> list[str]:
        """Return the files whose next stat is due, earliest first.

        The caller should pass each of them to :meth:`observe` or
        :meth:`forget`. A file left alone is offered again ``settle_s`` later.
        """
        keys: list[str] = []
        while self._schedule and self._schedule[0][0] <= now:
            when, key = heapq.heappop(self._schedule)
            entry = self._pending.get(key)
            if entry is not None and entry.due == when:
                keys.append(key)
                self._plan(key, entry, now + self.settle_s)
        return keys

    def forget(self, key: str) -> T | None:
        """Stop tracking a file (it vanished or is no longer wanted); return its tag."""
        entry = self._pending.pop(key, None)
        return None if entry is None else entry.tag

    def tag(self, key: str) -> T | None:
        """Return the tag of a settling file, or None if it is not tracked."""
        entry = self._pending.get(key)
        return None if entry is None else entry.tag

    def items(self) -> Iterator[tuple[str, T, int]]:
        """Yield ``(key, tag, mtime_ns)`` for every settling file."""
        for key, entry in self._pending.items():
            yield key, entry.tag, entry.mtime_ns

    def _plan(self, key: str, entry: _Pending[T], when: float) -> None:
        """Schedule the next stat of a file; older schedule entries go stale."""
        entry.due = when
        heapq.heappush(self._schedule, (when, key))
        # Stale entries leave the heap as they come due; rebuild it if they pile up.
        if len(self._schedule) > 4 * len(self._pending) + 64:
            live = {k: e.due for k, e in self._pending.items()}
            self._schedule = [(w, k) for w, k in self._schedule if live.get(k) == w]
            heapq.heapify(self._schedule)
