"""Disposal: what happens to a source file once its batch is committed.

``keep`` leaves it in place (and discovery remembers it), ``move`` puts it in
the done folder at its path relative to its input folder, ``delete`` removes
it. Disposal runs only after the batch holding the file's features is
durable, so a crash before it at worst leaves a file to be disposed of again
by recovery.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from geoingest.files import move_file, sync_folder, unique_path

if TYPE_CHECKING:
    from geoingest.config import InputRoot
    from geoingest.discovery import Candidate
    from geoingest.ledger import Entry


def dispose(candidate: Candidate, on_success: str, done_dir: Path | None) -> None:
    """Keep, move or delete one ingested file.

    A file that is already gone counts as disposed of.

    Raises:
        OSError: The file could not be moved or deleted.
    """
    dispose_path(candidate.path, candidate.rel, on_success, done_dir)


def dispose_entry(root: InputRoot, entry: Entry, on_success: str, done_dir: Path | None) -> bool:
    """Dispose of a file the ledger names, if it is still the file that was committed.

    Returns whether a file was moved or deleted. A file at that path with
    another size or modification time is a new file and is left alone.
    """
    path = root.path / entry.path
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    if (st.st_size, st.st_mtime_ns) != (entry.size, entry.mtime_ns) or on_success == "keep":
        return False
    dispose_path(path, entry.path, on_success, done_dir)
    return True


def dispose_path(path: Path, rel: PurePath, on_success: str, done_dir: Path | None) -> None:
    """Keep, move or delete the file at ``path`` (``rel`` to its input folder)."""
    if on_success == "keep":
        return
    try:
        if on_success == "delete":
            path.unlink()
            sync_folder(path.parent)
            return
        assert done_dir is not None, "on_success = move needs done_dir"
        target = done_dir / rel
        if _same_content(path, target):
            # A move interrupted after its copy: the copy is whole, finish it.
            path.unlink()
            sync_folder(path.parent)
            return
        target = unique_path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        move_file(path, target)
    except FileNotFoundError:
        return


def _same_content(a: Path, b: Path) -> bool:
    try:
        if a.stat().st_size != b.stat().st_size:
            return False
    except FileNotFoundError:
        return False
    return _sha256(a) == _sha256(b)


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
