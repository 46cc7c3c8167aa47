"""A steady producer for the watch-mode measurement.

Each file is a small FeatureCollection of one to three features. Every feature
carries the number of its file and its own position in it as properties, so a
feature found in a batch leads back to the file it came from.

A file is written under a dot-name in the drop folder and renamed into place,
the way a careful producer hands over a finished file: the watcher reports it
once, complete. The moment the rename returns is the file's landing time.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

FILE_KEY = "bench_file"
PART_KEY = "bench_part"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


@dataclass(slots=True)
class Drops:
    """What the producer dropped, and when each file landed (wall-clock seconds)."""

    landed_at: list[float] = field(default_factory=list)
    parts: list[int] = field(default_factory=list)
    max_behind_s: float = 0.0

    @property
    def features(self) -> int:
        """The number of features in all dropped files."""
        return sum(self.parts)

    @property
    def achieved_rate(self) -> float:
        """Files per second between the first and the last landing."""
        if len(self.landed_at) < 2:
            return 0.0
        return (len(self.landed_at) - 1) / (self.landed_at[-1] - self.landed_at[0])


def position(rng: random.Random) -> list[float]:
    """Return a random longitude and latitude with nine decimals."""
    return [round(rng.uniform(-179, 179), 9), round(rng.uniform(-89, 89), 9)]


def feature(index: int, part: int, rng: random.Random) -> dict[str, object]:
    """Return a Point or LineString feature tagged with its file and position."""
    if rng.random() < 0.5:
        geometry: dict[str, object] = {"type": "Point", "coordinates": position(rng)}
    else:
        coordinates = [position(rng) for _ in range(rng.randint(2, 4))]
        geometry = {"type": "LineString", "coordinates": coordinates}
    properties = {FILE_KEY: index, PART_KEY: part}
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def small_collection(index: int, rng: random.Random) -> tuple[bytes, int]:
    """Return the bytes of file ``index`` and how many features it holds."""
    parts = rng.randint(1, 3)
    features = [feature(index, part, rng) for part in range(parts)]
    document = {"type": "FeatureCollection", "features": features}
    return json.dumps(document).encode(), parts


def place(folder: Path, index: int, body: bytes) -> float:
    """Write one file under a dot-name, rename it into place and return when it landed."""
    temp = folder / f".drop-{index:07d}.tmp"
    fd = os.open(temp, _CREATE, 0o644)
    try:
        os.write(fd, body)
    finally:
        os.close(fd)
    temp.rename(folder / f"drop-{index:07d}.geojson")
    return time.time()


def drop_files(folder: Path, rate: float, seconds: float, seed: int = 11) -> Drops:
    """Drop ``rate * seconds`` files into ``folder`` on a fixed schedule.

    A file that falls behind its slot is written at once, so short stalls are
    caught up and the average rate holds; the worst lag is recorded.
    """
    rng, drops = random.Random(seed), Drops()
    start = time.monotonic()
    for index in range(round(rate * seconds)):
        body, parts = small_collection(index, rng)
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            drops.max_behind_s = max(drops.max_behind_s, -delay)
        drops.landed_at.append(place(folder, index, body))
        drops.parts.append(parts)
    return drops
