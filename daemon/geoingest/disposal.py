"""Disposal: what happens to a source file once its batch is committed.

``keep`` leaves it in place (and discovery remembers it), ``move`` puts it in
the done folder at its path relative to its input folder, ``delete`` removes
it. Disposal runs only after the batch holding the file's features is
durable, so a crash before it at worst leaves a file to be disposed of again.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from geoingest.files import move_file, sync_folder, unique_path

if TYPE_CHECKING:
    from geoingest.discovery import Candidate


def dispose(candidate: Candidate, on_success: str, done_dir: Path | None) -> None:
    """Keep, move or delete one ingested file.

    A file that is already gone counts as disposed of.

    Raises:
        OSError: The file could not be moved or deleted.
    """
    if on_success == "keep":
        return
    try:
        if on_success == "delete":
            candidate.path.unlink()
            sync_folder(candidate.path.parent)
            return
        assert done_dir is not None, "on_success = move needs done_dir"
        target = unique_path(done_dir / candidate.rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        move_file(candidate.path, target)
    except FileNotFoundError:
        return
