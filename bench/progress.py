"""Progress lines for the person running the benchmark, on stderr.

Results go to stdout as Markdown; everything said along the way goes to
stderr, so that ``run.py > results.md`` keeps only the tables.
"""

from __future__ import annotations

import sys
import time

_START = time.monotonic()


def note(message: str) -> None:
    """Print one progress line, prefixed with the seconds since the run began."""
    print(f"[{time.monotonic() - _START:7.1f} s] {message}", file=sys.stderr, flush=True)
