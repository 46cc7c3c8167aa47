"""The limit on files in flight: fixed, or adapted to the storage.

With ``max_concurrency = auto`` the limit follows additive increase and
multiplicative decrease, the way TCP finds a link's capacity. Twice a second
the controller compares the files finished and their mean time in flight with
the previous period's. While more files in flight bring more throughput, or
every place is taken, the limit grows: it doubles at first (TCP's slow start,
so that a short backfill does not end before the limit has grown), and grows
by a step once it has had to shrink. When the time in flight rises sharply
without a matching gain in throughput (the storage or the workers are queueing
rather than working), the limit shrinks by a quarter. The limit never leaves
``[floor, ceiling]``, and the ceiling stays well inside the file-descriptor
limit.
"""

from __future__ import annotations

import asyncio
import resource
from collections import deque
from dataclasses import dataclass

AUTO_START = 32
AUTO_FLOOR = 4
AUTO_CEILING = 256
# Descriptors the daemon needs besides the files in flight: the ledger, the
# metrics server and its clients, the watcher, worker pipes, batch files.
FD_RESERVE = 64


class Limiter:
    """An ``asyncio.Semaphore`` whose limit can change while it is in use.

    A release hands its place straight to the longest waiter, with no task
    and no lock: the dispatcher takes and gives back a place per file, so
    this is on the hot path of every file.

    Example:
        >>> async def demo() -> tuple[int, bool]:
        ...     limiter = Limiter(1)
        ...     await limiter.acquire()
        ...     limiter.limit = 2
        ...     await limiter.acquire()
        ...     return limiter.in_flight, limiter.locked()
        >>> asyncio.run(demo())
        (2, True)
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def limit(self) -> int:
        """The most holders at once."""
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        self._limit = max(1, value)
        self._wake()

    def locked(self) -> bool:
        """Whether an ``acquire`` would wait."""
        return self.in_flight >= self._limit

    async def acquire(self) -> None:
        """Wait for a free place, then take it."""
        if self.in_flight < self._limit and not self._waiters:
            self.in_flight += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # The place was handed over just as the wait was cancelled: pass it on.
                self.in_flight -= 1
                self._wake()
            elif waiter in self._waiters:  # a release may have dropped it already
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a place back."""
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        """Hand free places to waiters, oldest first; a place handed over is taken."""
        while self._waiters and self.in_flight < self._limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self.in_flight += 1


def fd_ceiling() -> int:
    """The most files in flight that the process's descriptor limit allows."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return AUTO_CEILING
    return max(AUTO_FLOOR, min(AUTO_CEILING, soft - FD_RESERVE))


@dataclass(slots=True)
class Window:
    """What one control period saw."""

    finished: int = 0
    busy_s: float = 0.0

    def mean_s(self) -> float:
        """Mean time a file spent in flight."""
        return self.busy_s / self.finished if self.finished else 0.0


class AdaptiveLimit:
    """Additive increase, multiplicative decrease of a :class:`Limiter`'s limit.

    Args:
        limiter: The limiter to steer.
        ceiling: The highest limit allowed.
        floor: The lowest limit allowed.

    Example:
        >>> control = AdaptiveLimit(Limiter(16), ceiling=256)
        >>> control.next_limit(16, Window(100, 1.0), Window(120, 1.3))
        32
        >>> control.next_limit(32, Window(120, 1.2), Window(121, 3.0))
        24
        >>> control.next_limit(24, Window(121, 3.0), Window(150, 3.1))
        28
    """

    def __init__(self, limiter: Limiter, ceiling: int, floor: int = AUTO_FLOOR) -> None:
        self.limiter = limiter
        self.ceiling = ceiling
        self.floor = floor
        self.step = 4
        self.slow_start = True
        self._window = Window()

    def record(self, in_flight_s: float) -> None:
        """Note one finished file and the time it spent in flight."""
        self._window.finished += 1
        self._window.busy_s += in_flight_s

    def next_limit(self, limit: int, previous: Window, current: Window) -> int:
        """The limit for the next period, from the last two periods."""
        if not previous.finished or not current.finished:
            return limit
        gained = current.finished >= previous.finished * 1.02
        slower = current.mean_s() > previous.mean_s() * 1.5
        if slower and not gained:
            self.slow_start = False
            return max(self.floor, int(limit * 0.75))
        if not gained and self.limiter.in_flight < limit:
            return limit  # not even the current limit is used: nothing to learn
        grown = limit * 2 if self.slow_start else limit + self.step
        return min(self.ceiling, grown)

    async def run(self, period_s: float = 0.5) -> None:
        """Adjust the limit once a period, forever."""
        previous = Window()
        while True:
            await asyncio.sleep(period_s)
            current, self._window = self._window, Window()
            self.limiter.limit = self.next_limit(self.limiter.limit, previous, current)
            previous = current
