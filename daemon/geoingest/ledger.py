"""The ledger: what geoingest knows about every source file, on SQLite.

Each source file is recorded by the sha256 of its content, computed by the
worker in the same pass that reads it, with its input folder, relative path,
size and modification time, and the state it has reached:

``in_batch``
    Its features are in a batch that is being committed. These rows are the
    batch's manifest, written before the batch's rename into place.
``committed``
    The batch's rename happened: the features are durable.
``disposed``
    The source was kept, moved or deleted after the commit.
``quarantined``
    The file was rejected and moved to the quarantine folder.
``duplicate``
    Its content had already been committed; it was disposed of without output.

The database runs in WAL mode with ``synchronous=FULL``: a transaction that
returned is on disk. Writes run in worker threads through one connection under
a lock; look-ups on the event loop use a second, read-only connection, which
WAL lets proceed while a write is being synced. In front of those look-ups,
two :class:`~geoingest.sieve.Sieve` filters of the committed contents and
files answer most of them, the ones whose answer is no, without a query.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from geoingest.sieve import Sieve, digest

LEDGER_FILE = "ledger.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL,
    source TEXT NOT NULL,
    path BLOB NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    state TEXT NOT NULL,
    batch TEXT,
    detail TEXT,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_by_sha256 ON files (sha256);
CREATE INDEX IF NOT EXISTS files_by_path ON files (source, path);
CREATE INDEX IF NOT EXISTS files_by_batch ON files (batch);
CREATE INDEX IF NOT EXISTS files_by_state ON files (state, updated);
"""

DONE_STATES = ("committed", "disposed", "duplicate")
_DONE = "state IN (?, ?, ?)"  # a file whose features are committed, or were already
_KEY_COLUMNS = "sha256, source, path, size, mtime_ns"


@dataclass(frozen=True, slots=True)
class Entry:
    """One file the ledger knows about."""

    sha256: str
    source: str
    path: PurePath
    size: int
    mtime_ns: int
    state: str
    batch: str | None
    detail: str | None
    updated: float


@dataclass(frozen=True, slots=True)
class FileKey:
    """A file as a batch manifest names it."""

    sha256: str
    source: str
    path: PurePath | str
    size: int
    mtime_ns: int


FileState = tuple[PurePath | str, int, int]
"""A file's path relative to its input folder, its size and its mtime in nanoseconds."""


def _encode(path: PurePath | str) -> bytes:
    return os.fsencode(path)


def _decode(path: bytes) -> PurePath:
    return PurePath(bytes(path).decode("utf-8", "surrogateescape"))


def _content_key(sha256: str) -> bytes | None:
    """Return a sha256 as the sieve of contents takes it, or None if it is not one."""
    try:
        key = bytes.fromhex(sha256)
    except ValueError:
        return None
    return key if len(key) == 32 else None


def _file_key(source: str, path: bytes, size: int, mtime_ns: int) -> bytes:
    """Return a file's identity as the sieve of files takes it."""
    return digest(
        b"\0".join((source.encode("utf-8", "surrogateescape"), path, b"%d %d" % (size, mtime_ns)))
    )


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        uri = f"file:{path}?mode=ro"
        connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
    else:
        connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA busy_timeout=5000")
    return connection


class Ledger:
    """The ledger of one state folder.

    Args:
        state_dir: The folder that holds ``ledger.sqlite3``; it must exist.
        readonly: Open an existing ledger for look-ups only, changing nothing.

    Example:
        >>> import tempfile
        >>> ledger = Ledger(Path(tempfile.mkdtemp()))
        >>> key = FileKey("ab" * 32, "drop", PurePath("a.geojson"), 10, 1)
        >>> ledger.begin_batch("batch-1.geojson", [key])
        >>> ledger.mark_batch("batch-1.geojson", "committed")
        >>> ledger.has_content("ab" * 32)
        True
        >>> ledger.close()
    """

    def __init__(self, state_dir: Path, *, readonly: bool = False) -> None:
        self.path = state_dir / LEDGER_FILE
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        # Only this writer commits files, so only its sieves can be kept complete.
        self._sieves: tuple[Sieve, Sieve] | None = None
        if not readonly:
            self._db = _connect(self.path)
            self._db.executescript(_SCHEMA)
            self._sieves = (Sieve(), Sieve())
            done = self._db.execute(f"SELECT {_KEY_COLUMNS} FROM files WHERE {_DONE}", DONE_STATES)
            self._sift(done)
        self._reader = _connect(self.path, readonly=True)

    def close(self) -> None:
        """Close the connections."""
        self._reader.close()
        if self._db is not None:
            self._db.close()

    # Writes: each is one transaction, durable when it returns.

    def begin_batch(self, batch: str, files: Sequence[FileKey]) -> None:
        """Record a batch's manifest before the batch is renamed into place."""
        now = time.time()
        rows = [
            (f.sha256, f.source, _encode(f.path), f.size, f.mtime_ns, "in_batch", batch, now)
            for f in files
        ]
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO files (sha256, source, path, size, mtime_ns, state, batch, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def mark_batch(self, batch: str, state: str) -> None:
        """Move every file of a batch to ``committed`` or ``disposed``."""
        with self._transaction() as db:
            db.execute(
                "UPDATE files SET state = ?, updated = ? WHERE batch = ?",
                (state, time.time(), batch),
            )
            # Only the move to committed adds to the sieves: a batch is disposed
            # of after its commit, in this process or before it opened the ledger.
            keys = []
            if state == "committed":
                rows = db.execute(f"SELECT {_KEY_COLUMNS} FROM files WHERE batch = ?", (batch,))
                keys = rows.fetchall()
        self._sift(keys)

    def forget_batch(self, batch: str) -> None:
        """Drop the manifest of a batch that never reached its rename."""
        with self._transaction() as db:
            db.execute("DELETE FROM files WHERE batch = ? AND state = 'in_batch'", (batch,))

    def record(self, key: FileKey, state: str, detail: str | None = None) -> None:
        """Record a file that left the pipeline outside a batch (quarantined, duplicate)."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO files (sha256, source, path, size, mtime_ns, state, detail, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key.sha256,
                    key.source,
                    _encode(key.path),
                    key.size,
                    key.mtime_ns,
                    state,
                    detail,
                    time.time(),
                ),
            )
        if state in DONE_STATES:
            self._sift([(key.sha256, key.source, _encode(key.path), key.size, key.mtime_ns)])

    def forget_path(self, source: str, path: PurePath, state: str) -> int:
        """Remove the rows of a file in one state (a quarantined file taken back)."""
        with self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM files WHERE source = ? AND path = ? AND state = ?",
                (source, _encode(path), state),
            )
            return cursor.rowcount

    def compact(self, older_than_s: float) -> int:
        """Remove rows of finished files last updated more than ``older_than_s`` ago."""
        cutoff = time.time() - older_than_s
        with self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM files WHERE state IN ('disposed', 'duplicate', 'quarantined')"
                " AND updated < ?",
                (cutoff,),
            )
            return cursor.rowcount

    # Look-ups: fast, safe to call from the event loop.

    def has_content(self, sha256: str) -> bool:
        """Whether content with this hash is already committed."""
        return bool(self.committed_contents([sha256]))

    def has_file(self, source: str, path: PurePath, size: int, mtime_ns: int) -> bool:
        """Whether this very file (path, size and mtime) is already committed."""
        return bool(self.committed_files(source, [(path, size, mtime_ns)]))

    def committed_contents(self, hashes: Collection[str]) -> set[str]:
        """Return those of ``hashes`` whose content is already committed."""
        if self._sieves is not None:
            sieve = self._sieves[0]
            hashes = [h for h in hashes if (key := _content_key(h)) is None or key in sieve]
        if not hashes:
            return set()
        marks = ", ".join("?" * len(hashes))
        rows = self._reader.execute(
            f"SELECT DISTINCT sha256 FROM files WHERE sha256 IN ({marks}) AND {_DONE}",
            (*hashes, *DONE_STATES),
        ).fetchall()
        return {str(row[0]) for row in rows}

    def holds_committed_files(self) -> bool:
        """Whether any file is known as committed (or as a duplicate of committed content)."""
        row = self._reader.execute(
            f"SELECT EXISTS (SELECT 1 FROM files WHERE {_DONE})", DONE_STATES
        )
        return bool(row.fetchone()[0])

    def committed_files(self, source: str, files: Collection[FileState]) -> set[FileState]:
        """Return those of ``files`` that are already committed, with this size and mtime."""
        # Each file by its row in the table: the path encoded once, for the sieve,
        # the query and the answer.
        asked = {
            (_encode(path), size, mtime_ns): (path, size, mtime_ns)
            for path, size, mtime_ns in files
        }
        if self._sieves is not None:
            sieve = self._sieves[1]
            asked = {row: f for row, f in asked.items() if _file_key(source, *row) in sieve}
        if not asked:
            return set()
        marks = ", ".join("?" * len(asked))
        rows = self._reader.execute(
            f"SELECT path, size, mtime_ns FROM files WHERE source = ? AND path IN ({marks})"
            f" AND {_DONE}",
            (source, *(path for path, _, _ in asked), *DONE_STATES),
        ).fetchall()
        found = [(bytes(path), size, mtime_ns) for path, size, mtime_ns in rows]
        return {asked[row] for row in found if row in asked}

    def batches_in(self, state: str) -> list[str]:
        """Names of batches with files in ``state``."""
        rows = self._reader.execute(
            "SELECT DISTINCT batch FROM files WHERE state = ? AND batch IS NOT NULL", (state,)
        ).fetchall()
        return [row[0] for row in rows]

    def batch_files(self, batch: str) -> list[Entry]:
        """Every file of one batch."""
        return list(self._select("WHERE batch = ?", (batch,)))

    def find(self, path_or_hash: str, limit: int = 50) -> list[Entry]:
        """Entries whose hash, or path relative to the input folder, matches."""
        return list(
            self._select(
                "WHERE sha256 = ? OR path = ? ORDER BY updated DESC LIMIT ?",
                (path_or_hash.lower(), path_or_hash.encode("utf-8", "surrogateescape"), limit),
            )
        )

    def recent(self, limit: int = 50) -> list[Entry]:
        """The most recently updated entries, newest first."""
        return list(self._select("ORDER BY updated DESC, id DESC LIMIT ?", (limit,)))

    def counts(self) -> dict[str, int]:
        """How many entries are in each state."""
        rows = self._reader.execute("SELECT state, COUNT(*) FROM files GROUP BY state")
        return {str(state): int(count) for state, count in rows.fetchall()}

    def _select(self, where: str, params: Iterable[object]) -> Iterator[Entry]:
        query = (
            "SELECT sha256, source, path, size, mtime_ns, state, batch, detail, updated"
            f" FROM files {where}"
        )
        for row in self._reader.execute(query, tuple(params)):
            sha256, source, path, size, mtime_ns, state, batch, detail, updated = row
            yield Entry(
                sha256,
                source,
                _decode(path),
                size,
                mtime_ns,
                state,
                batch,
                detail,
                updated,
            )

    def _sift(self, keys: Iterable[tuple[str, str, bytes, int, int]]) -> None:
        """Add committed files, as rows of :data:`_KEY_COLUMNS`, to the sieves."""
        if self._sieves is None:
            return
        contents, files = self._sieves
        for sha256, source, path, size, mtime_ns in keys:
            if (content := _content_key(sha256)) is not None:
                contents.add(content)
            files.add(_file_key(source, path, size, mtime_ns))

    def _transaction(self) -> _Transaction:
        if self._db is None:
            raise sqlite3.OperationalError("the ledger was opened read-only")
        return _Transaction(self._db, self._lock)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` under the writer lock, rolled back on error."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db = db
        self._lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        return self._db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self._db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self._lock.release()
