"""Named points where a test can make the daemon die, to prove crash safety.

Setting ``GEOINGEST_CRASH_AT`` to a point's name makes the daemon kill its
whole process group (itself and its workers) with SIGKILL when it reaches that
point, exactly as a power cut or the OOM killer would. Unset, a point costs one
dictionary look-up. The points:

``flush``
    A batch is written and synced under its temporary name, not yet renamed.
``after-rename``
    A batch is renamed into place; the ledger does not know it is committed.
``disposal``
    The first source of a committed batch is disposed of; the rest are not,
    and the ledger does not know.
``worker:<file name>``
    A worker process dies while it holds the file with that name (the main
    process survives and replaces the pool).
"""

from __future__ import annotations

import os
import signal

ENVIRONMENT_VARIABLE = "GEOINGEST_CRASH_AT"


def reached(point: str) -> None:
    """Die here, with the whole process group, if a test asked for it."""
    if os.environ.get(ENVIRONMENT_VARIABLE) == point:
        os.killpg(os.getpgrp(), signal.SIGKILL)


def worker_reached(file_name: str) -> None:
    """Kill only this worker process if a test named this file."""
    if os.environ.get(ENVIRONMENT_VARIABLE) == f"worker:{file_name}":
        os.kill(os.getpid(), signal.SIGKILL)
