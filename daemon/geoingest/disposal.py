"""Disposal: what happens to a source file once its batch is committed.

``keep`` leaves it in place (and discovery remembers it), ``move`` puts it in
the done folder at its path relative to its input folder, ``delete`` removes
it. Disposal runs only after the batch holding the file's features is
durable, so a crash before it at worst leaves a file to be disposed of again
by recovery.

Moving or deleting a file changes folder entries, which are durable only once
the folder is synced. A batch's files are disposed of first and their folders
synced once each afterwards (:func:`sync_folders`), before the ledger records
the batch as disposed: one sync per folder rather than two per file.
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


def dispose(
    candidate: Candidate,
    on_success: str,
    done_dir: Path | None,
    changed: set[Path] | None = None,
) -> None:
    """Keep, move or delete one ingested file.

    A file that is already gone counts as disposed of.

    Args:
        candidate: The ingested file.
        on_success: ``keep``, ``move`` or ``delete``.
        done_dir: Where ``move`` puts files.
        changed: Where to note the folders whose entries changed, for the
            caller to sync; None syncs them before returning.

    Raises:
        OSError: The file could not be moved or deleted.
    """
    dispose_path(candidate.path, candidate.rel, on_success, done_dir, changed)


def dispose_entry(
    root: InputRoot,
    entry: Entry,
    on_success: str,
    done_dir: Path | None,
    changed: set[Path] | None = None,
) -> bool:
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
    dispose_path(path, entry.path, on_success, done_dir, changed)
    return True


def dispose_path(
    path: Path,
    rel: PurePath,
    on_success: str,
    done_dir: Path | None,
    changed: set[Path] | None = None,
) -> None:
    """Keep, move or delete the file at ``path`` (``rel`` to its input folder)."""
    if on_success == "keep":
        return
    touched: set[Path] = set()
    try:
        _dispose(path, rel, on_success, done_dir, touched)
    except FileNotFoundError:
        return
    finally:
        if changed is None:
            sync_folders(touched)
        else:
            changed |= touched


def _dispose(
    path: Path, rel: PurePath, on_success: str, done_dir: Path | None, touched: set[Path]
) -> None:
    touched.add(path.parent)
    if on_success == "delete":
        path.unlink()
        return
    assert done_dir is not None, "on_success = move needs done_dir"
    target = done_dir / rel
    if _same_content(path, target):
        # A move interrupted after its copy: the copy is whole, finish it.
        path.unlink()
        return
    target = unique_path(target)
    _make_folder(target.parent, done_dir, touched)
    move_file(path, target, sync=False)
    touched.add(target.parent)


def _make_folder(folder: Path, top: Path, touched: set[Path]) -> None:
    """Create ``folder`` and any missing parents up to ``top``; note whose entries changed."""
    if folder.is_dir():
        return
    missing = [folder, *(p for p in folder.parents if p.is_relative_to(top))]
    folder.mkdir(parents=True, exist_ok=True)
    touched.update(p.parent for p in missing if p != top)


def sync_folders(folders: set[Path]) -> None:
    """Make the entries of each folder durable; a folder gone meanwhile is passed over."""
    for folder in sorted(folders):
        try:
            sync_folder(folder)
        except FileNotFoundError:
            continue


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
