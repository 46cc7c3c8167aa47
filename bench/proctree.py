"""Memory of a whole process tree, read from ``/proc`` while it runs.

A daemon with worker processes spends its memory in several processes, so the
figure that matters is the summed resident set size of the main process and
all its descendants. Pages that forked workers still share with their parent
are counted once per process, as ``ps`` and ``top`` would show them.

Linux kernels built without ``CONFIG_PROC_CHILDREN`` have no ``children`` file
under ``/proc``, so parents are found from each process's ``stat`` line. Only
processes not seen before are read, which keeps a sample well under a
millisecond on a quiet machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterable
from pathlib import Path

PROC = "/proc"
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def read_proc(path: str) -> bytes | None:
    """Return the text of a small ``/proc`` file, or None when its process is gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)


def stat_fields(pid: int) -> list[bytes] | None:
    """Return the fields of ``/proc/<pid>/stat`` after the command name, None when it is gone.

    The command name sits in parentheses and may hold spaces, so the fields are
    taken after the last closing parenthesis: state, parent, group, session,
    and so on (``man 5 proc``), counted from 0 here.
    """
    line = read_proc(f"{PROC}/{pid}/stat")
    if line is None:
        return None
    return line[line.rindex(b")") + 2 :].split(b" ")


def read_parent(pid: int) -> int | None:
    """Return the parent id of ``pid``, or None when the process is gone."""
    fields = stat_fields(pid)
    return None if fields is None else int(fields[1])


def read_session(pid: int) -> int | None:
    """Return the session id of ``pid``, or None when the process is gone."""
    fields = stat_fields(pid)
    return None if fields is None else int(fields[3])


def read_cpu_ticks(pid: int) -> int | None:
    """Return the user plus system time of ``pid`` in clock ticks, None when it is gone."""
    fields = stat_fields(pid)
    return None if fields is None else int(fields[11]) + int(fields[12])


def read_rss_bytes(pid: int) -> int:
    """Return the resident set size of ``pid`` in bytes, 0 when it is gone or a zombie."""
    line = read_proc(f"{PROC}/{pid}/statm")
    try:
        return int(line.split()[1]) * PAGE_BYTES if line else 0
    except (IndexError, ValueError):
        return 0


def read_pss_bytes(pid: int) -> int:
    """Return the proportional set size of ``pid`` in bytes, 0 when it is gone or unreadable.

    Pages shared between processes count in proportion to how many share them,
    so the sum over a tree is the memory the tree really holds.
    """
    try:
        with Path(f"{PROC}/{pid}/smaps_rollup").open("rb") as f:
            text = f.read()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(b"Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def live_pids() -> set[int]:
    """Return the ids of every process visible in ``/proc``."""
    with os.scandir(PROC) as entries:
        return {int(entry.name) for entry in entries if entry.name.isdigit()}


def descendants(root: int, parents: dict[int, int]) -> list[int]:
    """Return ``root`` and every process below it, given each process's parent."""
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, ()))
    return tree


class ProcessTree:
    """Tracks the processes below one root and sums their memory.

    Args:
        root: The id of the tree's top process.
    """

    def __init__(self, root: int) -> None:
        self.root = root
        self._parents: dict[int, int] = {}

    def members(self) -> list[int]:
        """Return the ids of the root and its living descendants."""
        pids = live_pids()
        self._forget(set(self._parents) - pids)
        self._learn(pids - set(self._parents))
        return descendants(self.root, self._parents)

    def _forget(self, gone: Iterable[int]) -> None:
        for pid in gone:
            del self._parents[pid]

    def _learn(self, new: Iterable[int]) -> None:
        for pid in new:
            parent = read_parent(pid)
            if parent is not None:
                self._parents[pid] = parent


class Periodic(threading.Thread):
    """A daemon thread that calls :meth:`tick` at a fixed interval until stopped.

    Args:
        interval_s: Seconds between the starts of two ticks.
        name: The thread's name.
    """

    def __init__(self, interval_s: float, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.interval_s = interval_s
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def tick(self) -> None:
        """Take one sample; subclasses say what that is."""
        raise NotImplementedError

    def run(self) -> None:
        """Tick until :meth:`stop` is called; keep the first error for the caller."""
        next_at = time.monotonic()
        while not self._stop_event.is_set():
            try:
                self.tick()
            except Exception as exc:
                # A failed sample is reported with the results rather than ending the run.
                self.error = exc
                return
            next_at += self.interval_s
            self._stop_event.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        """Stop ticking and wait for the thread to finish."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=5)


class TreeUsage(Periodic):
    """Samples a process tree: the peaks of its summed RSS and PSS, and the CPU time it used.

    RSS is read at every sample. PSS costs more to read, so it is read at
    every ``pss_every``-th sample. CPU time is the sum over every process
    seen of its own user and system time at its last sample; the last few
    milliseconds of a process that exits between two samples are missed.

    Args:
        root: The id of the tree's top process.
        interval_s: Seconds between samples.
        pss_every: Read PSS at one sample in this many.
    """

    def __init__(self, root: int, interval_s: float = 0.02, pss_every: int = 5) -> None:
        super().__init__(interval_s, name=f"tree-usage-{root}")
        self.tree = ProcessTree(root)
        self.pss_every = pss_every
        self.peak_rss_bytes = 0
        self.peak_pss_bytes = 0
        self.peak_processes = 0
        self.samples = 0
        self._cpu_ticks: dict[int, int] = {}

    @property
    def cpu_s(self) -> float:
        """CPU seconds used by the processes of the tree so far."""
        return sum(self._cpu_ticks.values()) / CLOCK_TICKS

    def tick(self) -> None:
        """Read the tree's memory and CPU time once and update the figures."""
        members = self.tree.members()
        rss = sum(read_rss_bytes(pid) for pid in members)
        self.peak_rss_bytes = max(self.peak_rss_bytes, rss)
        if self.samples % self.pss_every == 0:
            pss = sum(read_pss_bytes(pid) for pid in members)
            self.peak_pss_bytes = max(self.peak_pss_bytes, pss)
        for pid in members:
            self._cpu_ticks[pid] = read_cpu_ticks(pid) or self._cpu_ticks.get(pid, 0)
        self.samples += 1
        self.peak_processes = max(self.peak_processes, len(members))


def session_members(session: int, wait_s: float = 2.0) -> list[int]:
    """Return the processes still in ``session`` after up to ``wait_s`` for them to exit."""
    deadline = time.monotonic() + wait_s
    while True:
        members = [pid for pid in live_pids() if read_session(pid) == session]
        if not members or time.monotonic() > deadline:
            return members
        time.sleep(0.05)


def kill_quietly(pid: int) -> None:
    """Send SIGKILL to ``pid`` unless it is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
