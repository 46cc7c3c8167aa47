"""The process exit codes, as listed in the README."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """How a geoingest command ended."""

    #: Clean: everything found was ingested or quarantined, or a check passed.
    OK = 0
    #: Finished, but some files hit I/O errors (or `validate` found invalid files).
    PROBLEMS = 1
    #: Usage or configuration error; one line names the key.
    USAGE = 2
    #: Startup failure, for example an output folder that cannot be written.
    STARTUP = 3
    #: A second SIGTERM or SIGINT forced the exit before the drain finished.
    FORCED = 4
