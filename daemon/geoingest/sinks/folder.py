"""The folder sink: each batch becomes one file, committed by a rename.

A batch is written to a dot-prefixed temporary file in the output folder,
synced, renamed to its final name and the folder synced. A reader that globs
``*.geojson`` or ``*.geojsons`` never sees a partial batch, and after a crash
at any instant a batch file is either whole or absent.

Names sort by time: ``batch-<UTC time>-<sequence>.geojson``, with the time
to the microsecond and a sequence that never repeats within one run.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from geoingest import crashpoints, spool
from geoingest.files import FILE_MODE, sync_folder
from geoingest.sinks import Commit

if TYPE_CHECKING:
    from geoingest.batching import Batch

TEMP_PREFIX = ".batch-"
TEMP_SUFFIX = ".tmp"
_HEADER = b'{"type":"FeatureCollection","features":[\n'
_FOOTER = b"\n]}\n"
_SUFFIXES = {"geojson": ".geojson", "geojsonseq": ".geojsons"}


class FolderSink:
    """Commits batches as files in one folder.

    Args:
        folder: The output folder; it must exist and be writable.
        output_format: ``geojson`` (an RFC 7946 FeatureCollection per batch) or
            ``geojsonseq`` (an RFC 8142 text sequence per batch).
    """

    def __init__(self, folder: Path, output_format: str = "geojson") -> None:
        self.folder = folder
        self.output_format = output_format
        self._suffix = _SUFFIXES[output_format]
        self._sequence = itertools.count(1)

    def reserve_name(self) -> str:
        """Return the name the next batch will be committed under."""
        seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds))
        return f"batch-{stamp}.{micros:06d}Z-{next(self._sequence):06d}{self._suffix}"

    def exists(self, name: str) -> bool:
        """Whether a batch with this name is committed."""
        return (self.folder / name).is_file()

    def commit(self, batch: Batch, name: str) -> Commit:
        """Write, sync and rename one batch under ``name``; sync the folder.

        Raises:
            OSError: The batch could not be made durable; no partial file remains.
        """
        temp = self.folder / f".{name}{TEMP_SUFFIX}"
        try:
            nbytes = self._write(temp, batch)
            crashpoints.reached("flush")
            temp.rename(self.folder / name)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        sync_folder(self.folder)
        return Commit(name=name, nbytes=nbytes)

    def recover(self) -> int:
        """Remove temporary files that an interrupted commit left behind."""
        removed = 0
        for entry in os.scandir(self.folder):
            if entry.name.startswith(TEMP_PREFIX) and entry.name.endswith(TEMP_SUFFIX):
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
        return removed

    def _write(self, path: Path, batch: Batch) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        fd = os.open(path, flags, FILE_MODE)
        try:
            sep = spool.separator(self.output_format)
            if self.output_format == "geojson":
                nbytes = spool.write_all(fd, [_HEADER])
                nbytes += spool.write_joined(fd, batch.pieces, sep)
                nbytes += spool.write_all(fd, [_FOOTER])
            else:
                nbytes = spool.write_joined(fd, batch.pieces, sep)
            os.fsync(fd)
        finally:
            os.close(fd)
        return nbytes
