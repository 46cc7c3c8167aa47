"""The worker processes: read, hash, parse, validate and transform files.

Parsing and the per-coordinate work hold the GIL, so they run in a process
pool and the event loop only ever waits on a future. A chunk of files costs
one call into the pool: the worker opens each file itself (a plain ``os.read``
is far cheaper than an asynchronous read from the event loop) and writes the
output bytes, already encoded, to the chunk's spool file (see
:mod:`geoingest.spool`), so the main process never handles them.
"""

from __future__ import annotations

import errno
import gc
import hashlib
import os
import signal
import stat
from dataclasses import dataclass
from typing import Any

from geoingest import crashpoints, spool

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
RECORD_SEPARATOR = b"\x1e"
# The rule of a file on which the check itself failed: a bug, kept for a person to see.
INTERNAL_ERROR = "internal-error"


@dataclass(frozen=True, slots=True)
class Job:
    """What a worker needs to process one file."""

    path: str
    size: int
    mtime_ns: int
    precision: int
    max_file_bytes: int
    output_format: str


@dataclass(slots=True)
class Ingested:
    """A valid file: its features, ready to be appended to a batch.

    The encoded features are either in ``body`` or, when ``spooled`` is set,
    in the chunk's spool file at ``(offset, length)`` and ``body`` is empty.
    """

    sha256: str
    size: int
    features: int
    body: bytes
    warnings: tuple[str, ...]
    spooled: tuple[int, int] | None = None

    @property
    def nbytes(self) -> int:
        """How many bytes its features take in a batch, separators aside."""
        return self.spooled[1] if self.spooled is not None else len(self.body)

    def __reduce__(self) -> tuple[type[Ingested], tuple[Any, ...]]:
        return Ingested, (
            self.sha256,
            self.size,
            self.features,
            self.body,
            self.warnings,
            self.spooled,
        )


@dataclass(slots=True)
class Rejected:
    """A file that breaks a rule and belongs in quarantine."""

    sha256: str
    size: int
    rule: str
    pointer: str
    message: str

    def __reduce__(self) -> tuple[type[Rejected], tuple[Any, ...]]:
        return Rejected, (self.sha256, self.size, self.rule, self.pointer, self.message)


@dataclass(slots=True)
class Unready:
    """A file that vanished or changed since it settled; ``vanished`` tells which."""

    vanished: bool
    reason: str

    def __reduce__(self) -> tuple[type[Unready], tuple[Any, ...]]:
        return Unready, (self.vanished, self.reason)


@dataclass(slots=True)
class Skipped:
    """Not a regular file once opened (a FIFO or socket swapped in, for example)."""

    reason: str

    def __reduce__(self) -> tuple[type[Skipped], tuple[Any, ...]]:
        return Skipped, (self.reason,)


@dataclass(slots=True)
class Failed:
    """An I/O error other than the file vanishing."""

    message: str

    def __reduce__(self) -> tuple[type[Failed], tuple[Any, ...]]:
        return Failed, (self.message,)


Result = Ingested | Rejected | Unready | Skipped | Failed
"""What a worker makes of a file. Results cross the process boundary by the
thousand, so each pickles as a plain call with its fields: the default for a
dataclass looks its fields up and sets them one by one on every load."""


def init_worker() -> None:
    """Set up a worker process: leave signals to the main process, tune the GC."""
    # Signals are the main process's business: Ctrl-C reaches the whole process
    # group, and a worker that died of it would break the pool mid-drain.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    # Parsed documents are short-lived and hold no cycles; the cyclic GC only
    # slows parsing down when many of them are alive at once.
    gc.freeze()
    gc.set_threshold(100_000, 50, 50)


@dataclass(frozen=True, slots=True)
class Options:
    """What every file of a chunk is processed with."""

    precision: int
    max_file_bytes: int
    output_format: str


FileRef = tuple[str, int, int]
"""A file as a chunk names it: its path, and its size and mtime when it settled."""


def process_chunk(files: list[FileRef], options: Options, spool_path: str = "") -> list[Result]:
    """Process the files of a chunk, one call into a worker for them all."""
    precision, limit, output_format = (
        options.precision,
        options.max_file_bytes,
        options.output_format,
    )
    jobs = [Job(path, size, mtime, precision, limit, output_format) for path, size, mtime in files]
    return process_files(jobs, spool_path)


def process_files(jobs: list[Job], spool_path: str = "") -> list[Result]:
    """Process a list of files in turn.

    With a ``spool_path``, the output of them all goes to that new file and
    each result says where its part lies. If the spool file cannot be written
    (a full disk, say), the output travels back in the results instead.
    """
    results = [process_file(job) for job in jobs]
    if not spool_path or not jobs:
        return results
    bodies = [r.body if isinstance(r, Ingested) else b"" for r in results]
    if not any(bodies):
        return results
    try:
        offsets = spool.write_chunk(spool_path, bodies, spool.separator(jobs[0].output_format))
    except OSError:
        return results
    return [
        _spooled(result, offset) if isinstance(result, Ingested) and result.body else result
        for result, offset in zip(results, offsets, strict=True)
    ]


def _spooled(result: Ingested, offset: int) -> Ingested:
    return Ingested(
        result.sha256,
        result.size,
        result.features,
        b"",
        result.warnings,
        (offset, len(result.body)),
    )


def process_file(job: Job) -> Result:
    """Read one file and turn it into output bytes or a rejection.

    Runs inside a worker process. Never raises for anything a file can do.
    """
    crashpoints.worker_reached(job.path.rpartition("/")[2])
    try:
        fd = os.open(job.path, _OPEN_FLAGS)
    except FileNotFoundError:
        return Unready(vanished=True, reason="vanished before it was opened")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Skipped(reason="symlink")
        if exc.errno == errno.ENXIO:  # a socket, which no one can open like a file
            return Skipped(reason="not-regular")
        return Failed(message=f"cannot open: {exc.strerror}")
    try:
        return _process_open_file(fd, job)
    except OSError as exc:
        return Failed(message=f"cannot read: {exc.strerror}")
    finally:
        os.close(fd)


def _process_open_file(fd: int, job: Job) -> Result:
    before = os.fstat(fd)
    if not stat.S_ISREG(before.st_mode):
        return Skipped(reason="not-regular")
    if before.st_size > job.max_file_bytes:
        return Rejected(
            sha256="",
            size=before.st_size,
            rule="file-too-large",
            pointer="",
            message=f"the file has {before.st_size} bytes, more than max_file_bytes "
            f"({job.max_file_bytes})",
        )
    raw = _read_all(fd, before.st_size, job.max_file_bytes)
    return _unsteady(fd, job, before, len(raw)) or _judge(raw, job)


def _unsteady(fd: int, job: Job, before: os.stat_result, nread: int) -> Unready | None:
    """Say why the bytes just read are not the file to judge, or None if they are.

    A file that grew, shrank or was rewritten while it was read, or since it
    settled, is not complete: it goes back to be settled again. A file renamed
    over or deleted during the read stays readable through the open descriptor,
    but what counts is what its name holds now.
    """
    after = os.fstat(fd)
    steady = (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    if not steady or nread != before.st_size:
        return Unready(vanished=False, reason="changed while it was read")
    if (before.st_size, before.st_mtime_ns) != (job.size, job.mtime_ns):
        return Unready(vanished=False, reason="changed after it settled")
    try:
        now = os.lstat(job.path)
    except FileNotFoundError:
        return Unready(vanished=True, reason="vanished while it was read")
    if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
        return Unready(vanished=False, reason="replaced while it was read")
    return None


def _read_all(fd: int, size: int, limit: int) -> bytes:
    chunks = []
    remaining = min(size, limit) + 1
    while remaining > 0:
        chunk = os.read(fd, remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _judge(raw: bytes, job: Job) -> Result:
    from geoingest.geojson import Accepted, ingest_document

    digest = hashlib.sha256(raw).hexdigest()
    try:
        outcome = ingest_document(raw, job.precision)
    except Exception as exc:  # a file that trips a bug is set aside, not retried forever
        return Rejected(
            sha256=digest,
            size=len(raw),
            rule=INTERNAL_ERROR,
            pointer="",
            message=f"geoingest failed on this file ({type(exc).__name__}: {exc})"[:300],
        )
    if isinstance(outcome, Accepted):
        return Ingested(
            sha256=digest,
            size=len(raw),
            features=len(outcome.features),
            body=encode_features(outcome.features, job.output_format),
            warnings=tuple(sorted({problem.rule for problem in outcome.warnings})),
        )
    first = outcome.problems[0]
    return Rejected(
        sha256=digest,
        size=len(raw),
        rule=first.rule,
        pointer=first.pointer,
        message=first.message,
    )


def encode_features(features: list[bytes], output_format: str) -> bytes:
    """Join encoded features the way the output format separates them.

    Example:
        >>> encode_features([b"{}", b"[]"], "geojson")
        b'{},\\n[]'
        >>> encode_features([b"{}"], "geojsonseq")
        b'\\x1e{}\\n'
    """
    if output_format == "geojsonseq":
        return b"".join(RECORD_SEPARATOR + feature + b"\n" for feature in features)
    return b",\n".join(features)
