"""The spool: output bytes handed from the workers to a batch without the pipe.

A worker writes the encoded features of a whole chunk to one spool file and
sends back only where each file's features lie in it. The batch file is then
assembled by the kernel (``sendfile``) from those ranges, so the output bytes
never pass through the result pipe nor through the main process's memory.
Sending them back as ``bytes`` cost the workers a blocking write per file and
the main process a read, an unpickle and a copy of every byte.

Each file's features are followed in the spool file by the separator of the
output format, so the ranges of files that follow one another in a chunk and
in a batch are copied in one call.

A spool file is deleted once no batch still to be committed needs it. Spool
files hold nothing durable: after a crash they are removed at the next start,
and the files they came from are ingested again (the ledger never saw them
committed).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

SUFFIX = ".spool"
# Spool files are the daemon's own business: no one else reads them.
_MODE = 0o600
# A writev takes at most this many buffers at once.
_IOV_MAX = 1024
# sendfile copies at most about 2 GiB a call.
_SENDFILE_MAX = 1 << 30


def separator(output_format: str) -> bytes:
    """The bytes between the features of two files in a batch of this format.

    Example:
        >>> separator("geojson"), separator("geojsonseq")
        (b',\\n', b'')
    """
    return b",\n" if output_format == "geojson" else b""


class SpoolFile:
    """One chunk's spool file, and how many batches still to commit need it.

    The file can be deleted once :meth:`release` brings the count to zero. It
    starts at one, held by whoever routes the chunk's results, so that it
    outlives the routing even when no file of the chunk joins a batch.
    """

    __slots__ = ("path", "refs")

    def __init__(self, path: str) -> None:
        self.path = path
        self.refs = 1

    def hold(self) -> None:
        """Note one more range of this file waiting in a batch."""
        self.refs += 1

    def release(self) -> bool:
        """Let go of one hold; return True if that was the last (the file can go)."""
        self.refs -= 1
        return self.refs == 0


@dataclass(frozen=True, slots=True)
class Span:
    """One file's features in a spool file: ``length`` bytes from ``offset``."""

    spool: SpoolFile
    offset: int
    length: int


Piece = bytes | Span


def write_chunk(path: str, bodies: list[bytes], sep: bytes) -> list[int]:
    """Write the non-empty ``bodies``, each followed by ``sep``, to a new spool file.

    Returns:
        The offset of each body in the file (that of an empty body is where it
        would have been; it takes no space).

    Raises:
        OSError: The file could not be written; it is removed.
    """
    offsets, buffers, position = [], [], 0
    for body in bodies:
        offsets.append(position)
        if body:
            buffers.append(body)
            if sep:
                buffers.append(sep)
            position += len(body) + len(sep)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _MODE)
    try:
        write_all(fd, buffers)
    except BaseException:
        os.close(fd)
        discard(path)
        raise
    os.close(fd)
    return offsets


def write_all(fd: int, buffers: list[bytes]) -> int:
    """Write every buffer to ``fd`` in order, with as few calls as possible; return the bytes."""
    total = 0
    views = [memoryview(b) for b in buffers if b]
    while views:
        written = os.writev(fd, views[:_IOV_MAX])
        total += written
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]
    return total


def runs(pieces: Iterable[Piece], sep: bytes) -> Iterator[Piece]:
    """Merge the pieces that lie back to back in one spool file, separators included.

    What is yielded, joined with ``sep``, is what the pieces joined with
    ``sep`` would be.
    """
    run: Span | None = None
    for piece in pieces:
        if isinstance(piece, bytes):
            if run is not None:
                yield run
                run = None
            yield piece
        elif (
            run is not None
            and run.spool is piece.spool
            and (piece.offset == run.offset + run.length + len(sep))
        ):
            run = Span(run.spool, run.offset, piece.offset + piece.length - run.offset)
        else:
            if run is not None:
                yield run
            run = piece
    if run is not None:
        yield run


def write_joined(fd: int, pieces: Iterable[Piece], sep: bytes) -> int:
    """Write the pieces to ``fd`` joined by ``sep``; return the bytes written.

    Spooled pieces are copied by the kernel; bytes between them are gathered
    into one ``writev``.
    """
    total = 0
    pending: list[bytes] = []
    # One spool file open at a time, whatever the number of chunks in the batch.
    source, source_path = -1, ""
    try:
        for index, run in enumerate(runs(pieces, sep)):
            if index and sep:
                pending.append(sep)
            if isinstance(run, bytes):
                pending.append(run)
                continue
            total += write_all(fd, pending)
            pending = []
            if run.spool.path != source_path:
                if source >= 0:
                    os.close(source)
                    source = -1
                source = os.open(run.spool.path, os.O_RDONLY | os.O_CLOEXEC)
                source_path = run.spool.path
            total += copy_range(source, fd, run.offset, run.length)
        total += write_all(fd, pending)
    finally:
        if source >= 0:
            os.close(source)
    return total


def copy_range(source: int, target: int, offset: int, length: int) -> int:
    """Append ``length`` bytes of ``source`` from ``offset`` to ``target``.

    Raises:
        OSError: Reading or writing failed, or the source is shorter than it should be.
    """
    done = 0
    while done < length:
        try:
            sent = os.sendfile(target, source, offset + done, min(length - done, _SENDFILE_MAX))
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            sent = _copy_by_hand(source, target, offset + done, length - done)
        if sent == 0:
            raise OSError(errno.EIO, "a spool file is shorter than its batch needs")
        done += sent
    return done


def _copy_by_hand(source: int, target: int, offset: int, length: int) -> int:
    """Copy through user space, for filesystems where ``sendfile`` cannot write."""
    data = os.pread(source, min(length, 1 << 20), offset)
    return write_all(target, [data]) if data else 0


def discard(path: str) -> None:
    """Delete a spool file, if it is still there."""
    Path(path).unlink(missing_ok=True)


def discard_all(paths: Iterable[str]) -> None:
    """Delete spool files no batch needs any more."""
    for path in paths:
        discard(path)


def clear(folder: Path) -> int:
    """Create the spool folder, or empty it of what an earlier run left; return how many."""
    folder.mkdir(parents=True, exist_ok=True)
    removed = 0
    for entry in os.scandir(folder):
        if entry.name.endswith(SUFFIX) and entry.is_file(follow_symlinks=False):
            discard(entry.path)
            removed += 1
    return removed
