"""Files geoingest writes are for its owner and group only."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from geoingest.files import restrict_umask, write_atomically


@pytest.fixture
def umask() -> Iterator[None]:
    """Let a test change the process's umask, and put it back afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield
    os.umask(saved)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_file_written_atomically_is_not_readable_by_others(tmp_path: Path, umask: None) -> None:
    os.umask(0)
    write_atomically(tmp_path / "state.json", b"{}")
    assert mode(tmp_path / "state.json") == 0o640


@pytest.mark.parametrize(("before", "after"), [(0o022, 0o027), (0, 0o027), (0o077, 0o077)])
def test_the_umask_is_tightened_never_loosened(umask: None, before: int, after: int) -> None:
    os.umask(before)
    assert restrict_umask() == after
    assert os.umask(after) == after


def test_under_the_restricted_umask_new_folders_are_closed_to_others(
    tmp_path: Path, umask: None
) -> None:
    os.umask(0)
    restrict_umask()
    (tmp_path / "quarantine" / "sub").mkdir(parents=True)
    assert mode(tmp_path / "quarantine") == mode(tmp_path / "quarantine" / "sub") == 0o750
