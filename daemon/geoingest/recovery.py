"""Recovery at start: finish what a crash interrupted, before any new file.

1. Temporary batch files are removed (their batches never committed).
2. A manifest whose batch file exists is marked committed: the crash came
   after the rename. A manifest whose batch file does not exist is dropped:
   the crash came before it, and the sources, still in place, are ingested
   again.
3. Every committed batch whose sources were not all disposed of is disposed
   of now, so that its sources are not ingested a second time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from geoingest.disposal import dispose_entry, sync_folders

if TYPE_CHECKING:
    from pathlib import Path

    from geoingest.config import Settings
    from geoingest.ledger import Ledger
    from geoingest.sinks import Sink

log = structlog.get_logger("geoingest.recovery")


@dataclass(frozen=True, slots=True)
class Report:
    """What recovery found and did."""

    temporary_files_removed: int
    batches_recorded: int
    manifests_dropped: int
    batches_disposed: int
    files_disposed: int
    duration_s: float


def recover(settings: Settings, sink: Sink, ledger: Ledger) -> Report:
    """Bring the output folder, the ledger and the input folders back in step."""
    started = time.perf_counter()
    removed = sink.recover()

    recorded = dropped = 0
    for batch in ledger.batches_in("in_batch"):
        if sink.exists(batch):
            ledger.mark_batch(batch, "committed")
            recorded += 1
        else:
            ledger.forget_batch(batch)
            dropped += 1

    roots = {root.name: root for root in settings.inputs}
    batches = ledger.batches_in("committed")
    files = 0
    for batch in batches:
        changed: set[Path] = set()
        for entry in ledger.batch_files(batch):
            root = roots.get(entry.source)
            if root is not None and dispose_entry(
                root, entry, settings.on_success, settings.done_dir, changed
            ):
                files += 1
        sync_folders(changed)
        ledger.mark_batch(batch, "disposed")

    report = Report(
        removed, recorded, dropped, len(batches), files, round(time.perf_counter() - started, 3)
    )
    log.info("recovered", **{k: getattr(report, k) for k in report.__slots__})
    return report
