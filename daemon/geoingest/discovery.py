"""Discovery: watch the input folders, walk them, and hand on complete files.

Three sources feed one bounded queue through one de-duplicating step:

* the watcher (watchfiles' ``RustNotify``), armed before anything is walked,
  so that no file can arrive unseen between a walk and the first event;
* walks with :func:`os.scandir`: the backfill at start, a walk of every folder
  the watcher reports as new, a walk of everything after the watcher is
  rebuilt, and a periodic reconciliation walk, because the watcher loses
  events without raising (kernel queue overflow, files created inside a new
  folder before it is watched, a folder renamed in with files inside);
* the settle stage (:mod:`geoingest.settle`), which re-stats young files until
  their size and mtime have been quiet for ``settle_s``.

Every path is in at most one place at a time: settling, claimed (queued or in
the pipeline), or remembered (ingested and kept in place, with the size and
mtime it had). Walks and hand-ons await the queue, so a full queue pauses
discovery and events wait inside watchfiles instead of piling up here.

Symlinks are never followed, to files or to folders. A recursive watch would
follow symlinked folders wherever they lead (a link to ``/`` would have it walk
and watch the whole filesystem before the first event), so each folder a walk
enters is watched on its own instead. A folder met after the watcher was armed
is added by arming a new watcher on every folder before the old one is retired,
so no event falls between the two, and then looked into again. As a second
line of defence, an event counts only if its path, resolved, is the same path
inside the same input folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import stat
import threading
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence
from functools import partial
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from watchfiles._rust_notify import RustNotify

from geoingest import logs
from geoingest.config import InputRoot
from geoingest.metrics import Children, Metrics
from geoingest.settle import Settler
from geoingest.walk import Entry, FolderWalk, Names, Root, folders_of, relative_text

if TYPE_CHECKING:
    pass

log = structlog.get_logger()

R = TypeVar("R")

# Event batching: a batch closes after 50 ms of quiet, or after 400 ms of
# steady changes. watchfiles' own 1.6 s would add up to 1.6 s to the latency of
# every file while files arrive without a pause.
_DEBOUNCE_MS = 400
_STEP_MS = 50
_TIMEOUT_MS = 1000
_POLL_DELAY_MS = 300
_NS = 1_000_000_000
# A file a walk finds without an event is counted as missed once this long has
# passed since its last change without an event arriving for it.
_CONFIRM_S = _DEBOUNCE_MS / 1000 + 0.4
# How old a walk's stat may get (while the walk waits on a full queue) before
# it is taken again.
_STALE_S = 0.5
_REARM_DELAY_S = 1.0
_GAUGE_PERIOD_S = 1.0

_ADDED, _MODIFIED, _DELETED = 1, 2, 3
_VIA = {
    None: "backfill",
    "new_directory": "watch",
    "periodic": "rescan",
    "watcher_restart": "rescan",
}


class Candidate:
    """A complete file, handed on for ingest.

    Discovery makes one for every file it hands on, so it keeps the path as
    the text it found and builds the ``Path`` only when something asks.
    Candidates compare by identity: each stands for one sighting of a file.

    Attributes:
        root: The input folder it was found in.
        path_text: Its absolute path, inside ``root.path``, as text.
        size: Its size in bytes, from the stat that found it complete.
        mtime_ns: Its modification time in nanoseconds, from the same stat.
        via: How it was first seen: ``backfill``, ``watch`` or ``rescan``.

    Example:
        >>> root = InputRoot("drop", Path("/srv/drop"))
        >>> c = Candidate(root, "/srv/drop/a/b.geojson", 3, 0, "watch")
        >>> c.path, c.rel_text
        (PosixPath('/srv/drop/a/b.geojson'), 'a/b.geojson')
    """

    __slots__ = ("_path", "_rel_text", "mtime_ns", "path_text", "root", "size", "via")

    def __init__(
        self, root: InputRoot, path: str | Path, size: int, mtime_ns: int, via: str
    ) -> None:
        self.root = root
        self.path_text = str(path)
        self.size = size
        self.mtime_ns = mtime_ns
        self.via = via
        self._path = path if isinstance(path, Path) else None
        self._rel_text: str | None = None

    def __repr__(self) -> str:
        return f"Candidate({self.root.name!r}, {self.path_text!r}, {self.size}, {self.via!r})"

    @property
    def path(self) -> Path:
        """Its absolute path."""
        if self._path is None:
            self._path = Path(self.path_text)
        return self._path

    @property
    def rel_text(self) -> str:
        """The path relative to the input folder, as text (worked out once)."""
        if self._rel_text is None:
            # Discovery builds every path by joining names onto the input
            # folder's, so cutting the text is enough.
            rel = relative_text(self.path_text, str(self.root.path).rstrip("/"))
            self._rel_text = rel if rel is not None else str(self.path.relative_to(self.root.path))
        return self._rel_text

    @property
    def rel(self) -> PurePath:
        """The path relative to the input folder."""
        return PurePath(self.rel_text)


async def _in_thread(func: Callable[[], R], wait_s: float | None = None) -> R:
    """Run ``func`` in a worker thread; if cancelled, let the thread finish first.

    A thread cannot be interrupted, and the objects it uses (a folder being
    read, the watcher) must not be closed under it.
    """
    job = asyncio.ensure_future(asyncio.to_thread(func))
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        await asyncio.wait([job], timeout=wait_s)
        raise


class Discovery:
    """Finds complete input files and puts them on a bounded queue, each once.

    An input file is a regular file whose name matches one of ``patterns``
    and none of ``excludes`` (tried on the name and on the path relative to
    the input folder), whose name does not start with a dot nor end in
    ``.tmp`` or ``.part``, and which is not inside a hidden or excluded
    folder. Symlinks, FIFOs, sockets and devices are skipped unopened.

    ``skipped_files`` counts an entry where it is first met: by the backfill,
    by the walk of a new folder, or by an event reporting it added. Names that
    match no pattern, and hidden or excluded folders, are ignored uncounted.

    Args:
        roots: The input folders.
        queue: Where complete files go; a full queue pauses discovery.
        metrics: Where the discovery metrics are counted.
        patterns: Globs on the file name; a file must match one.
        excludes: Globs on the name or the path relative to the input folder;
            a file or folder matching one is skipped.
        settle_s: How long a file's size and mtime must stay unchanged.
        rescan_interval_s: Time between reconciliation walks while watching.
        watch: Watch the folders; without it only the backfill walk runs.
        force_polling: Poll instead of using inotify (network filesystems).
    """

    def __init__(
        self,
        roots: Sequence[InputRoot],
        queue: asyncio.Queue[Candidate],
        metrics: Metrics,
        *,
        patterns: Sequence[str] = ("*.geojson",),
        excludes: Sequence[str] = (),
        settle_s: float = 1.0,
        rescan_interval_s: float = 60.0,
        watch: bool = True,
        force_polling: bool = False,
    ) -> None:
        self._roots = [Root.of(r) for r in roots]
        self._names = Names(tuple(patterns), tuple(excludes))
        self._queue, self._metrics = queue, metrics
        self._rescan_interval_s = rescan_interval_s
        self._watch, self._force_polling = watch, force_polling
        self.watching = asyncio.Event()
        self.backfill_done = asyncio.Event()

        # Where each path is: settling, claimed, or remembered with (size, mtime_ns, epoch).
        self._settler: Settler[tuple[Root, str]] = Settler(settle_s)
        self._claimed: dict[str, Candidate] = {}
        self._remembered: dict[str, tuple[int, int, int]] = {}
        # Whether a remembered file was ever forgotten while it may still be in
        # place: only then can a walk meet a file this run has committed.
        self.forgot_kept_files = False
        self._epoch = 0
        # Claimed paths that had an event meanwhile, and released ones to look at again.
        self._dirty: set[str] = set()
        self._recheck: dict[str, tuple[Root, str]] = {}
        # Files a walk found before any event: path -> (walk reason, when to count it missed).
        self._unconfirmed: dict[str, tuple[str, float]] = {}

        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._stopped = asyncio.Event()
        self._changed = asyncio.Event()
        self._walks = 0
        self._thread_stop = threading.Event()
        self._rearm = False
        # The watcher, the folders it watches, and folders met since it was armed.
        self._notify: RustNotify | None = None
        self._watched: set[str] = set()
        self._unwatched: set[str] = set()
        self._extend_not_before = 0.0
        self._unwalked: set[str] = set()
        self._identities: dict[str, tuple[int, int] | None] = {}
        self._identities_checked = 0.0
        self._events_seen_at = 0.0
        self._walk_errors = 0
        self._discovered = Children(metrics.files_discovered)

    # Lifecycle.

    async def run(self) -> None:
        """Arm the watcher, walk the inputs, then follow events until stopped."""
        try:
            if self._watch and not self._stopping:
                self._spawn(self._watch_loop())
                await self._wait_for(self.watching)
            if self._stopping:
                return
            self.watching.set()
            self._spawn(self._backfill_then_reconcile())
            self._spawn(self._settle_loop())
            self._spawn(self._gauge_loop())
            await self._wait_for(self._stopped)
        finally:
            await self._halt()

    def stop(self) -> None:
        """Stop taking files: nothing is put on the queue after this returns."""
        self._stopping = True
        self._thread_stop.set()
        for task in self._tasks:
            task.cancel()
        self._stopped.set()

    def idle(self) -> bool:
        """Say whether the backfill is done and no file is settling or claimed."""
        busy = self._settler or self._claimed or self._recheck or self._walks or self._unwatched
        return self.backfill_done.is_set() and not busy

    async def wait_idle(self) -> None:
        """Wait until :meth:`idle` is true."""
        while not self.idle():
            self._changed.clear()
            await self._changed.wait()

    def release(self, candidate: Candidate, *, remember: bool) -> None:
        """Take back a file the pipeline is done with.

        Args:
            candidate: The file, as it was taken from the queue.
            remember: True if it stays in place and must not be ingested again
                while its size and mtime are unchanged; False if it is gone or
                should be looked at again.
        """
        key = candidate.path_text
        if self._claimed.get(key) is not candidate:
            log.warning("release_unknown", path=key)
            return
        del self._claimed[key]
        # Without a watch there is no later walk: the backfill meets each file
        # once, and remembering the files would only grow with their number.
        if remember and self._watch:
            self._remembered[key] = (candidate.size, candidate.mtime_ns, self._epoch)
        # A file that is not remembered, or had an event while it was claimed, is
        # stat-ed again: it may be back, or rewritten while it was being read.
        dirty = key in self._dirty
        self._dirty.discard(key)
        root = self._root_named(candidate.root.name)
        if (dirty or not remember) and root is not None:
            self._recheck[key] = (root, candidate.via)
        self._changed.set()

    def update_roots(
        self, roots: Sequence[InputRoot], patterns: Sequence[str], excludes: Sequence[str]
    ) -> None:
        """Switch to new input folders and globs; the watcher is rebuilt and all walked.

        Folders new to the list are walked as a backfill; the others get a
        ``watcher_restart`` walk, since events are lost while re-arming.
        """
        old = {r.spec.name for r in self._roots}
        self._roots = [Root.of(r) for r in roots]
        self._names = Names(tuple(patterns), tuple(excludes))
        self._unwalked |= {r.spec.name for r in self._roots} - old
        self._forget_outside_roots()
        self._rearm = True
        self._thread_stop.set()

    async def rescan(self, reason: str = "periodic") -> int:
        """Walk every input folder now; return how many files it found new.

        Args:
            reason: The ``watch_rescans`` label: ``periodic`` or ``watcher_restart``.
        """
        found = 0
        for root in list(self._roots):
            backfill = root.spec.name in self._unwalked
            self._unwalked.discard(root.spec.name)
            if not backfill:
                self._metrics.watch_rescans.labels(reason=reason).inc()
            found += await self._walk(root, root.top, None if backfill else reason)
        return found

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    async def _wait_for(self, event: asyncio.Event) -> None:
        """Wait for ``event`` or for stop(); a task that fails meanwhile raises here."""
        waiter = asyncio.ensure_future(event.wait())
        stopped = asyncio.ensure_future(self._stopped.wait())
        pending: set[asyncio.Future[Any]] = {waiter, stopped, *self._tasks}
        try:
            while not (waiter.done() or stopped.done()):
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if not task.cancelled() and (exc := task.exception()) is not None:
                        raise exc
        finally:
            waiter.cancel()
            stopped.cancel()

    async def _halt(self) -> None:
        """Cancel every task and wait for them, threads included."""
        self._stopping = True
        self._thread_stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    # Walks.

    async def _backfill_then_reconcile(self) -> None:
        """Walk every input folder once, then reconcile periodically while watching."""
        started = time.monotonic()
        found = 0
        for root in list(self._roots):
            self._unwalked.discard(root.spec.name)
            found += await self._walk(root, root.top, None)
        self.backfill_done.set()
        self._changed.set()
        log.info("backfill_finished", files=found, duration_s=_since(started))
        while self._watch:
            await asyncio.sleep(self._rescan_interval_s)
            await self._reconcile()

    async def _reconcile(self) -> None:
        """Walk everything, then forget remembered files the walk no longer met.

        A walk that could not read a folder forgets nothing. An input folder
        that is an empty mount point while its filesystem is away does look
        empty, and what was remembered in it is then forgotten.
        """
        started, errors = time.monotonic(), self._walk_errors
        self._epoch += 1
        found = await self.rescan("periodic")
        if self._walk_errors == errors:
            gone = [k for k, v in self._remembered.items() if v[2] < self._epoch]
            for key in gone:
                del self._remembered[key]
            self.forgot_kept_files |= bool(gone)
        log.debug("rescan_finished", reason="periodic", files=found, duration_s=_since(started))

    async def _walk(
        self, root: Root, top: str, reason: str | None, *, shallow: bool = False
    ) -> int:
        """Walk the folder ``top`` of ``root``; return how many files were new to discovery.

        Args:
            root: The input folder being walked.
            top: The folder to start from, ``root.top`` or one inside it.
            reason: None for a backfill, else the ``watch_rescans`` reason.
            shallow: Look into ``top`` alone, again, and count no skips: it was
                walked before it was watched.
        """
        via, found = _VIA[reason], 0
        self._walks += 1
        try:
            async with contextlib.aclosing(self._scan(root, top, shallow)) as entries:
                async for entry in entries:
                    if entry.kind != "file":
                        if reason in (None, "new_directory") and not shallow:
                            self._skip(entry.kind, entry.path)
                        continue
                    fresh, cand = self._take(root, entry.path, entry.size, entry.mtime_ns, via)
                    if fresh and reason is not None:
                        self._unconfirm(entry, reason)
                    found += fresh
                    if cand is not None:
                        await self._hand_on(cand)
        finally:
            self._walks -= 1
            self._changed.set()
        return found

    async def _scan(self, root: Root, top: str, shallow: bool) -> AsyncGenerator[Entry, None]:
        """Yield the files and skips under ``top``, keeping at most one folder open.

        A folder named like an input file is walked, and yielded as a skip.
        """
        folders = FolderWalk(top, lambda path: root.rel(path) or "", self._names, shallow=shallow)
        try:
            while not folders.done:
                visits, read_at = await _in_thread(folders.read), time.monotonic()
                for visit in visits:
                    if self._watch and visit.folder not in self._watched:
                        self._unwatched.add(visit.folder)
                    if visit.error is not None:
                        self._walk_failed(root, visit.folder, visit.error)
                    for entry in visit.entries:
                        if entry.kind == "dir":
                            if self._named_like_a_file(root, entry.path):
                                yield Entry(entry.path, "not-regular")
                        elif (item := _refresh(entry, read_at)) is not None:
                            yield item
        finally:
            folders.close()

    def _walk_failed(self, root: Root, folder: str, exc: OSError) -> None:
        # A folder removed during the walk is no error; a missing input folder is.
        vanished = isinstance(exc, FileNotFoundError | NotADirectoryError)
        if folder == root.top or not vanished:
            self._walk_errors += 1
            log.warning("walk_failed", path=folder, error=str(exc))

    def _named_like_a_file(self, root: Root, path: str) -> bool:
        """Say whether a folder's name is one an input file would have."""
        rel = root.rel(path) or ""
        return self._names.file_verdict(rel.rpartition("/")[2], rel) is None

    def _unconfirm(self, entry: Entry, reason: str) -> None:
        """Note a file a walk found first; it counts as missed unless an event follows."""
        if not self._watch:
            return
        deadline = entry.ctime_ns / _NS + _CONFIRM_S
        if deadline <= self._events_seen_at:
            self._metrics.watch_missed_files.labels(reason=reason).inc()
        else:
            self._unconfirmed[entry.path] = (reason, deadline)

    def _count_missed(self) -> None:
        """Count as missed the walk-found files whose events are now overdue."""
        seen_at = self._events_seen_at
        overdue = [k for k, (_, deadline) in self._unconfirmed.items() if deadline <= seen_at]
        for key in overdue:
            reason, _ = self._unconfirmed.pop(key)
            self._metrics.watch_missed_files.labels(reason=reason).inc()
        if overdue:
            log.info("watch_missed_files", files=len(overdue))

    # The watcher.

    async def _watch_loop(self) -> None:
        """Arm the watcher and follow it; rebuild it and walk whenever it ends."""
        first = True
        while True:
            self._notify = await self._arm(first)
            try:
                if not first:
                    started = time.monotonic()
                    found = await self.rescan("watcher_restart")
                    log.info(
                        "rescan_finished",
                        reason="watcher_restart",
                        files=found,
                        duration_s=_since(started),
                    )
                first = False
                await self._follow()
            finally:
                with contextlib.suppress(RuntimeError):
                    self._notify.close()

    async def _arm(self, first: bool) -> RustNotify:
        """Start watching every input folder that exists; retry until it works.

        Raises:
            OSError: On the first attempt, if the watcher cannot be armed for a
                reason other than a missing folder (for example the inotify
                watch limit).
        """
        if first:
            # Every folder there is now is watched before the first walk.
            for root in self._roots:
                self._unwatched.update(await _in_thread(partial(folders_of, root, self._names)))
        while True:
            self._thread_stop, self._rearm = threading.Event(), False
            identities = {r.top: _identity(r.top) for r in self._roots}
            paths = [top for top, ident in identities.items() if ident is not None]
            wanted = self._watched | self._unwatched | set(paths)
            try:
                notify, self._watched = await _in_thread(
                    partial(_watcher, wanted, self._force_polling)
                )
            except OSError as exc:
                if first and not isinstance(exc, FileNotFoundError):
                    raise
                log.warning("watcher_arm_failed", error=str(exc))
                await asyncio.sleep(_REARM_DELAY_S)
                continue
            self._unwatched -= wanted
            self._identities, self._identities_checked = identities, time.monotonic()
            missing = sorted(r.spec.name for r in self._roots if identities[r.top] is None)
            log.info("watcher_armed", roots=len(paths), folders=len(self._watched), missing=missing)
            self.watching.set()
            return notify

    async def _follow(self) -> None:
        """Handle the watcher's batches until it fails or has to be rebuilt."""
        while not self._rearm:
            assert self._notify is not None  # armed by _watch_loop
            watch = self._notify.watch
            wait = partial(watch, _DEBOUNCE_MS, _STEP_MS, _TIMEOUT_MS, self._thread_stop)
            try:
                batch = await _in_thread(wait, wait_s=2.0)
            except Exception as exc:  # anything from the watcher ends it; rebuild
                log.warning("watcher_failed", error=repr(exc))
                await asyncio.sleep(_REARM_DELAY_S)
                return
            returned_at = time.time()
            if isinstance(batch, set):
                await self._on_changes(batch)
            self._events_seen_at = returned_at
            if self._roots_moved():
                return
            if self._unwatched and time.monotonic() >= self._extend_not_before:
                await self._watch_more({})

    async def _watch_more(self, new_dirs: dict[str, Root]) -> None:
        """Watch the folders met since the watcher was armed, then walk them.

        Folders an event reported new are walked whole. Folders a walk met are
        only looked into again, for files created before they were watched.
        """
        self._unwatched.update(new_dirs)
        for path in sorted(await self._extend() - new_dirs.keys()):
            located = self._locate(path)
            if located is not None:
                await self._walk(located[0], path, "new_directory", shallow=True)
        for path, root in new_dirs.items():
            self._metrics.watch_rescans.labels(reason="new_directory").inc()
            await self._walk(root, path, "new_directory")

    async def _extend(self) -> set[str]:
        """Arm a watcher on every folder met so far, then retire the old one.

        Both watch for a moment, so no event is lost between them; the old
        one's last events are handled like any others.

        Returns:
            The folders now watched that were not before.
        """
        added, self._unwatched = self._unwatched, set()
        added = await _in_thread(partial(_readable_folders, added))
        if not added:
            return set()
        arm = partial(_watcher, self._watched | added, self._force_polling)
        try:
            notify, watched = await _in_thread(arm)
        except OSError as exc:
            # Their files are still found by the reconciliation walks.
            self._unwatched |= added
            self._extend_not_before = time.monotonic() + self._rescan_interval_s
            log.warning("watcher_extend_failed", folders=len(added), error=str(exc))
            return set()
        old, self._notify, self._watched = self._notify, notify, watched
        assert old is not None  # only a running watcher is extended
        try:
            last = await _in_thread(partial(old.watch, _DEBOUNCE_MS, _STEP_MS, 1, None), 2.0)
        except Exception as exc:  # the old watcher broke: its events are lost, walk all
            log.warning("watcher_failed", error=repr(exc))
            self._rearm = True
            last = None
        finally:
            with contextlib.suppress(RuntimeError):
                old.close()
        if isinstance(last, set):
            await self._on_changes(last)
        return added & watched

    def _roots_moved(self) -> bool:
        """Say whether an input folder vanished, appeared or was replaced (checked each second).

        The watcher reports nothing inside a folder deleted and created again.
        """
        now = time.monotonic()
        if now - self._identities_checked < 1.0:
            return False
        self._identities_checked = now
        current = {r.top: _identity(r.top) for r in self._roots}
        if current == self._identities:
            return False
        log.warning("input_folder_changed", folders=sorted(self._names_of_changed(current)))
        return True

    def _names_of_changed(self, current: dict[str, tuple[int, int] | None]) -> set[str]:
        return {r.spec.name for r in self._roots if current[r.top] != self._identities.get(r.top)}

    async def _on_changes(self, batch: set[tuple[int, str]]) -> None:
        """Handle one batch of changes, then walk the folders it reported as new."""
        kinds: dict[str, int] = {}
        for change, path in batch:
            kinds[path] = kinds.get(path, 0) | 1 << change
        parents: dict[tuple[str, str], str | None] = {}
        new_dirs: dict[str, Root] = {}
        for path in sorted(kinds):
            found = await self._on_change(path, kinds[path], parents)
            if found is not None and not _under_any(path, new_dirs):
                new_dirs[path] = found
        if new_dirs:
            await self._watch_more(new_dirs)
        self._changed.set()

    async def _on_change(
        self, path: str, kinds: int, parents: dict[tuple[str, str], str | None]
    ) -> Root | None:
        """Handle the changes of one path; return its root if it is a new folder to walk."""
        located = self._locate(path)
        if located is None:
            if kinds & 1 << _DELETED and any(path == r.top for r in self._roots):
                # The watch on a deleted input folder is gone for good, even if a
                # folder of the same name (and often the same inode) comes back.
                self._rearm = True
            return None
        root, rel = located
        added = bool(kinds & 1 << _ADDED)
        if kinds & (1 << _ADDED | 1 << _MODIFIED):
            self._unconfirmed.pop(path, None)
        entry = self._event_entry(root, path, rel, parents)
        if entry is None or entry.kind == "":
            return None
        if entry.kind == "dir":
            if added and self._named_like_a_file(root, path):
                self._skip("not-regular", path)
            return root if added else None
        if entry.kind != "file":
            if added:
                self._skip(entry.kind, path)
            return None
        _, cand = self._take(root, path, entry.size, entry.mtime_ns, "watch", event=True)
        if cand is not None:
            await self._hand_on(cand)
        return None

    def _event_entry(
        self, root: Root, path: str, rel: str, parents: dict[tuple[str, str], str | None]
    ) -> Entry | None:
        """Stat an event's path and say what it is; None if it is gone."""
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            self._forget(path)
            self._settler.forget(path)
            return None
        return self._classify(root, path, rel, st, parents)

    def _classify(
        self,
        root: Root,
        path: str,
        rel: str,
        st: os.stat_result,
        parents: dict[tuple[str, str], str | None],
    ) -> Entry:
        """Say what an event's path is, by the same rules as a walk."""
        parent, _, name = rel.rpartition("/")
        blocked = self._parent_verdict(root, parent, parents)
        if blocked is not None:
            return Entry(path, blocked)
        if stat.S_ISDIR(st.st_mode):
            return Entry(path, "dir" if self._names.walks_dir(name, rel) else "")
        verdict = self._names.file_verdict(name, rel)
        if stat.S_ISLNK(st.st_mode):
            counted = verdict is None or (verdict == "" and Path(path).is_dir())
            return Entry(path, "symlink" if counted else "")
        if verdict is not None:
            return Entry(path, verdict)
        if not stat.S_ISREG(st.st_mode):
            return Entry(path, "not-regular")
        return Entry(path, "file", st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _parent_verdict(
        self, root: Root, parent: str, cache: dict[tuple[str, str], str | None]
    ) -> str | None:
        """Say why a folder's contents are not ours, or None if they are.

        ``""`` means ignore quietly (a hidden or excluded folder); ``symlink``
        and ``outside-root`` mean the path only exists through a symlink.
        """
        key = (root.top, parent)
        if key in cache:
            return cache[key]
        verdict: str | None = None
        parts = parent.split("/") if parent else []
        if any(not self._names.walks_dir(p, "/".join(parts[: i + 1])) for i, p in enumerate(parts)):
            verdict = ""
        else:
            suffix = "/" + parent if parent else ""
            real = os.path.realpath(root.top + suffix)
            if real != root.real + suffix:
                inside = real == root.real or real.startswith(root.real + "/")
                verdict = "symlink" if inside else "outside-root"
        cache[key] = verdict
        return verdict

    def _locate(self, path: str) -> tuple[Root, str] | None:
        """Find the input folder ``path`` is lexically inside, and the path relative to it."""
        for root in self._roots:
            if (rel := root.rel(path)) is not None:
                return root, rel
        return None

    # Routing each sighting.

    def _take(
        self, root: Root, path: str, size: int, mtime_ns: int, via: str, *, event: bool = False
    ) -> tuple[bool, Candidate | None]:
        """Route one sighting of a file.

        Returns:
            Whether the file was new to discovery, and the candidate to hand on
            if it is complete (it is then claimed).
        """
        if self._known(path, size, mtime_ns, event=event):
            return False, None
        fresh = path not in self._settler
        tag = self._settler.observe(path, (root, via), size, mtime_ns, time.time())
        if tag is None:
            return fresh, None
        cand = Candidate(tag[0].spec, path, size, mtime_ns, tag[1])
        self._claimed[path] = cand
        return fresh, cand

    def _known(self, path: str, size: int, mtime_ns: int, *, event: bool) -> bool:
        """Say whether a file is claimed, or remembered with this size and mtime."""
        if path in self._claimed:
            if event:
                self._dirty.add(path)
            return True
        known = self._remembered.get(path)
        if known is None:
            return False
        if known[0] == size and known[1] == mtime_ns:
            if known[2] != self._epoch:
                self._remembered[path] = (size, mtime_ns, self._epoch)
            return True
        del self._remembered[path]
        return False

    async def _hand_on(self, cand: Candidate) -> None:
        """Put a claimed file on the queue, waiting while it is full."""
        try:
            await self._queue.put(cand)
        except asyncio.CancelledError:
            self._claimed.pop(cand.path_text, None)
            self._dirty.discard(cand.path_text)
            raise
        self._discovered(cand.root.name, cand.via).inc()
        if logs.enabled("debug"):
            log.debug("file_discovered", path=cand.path_text, via=cand.via, size=cand.size)

    def _skip(self, reason: str, path: str) -> None:
        self._metrics.skipped_files.labels(reason=reason).inc()
        log.debug("file_skipped", path=path, reason=reason)

    # The settle stage and the gauges.

    async def _settle_loop(self) -> None:
        """Re-stat settling files when due, and re-examine released ones."""
        tick = min(max(self._settler.settle_s / 4, 0.02), 0.25)
        while True:
            await asyncio.sleep(tick)
            for path in self._settler.due(time.time()):
                tag = self._settler.tag(path)
                if tag is not None:
                    await self._restat(tag[0], path, tag[1])
            while self._recheck:
                path, (root, via) = self._recheck.popitem()
                await self._restat(root, path, via)
            self._changed.set()

    async def _restat(self, root: Root, path: str, via: str) -> None:
        """Stat a file again and route the result; forget it if it is gone."""
        try:
            st = os.lstat(path)
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            self._settler.forget(path)
            self._forget(path)
            return
        _, cand = self._take(root, path, st.st_size, st.st_mtime_ns, via)
        if cand is not None:
            await self._hand_on(cand)

    async def _gauge_loop(self) -> None:
        """Publish the backlog gauges and count overdue missed files, every second."""
        while True:
            self._publish_backlog()
            self._count_missed()
            await asyncio.sleep(_GAUGE_PERIOD_S)

    def _publish_backlog(self) -> None:
        """Set the backlog gauges from the settling and claimed files."""
        counts = {r.spec.name: 0 for r in self._roots}
        oldest: dict[str, int] = {}
        claimed = ((c.root.name, c.mtime_ns) for c in self._claimed.values())
        settling = ((tag[0].spec.name, mtime) for _, tag, mtime in self._settler.items())
        for source, mtime_ns in itertools.chain(claimed, settling):
            counts[source] = counts.get(source, 0) + 1
            oldest[source] = min(mtime_ns, oldest.get(source, mtime_ns))
        for source, count in counts.items():
            self._metrics.backlog_files.labels(source=source).set(count)
            timestamp = oldest.get(source, 0) / _NS
            self._metrics.backlog_oldest_file_timestamp_seconds.labels(source=source).set(timestamp)
        self._metrics.queue_length.set(self._queue.qsize())

    # Reloading.

    def _root_named(self, name: str) -> Root | None:
        return next((r for r in self._roots if r.spec.name == name), None)

    def _forget_outside_roots(self) -> None:
        """Drop settling, remembered and unconfirmed paths no longer in any input folder."""

        def outside(path: str) -> bool:
            return all(r.rel(path) is None for r in self._roots)

        for path in [k for k, _, _ in self._settler.items() if outside(k)]:
            self._settler.forget(path)
        self._watched = {path for path in self._watched if not outside(path)}
        self._unwatched = {path for path in self._unwatched if not outside(path)}
        for table in (self._remembered, self._unconfirmed):
            for path in [k for k in table if outside(k)]:
                del table[path]
                self.forgot_kept_files |= table is self._remembered

    def _forget(self, path: str) -> None:
        """Forget a remembered file that is gone, or is no longer a regular file."""
        if self._remembered.pop(path, None) is not None:
            self.forgot_kept_files = True


def _watcher(wanted: set[str], polling: bool) -> tuple[RustNotify, set[str]]:
    """Arm a watcher on each of ``wanted`` that is still a folder geoingest may read.

    Each folder is watched on its own, not recursively: a recursive watch
    follows symlinked folders, which the walks never enter.

    Returns:
        The watcher and the folders it watches.
    """
    present = _readable_folders(wanted)
    notify = RustNotify(sorted(present), False, polling, _POLL_DELAY_MS, False, False)
    return notify, present


def _readable_folders(paths: set[str]) -> set[str]:
    """Return those of ``paths`` that are folders, not symlinks to one, that may be read."""

    def readable(path: str) -> bool:
        try:
            st = os.lstat(path)
        except OSError:
            return False
        return stat.S_ISDIR(st.st_mode) and os.access(path, os.R_OK | os.X_OK)

    return {path for path in paths if readable(path)}


def _identity(path: str) -> tuple[int, int] | None:
    """Return a folder's (device, inode), or None if it is missing."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _refresh(entry: Entry, read_at: float) -> Entry | None:
    """Return a walk entry, stat-ed again if it was read long ago; None if it is gone."""
    if entry.kind != "file" or time.monotonic() - read_at <= _STALE_S:
        return entry
    try:
        st = os.lstat(entry.path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return Entry(entry.path, "file", st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _under_any(path: str, folders: dict[str, Root]) -> bool:
    """Say whether ``path`` is inside one of ``folders``."""
    parent = path.rpartition("/")[0]
    while parent:
        if parent in folders:
            return True
        parent = parent.rpartition("/")[0]
    return False


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
