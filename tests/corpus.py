"""Small GeoJSON corpora with known features, and readers of geoingest's output."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_uids = itertools.count(1)


@dataclass(frozen=True)
class Folders:
    """The folders one daemon run uses."""

    drop: Path
    out: Path
    done: Path


def feature(rng: random.Random, kind: str = "Point") -> dict[str, Any]:
    """A feature with a unique ``uid`` property and 9-decimal coordinates."""
    uid = next(_uids)

    def pos() -> list[float]:
        return [round(rng.uniform(-180, 180), 9), round(rng.uniform(-90, 90), 9)]

    if kind == "Point":
        geometry: dict[str, Any] = {"type": "Point", "coordinates": pos()}
    elif kind == "LineString":
        geometry = {"type": "LineString", "coordinates": [pos() for _ in range(3)]}
    else:
        ring = [pos() for _ in range(3)]
        geometry = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
    return {
        "type": "Feature",
        "id": uid,
        "geometry": geometry,
        "properties": {"uid": uid, "label": f"site {uid}", "value": rng.random()},
    }


def collection(rng: random.Random, n: int) -> dict[str, Any]:
    """A FeatureCollection of ``n`` mixed features."""
    kinds = ["Point", "LineString", "Polygon"]
    return {"type": "FeatureCollection", "features": [feature(rng, kinds[i % 3]) for i in range(n)]}


def write(path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """Write a document, creating folders; return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return doc


def features_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The features a valid document contributes."""
    if doc["type"] == "FeatureCollection":
        return list(doc["features"])
    return [doc]


def output_features(out: Path) -> list[dict[str, Any]]:
    """Every feature in every committed batch file of an output folder."""
    found: list[dict[str, Any]] = []
    for path in sorted(out.glob("*.geojson")):
        found.extend(json.loads(path.read_bytes())["features"])
    for path in sorted(out.glob("*.geojsons")):
        for record in path.read_bytes().split(b"\x1e")[1:]:
            found.append(json.loads(record))
    return found


def rounded(value: Any, precision: int = 6) -> Any:
    """Coordinates rounded the way geoingest rounds them."""
    if isinstance(value, list):
        return [rounded(v, precision) for v in value]
    return round(value, precision)


def assert_exactly_once(out: Path, expected: list[dict[str, Any]], precision: int = 6) -> None:
    """Every expected feature is in the output exactly once, rounded, properties unchanged."""
    got = output_features(out)
    counts = Counter(f["properties"]["uid"] for f in got)
    duplicated = sorted(uid for uid, n in counts.items() if n > 1)
    assert not duplicated, f"features written twice: {duplicated[:10]}"
    by_uid = {f["properties"]["uid"]: f for f in got}
    want = {f["properties"]["uid"]: f for f in expected}
    missing = sorted(set(want) - set(by_uid))
    extra = sorted(set(by_uid) - set(want))
    assert not missing, f"{len(missing)} features missing, first {missing[:10]}"
    assert not extra, f"unexpected features {extra[:10]}"
    for uid, original in want.items():
        written = by_uid[uid]
        assert written["properties"] == original["properties"]
        assert written["id"] == original["id"]
        assert written["geometry"]["type"] == original["geometry"]["type"]
        assert written["geometry"]["coordinates"] == rounded(
            original["geometry"]["coordinates"], precision
        )
