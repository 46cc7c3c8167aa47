"""From committed batches back to dropped files: latency and exactly-once delivery.

A file counts as delivered when the last of its features is in a committed
batch; its latency runs from its landing to that commit. A batch's commit time
is when the output folder was first seen to hold it, which is at most one
polling interval after the rename that committed it. A batch never seen while
polling (one written in the last instant) falls back to its inode change
time, which the rename sets.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson
from dropper import FILE_KEY, PART_KEY, Drops
from oneshot import gc_paused


@dataclass(slots=True)
class Deliveries:
    """Every tagged feature found in the output, and when each file was last committed."""

    occurrences: Counter[tuple[int, int]] = field(default_factory=Counter)
    committed_at: dict[int, float] = field(default_factory=dict)
    untagged: int = 0
    batches: int = 0

    def add(self, properties: object, when: float) -> None:
        """Record one feature of a batch committed at ``when``."""
        if not isinstance(properties, dict) or FILE_KEY not in properties:
            self.untagged += 1
            return
        index = int(properties[FILE_KEY])
        self.occurrences[index, int(properties.get(PART_KEY, -1))] += 1
        self.committed_at[index] = max(when, self.committed_at.get(index, when))


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """How the dropped files came out."""

    files_dropped: int
    features_dropped: int
    files_delivered: int
    features_missing: int
    features_duplicated: int
    features_unexpected: int
    p50_s: float | None
    p90_s: float | None
    p99_s: float | None
    max_s: float | None
    histogram: dict[str, int]

    @property
    def exactly_once(self) -> bool:
        """Whether every dropped feature came out once and nothing else came out."""
        lost_or_extra = self.features_missing + self.features_duplicated + self.features_unexpected
        return lost_or_extra == 0 and self.files_delivered == self.files_dropped

    def as_dict(self) -> dict[str, object]:
        """Return the summary's figures, the verdict included."""
        return {**asdict(self), "exactly_once": self.exactly_once}


def read_deliveries(folder: Path, seen_at: dict[str, float]) -> Deliveries:
    """Parse every committed batch in ``folder`` and collect its tagged features."""
    deliveries = Deliveries()
    with os.scandir(folder) as entries:
        batches = [entry for entry in entries if entry.name.startswith("batch-")]
    for entry in batches:
        when = seen_at.get(entry.name) or entry.stat().st_ctime
        with gc_paused():
            document = orjson.loads(Path(entry.path).read_bytes())
        for item in document.get("features") or ():
            deliveries.add(item.get("properties") if isinstance(item, dict) else None, when)
        deliveries.batches += 1
    return deliveries


def percentile(ordered: list[float], fraction: float) -> float | None:
    """Return the nearest-rank percentile of an ascending list, None when it is empty.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 0.5)
    2.0
    """
    if not ordered:
        return None
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summarise(drops: Drops, deliveries: Deliveries) -> LatencySummary:
    """Match what came out against what was dropped."""
    expected = {(index, part) for index, n in enumerate(drops.parts) for part in range(n)}
    found = deliveries.occurrences
    complete = [i for i, n in enumerate(drops.parts) if all((i, p) in found for p in range(n))]
    ordered = sorted(deliveries.committed_at[i] - drops.landed_at[i] for i in complete)
    return LatencySummary(
        files_dropped=len(drops.parts),
        features_dropped=len(expected),
        files_delivered=len(complete),
        features_missing=len(expected - found.keys()),
        features_duplicated=sum(n - 1 for key, n in found.items() if key in expected and n > 1),
        features_unexpected=deliveries.untagged + len(found.keys() - expected),
        p50_s=percentile(ordered, 0.50),
        p90_s=percentile(ordered, 0.90),
        p99_s=percentile(ordered, 0.99),
        max_s=ordered[-1] if ordered else None,
        histogram=histogram(ordered),
    )


def histogram(values: list[float], width_s: float = 0.5) -> dict[str, int]:
    """Return how many latencies fall in each bucket of ``width_s``, keyed by the bucket's start.

    >>> histogram([0.1, 0.4, 1.2])
    {'0.0': 2, '1.0': 1}
    """
    counts: Counter[float] = Counter(math.floor(value / width_s) * width_s for value in values)
    return {f"{start:.1f}": counts[start] for start in sorted(counts)}
