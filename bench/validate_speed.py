"""Time geoingest's GeoJSON hot path against a parse-and-dump floor, on one core.

    python bench/validate_speed.py CORPUS_DIR [--precision 6] [--gc workers] [--repeat 3]

Every file under CORPUS_DIR is read into memory first (timed on its own), so
the passes below measure CPU work only:

- floor: ``orjson.loads`` of each file and ``orjson.dumps`` of each feature of
  every FeatureCollection, with no check and no rounding;
- ingest: :func:`geoingest.geojson.ingest_document` on each file;
- python: the same with the Python fused pass, when the compiled one is
  installed, to show what the compiled pass saves.

The passes alternate ``--repeat`` times, and the best run of each is
reported, as wall seconds and as CPU seconds of this process (the steadier
figure on a busy machine), with the ratio of ingest to floor. ``--gc`` sets the
cyclic garbage collector for the passes: ``default`` leaves the interpreter's
settings, ``workers`` freezes the start-up objects and raises the thresholds
to what the worker processes use, ``off`` disables it.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from geoingest.geojson import Accepted, ingest_document
from geoingest.geojson import ingest as ingest_module
from geoingest.geojson.fused import COMPILED, FusedPass

WORKER_GC_THRESHOLDS = (100_000, 50, 50)


def read_corpus(root: Path) -> list[bytes]:
    """Return the bytes of every file under ``root``, in path order."""
    paths = sorted(Path(folder) / name for folder, _, names in os.walk(root) for name in names)
    return [path.read_bytes() for path in paths]


def floor_pass(datas: list[bytes]) -> int:
    """Parse each file and encode each feature of each FeatureCollection; return features."""
    features = 0
    for raw in datas:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("features"), list):
            features += len([orjson.dumps(feature) for feature in doc["features"]])
    return features


def ingest_pass(datas: list[bytes], precision: int) -> int:
    """Run ingest_document on each file; return the features of accepted files."""
    features = 0
    for raw in datas:
        result = ingest_document(raw, precision)
        if isinstance(result, Accepted):
            features += len(result.features)
    return features


def python_pass(datas: list[bytes], precision: int) -> int:
    """Run ingest_document with the Python fused pass in place of the compiled one."""
    compiled = ingest_module._fused_pass
    ingest_module._fused_pass = lambda digits: FusedPass(digits, compiled=False)
    try:
        return ingest_pass(datas, precision)
    finally:
        ingest_module._fused_pass = compiled


def best_of(runs: int, passes: dict[str, Callable[[], int]]) -> dict[str, tuple[float, float, int]]:
    """Alternate the passes ``runs`` times; return each one's best wall and CPU seconds."""
    best: dict[str, tuple[float, float, int]] = {}
    for _ in range(runs):
        for name, run in passes.items():
            wall, cpu = time.perf_counter(), time.process_time()
            features = run()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            old = best.get(name, (wall, cpu, features))
            best[name] = (min(wall, old[0]), min(cpu, old[1]), features)
    return best


def set_gc(mode: str) -> None:
    """Configure the cyclic garbage collector for the timed passes."""
    if mode == "workers":
        gc.collect()
        gc.freeze()
        gc.set_threshold(*WORKER_GC_THRESHOLDS)
    elif mode == "off":
        gc.disable()


def main() -> None:
    """Parse the arguments, read the corpus and time both passes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="Folder of GeoJSON files, searched recursively.")
    parser.add_argument("--precision", type=int, default=6, help="Decimals to round to (6).")
    parser.add_argument("--gc", choices=("default", "workers", "off"), default="workers")
    parser.add_argument("--repeat", type=int, default=3, help="Runs of each pass (3).")
    args = parser.parse_args()

    start = time.perf_counter()
    datas = read_corpus(args.corpus)
    read_s = time.perf_counter() - start
    print(f"read     {read_s:6.2f} s wall  {len(datas):,} files, {sum(map(len, datas)):,} bytes")
    set_gc(args.gc)
    best = best_of(
        args.repeat,
        {
            "floor": lambda: floor_pass(datas),
            "ingest": lambda: ingest_pass(datas, args.precision),
            **({"python": lambda: python_pass(datas, args.precision)} if COMPILED else {}),
        },
    )
    for name, (wall, cpu, features) in best.items():
        rate = len(datas) / wall
        timing = f"{wall:6.2f} s wall {cpu:6.2f} s cpu  {rate:8,.0f} files/s"
        print(f"{name:<8} {timing}  {features:,} features")
    for name in ("ingest", "python"):
        if name in best:
            ratio = best[name][1] / best["floor"][1]
            print(
                f"ratio    {ratio:6.2f} x floor in cpu for {name} (gc {args.gc}, precision "
                f"{args.precision})"
            )


if __name__ == "__main__":
    main()
