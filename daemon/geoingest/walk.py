"""Walking input folders: which entries are input files, read a chunk at a time.

The rules for names live here, shared by discovery's walks and events and by
``geoingest dry-run``: a file is an input file when its name matches a pattern
and no exclude, and it is not a dot-file or a ``.tmp``/``.part`` file. Hidden
and excluded folders are not walked. Symlinks are never followed: they are
reported as ``symlink`` entries, and anything that is not a regular file or a
folder as ``not-regular``.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING

from geoingest.config import InputRoot

if TYPE_CHECKING:
    from os import _ScandirIterator

# Entries read per trip to a worker thread.
_CHUNK = 256
_TEMP_SUFFIXES = (".tmp", ".part")


@dataclass(frozen=True, slots=True)
class Names:
    """Which names are input files, and which folders are walked."""

    patterns: tuple[str, ...]
    excludes: tuple[str, ...]

    def file_verdict(self, name: str, rel: str) -> str | None:
        """Return None for an input file, ``excluded`` for one we skip, ``""`` to ignore."""
        if not any(fnmatchcase(name, p) for p in self.patterns):
            return ""
        if name.startswith(".") or name.endswith(_TEMP_SUFFIXES) or self._excluded(name, rel):
            return "excluded"
        return None

    def walks_dir(self, name: str, rel: str) -> bool:
        """Say whether a folder is walked: hidden and excluded ones are not."""
        return not name.startswith(".") and not self._excluded(name, rel)

    def _excluded(self, name: str, rel: str) -> bool:
        return any(fnmatchcase(name, x) or fnmatchcase(rel, x) for x in self.excludes)


@dataclass(frozen=True, slots=True)
class Root:
    """An input folder with the forms of its path that checks need."""

    spec: InputRoot
    top: str
    real: str

    @classmethod
    def of(cls, root: InputRoot) -> Root:
        top = os.path.normpath(Path(root.path).absolute())
        return cls(InputRoot(root.name, Path(top)), top, os.path.realpath(top))

    def rel(self, path: str) -> str | None:
        """Return ``path`` relative to this folder, or None if it is not lexically inside."""
        return relative_text(path, self.top)


def relative_text(path: str, top: str) -> str | None:
    """Return ``path`` relative to the folder ``top``, or None if it is not lexically inside.

    Example:
        >>> relative_text("/srv/drop/a/b.geojson", "/srv/drop")
        'a/b.geojson'
        >>> relative_text("/srv/dropx", "/srv/drop") is None
        True
    """
    if path.startswith(top) and path[len(top) : len(top) + 1] == "/":
        return path[len(top) + 1 :]
    return None


@dataclass(frozen=True, slots=True)
class Entry:
    """One directory entry a walk met: a file to offer, a folder, or a skip."""

    path: str
    kind: str  # "file", "dir", or the skip reason
    size: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0


class DirReader:
    """Reads one folder in chunks, in a worker thread, classifying each entry."""

    def __init__(self, path: str, rel: str, names: Names) -> None:
        self.path, self.rel, self.names = path, rel, names
        self.done = False
        self._it: _ScandirIterator[str] | None = None

    def read(self) -> list[Entry]:
        """Return the next chunk of entries; sets ``done`` after the last one."""
        if self._it is None:
            self._it = os.scandir(self.path)
        out: list[Entry] = []
        for seen, entry in enumerate(self._it, 1):
            with contextlib.suppress(FileNotFoundError):
                item = self._classify(entry)
                if item is not None:
                    out.append(item)
            if seen >= _CHUNK:
                return out
        self.close()
        return out

    def close(self) -> None:
        """Close the folder; call only while no :meth:`read` is running."""
        self.done = True
        if self._it is not None:
            self._it.close()

    def _classify(self, entry: os.DirEntry[str]) -> Entry | None:
        rel = f"{self.rel}/{entry.name}" if self.rel else entry.name
        if entry.is_dir(follow_symlinks=False):
            return Entry(entry.path, "dir") if self.names.walks_dir(entry.name, rel) else None
        verdict = self.names.file_verdict(entry.name, rel)
        if entry.is_symlink():
            counted = verdict is None or (verdict == "" and entry.is_dir())
            return Entry(entry.path, "symlink") if counted else None
        if verdict is not None:
            return Entry(entry.path, verdict) if verdict else None
        st = entry.stat(follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            return Entry(entry.path, "not-regular")
        return Entry(entry.path, "file", st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass
class Visit:
    """What one trip of a :class:`FolderWalk` read in one folder."""

    folder: str
    entries: list[Entry]
    error: OSError | None = None


class FolderWalk:
    """A depth-first walk of one folder tree, read in trips of about a chunk of entries.

    Each :meth:`read` runs in a worker thread and reads on, folder after
    folder, until it holds a chunk's worth of entries: one trip to the thread
    for a few hundred entries, rather than one for every small folder. At most
    one folder is open at a time; a folder too big for one trip is read on in
    the next.

    Args:
        top: The folder to start from.
        rel: The path of a folder relative to its input folder ("" for the input folder).
        names: Which names are input files and which folders are walked.
        shallow: Read ``top`` alone, not the folders inside it.
    """

    def __init__(
        self, top: str, rel: Callable[[str], str], names: Names, *, shallow: bool = False
    ) -> None:
        self._todo: list[list[str]] = [[top]]
        self._rel, self._names, self._shallow = rel, names, shallow
        self._reader: DirReader | None = None
        self._subdirs: list[str] = []
        self.done = False

    def read(self) -> list[Visit]:
        """Read on until about a chunk of entries is in hand or the walk is over."""
        visits: list[Visit] = []
        seen = 0
        while seen < _CHUNK:
            reader = self._reader or self._open_next()
            if reader is None:
                self.done = True
                break
            visit = Visit(reader.path, [])
            visits.append(visit)
            try:
                visit.entries = reader.read()
            except OSError as exc:
                visit.error = exc
                self._finish_folder(descend=not self._shallow)
                continue
            self._subdirs += [entry.path for entry in visit.entries if entry.kind == "dir"]
            seen += len(visit.entries) + 1
            if reader.done:
                self._finish_folder(descend=not self._shallow)
        return visits

    def close(self) -> None:
        """Close the open folder; call only while no :meth:`read` is running."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self.done = True

    def _open_next(self) -> DirReader | None:
        while self._todo:
            if not self._todo[-1]:
                self._todo.pop()
                continue
            folder = self._todo[-1].pop()
            self._reader = DirReader(folder, self._rel(folder), self._names)
            return self._reader
        return None

    def _finish_folder(self, *, descend: bool) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if descend:
            self._todo.append(self._subdirs)
        self._subdirs = []


def walk(root: InputRoot, names: Names) -> Iterator[Entry]:
    """Yield every entry of one input folder, depth first, one folder open at a time.

    Folders themselves are not yielded; files, skips and their reasons are. A
    folder that vanishes during the walk is passed over; any other error is raised.
    """
    top = Root.of(root)
    folders = FolderWalk(top.top, lambda path: top.rel(path) or "", names)
    try:
        while not folders.done:
            for visit in folders.read():
                if visit.error is not None and not isinstance(
                    visit.error, FileNotFoundError | NotADirectoryError
                ):
                    raise visit.error
                yield from (entry for entry in visit.entries if entry.kind != "dir")
    finally:
        folders.close()


def folders_of(root: Root, names: Names) -> list[str]:
    """Return every folder of one input folder that walks enter, itself first.

    Only folder entries are looked at, by their type in the directory, so
    this costs no ``stat`` per file. Symlinks to folders are not entered.
    """
    found: list[str] = []
    pending = [root.top]
    while pending:
        path = pending.pop()
        found.append(path)
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    rel = entry.path[len(root.top) + 1 :]
                    if entry.is_dir(follow_symlinks=False) and names.walks_dir(entry.name, rel):
                        pending.append(entry.path)
        except OSError:
            continue  # gone or unreadable: its walk reports it
    return found
