"""Small, careful file operations shared by the output, quarantine and disposal.

Every write that must survive a crash goes through a temporary file in the
destination folder, a sync and a rename. Moves fall back to copy, sync and
unlink when the two folders are on different mounts (``EXDEV``), which bind
mounts cause even on one filesystem.

What geoingest writes is for its owner and group only: files are created
``0o640`` and, under :func:`restrict_umask`, folders ``0o750``.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

FILE_MODE = 0o640
# Bits that stay masked while the daemon runs: write for the group, all for others.
UMASK = 0o027


def restrict_umask() -> int:
    """Mask at least :data:`UMASK` for the rest of the process; return the mask now in force.

    A stricter mask the process was started with is kept. Call it once, before
    any folder or file is created.
    """
    mask = os.umask(UMASK) | UMASK
    os.umask(mask)
    return mask


def sync_folder(folder: Path) -> None:
    """Make the folder's entries (creations, renames) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees all of it or none."""
    temp = path.with_name(f".{path.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        temp.rename(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def unique_path(path: Path) -> Path:
    """Return ``path``, or a sibling name that does not exist yet.

    Example:
        >>> unique_path(Path("/nonexistent/a.geojson"))
        PosixPath('/nonexistent/a.geojson')
    """
    candidate = path
    counter = 1
    while candidate.exists() or candidate.is_symlink():
        candidate = path.with_name(f"{path.name}.{counter}")
        counter += 1
    return candidate


def move_file(source: Path, target: Path, *, sync: bool = True) -> None:
    """Move one file, across mounts too; the target's folder must exist.

    With ``sync`` the move is durable on return; without it, the caller syncs
    both folders. A copy across mounts is synced before its source goes either way.
    """
    try:
        source.rename(target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_then_unlink(source, target)
    if sync:
        sync_folder(target.parent)
        sync_folder(source.parent)


def _copy_then_unlink(source: Path, target: Path) -> None:
    temp = target.with_name(f".{target.name}.tmp")
    try:
        with source.open("rb") as src, temp.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        shutil.copystat(source, temp)
        temp.rename(target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    sync_folder(target.parent)
    source.unlink()
