"""A coverage-guided fuzzer for the GeoJSON check and the worker's reader, run by hand.

    .venv/bin/pip install atheris    # for this script only; not a geoingest dependency
    mkdir -p /tmp/findings
    .venv/bin/python tests/fuzz_geojson.py /tmp/findings tests/data/fuzz -max_total_time=600

Each input must pass the properties of ``tests/test_geojson_properties.py``:
``check_bytes`` and ``ingest_document`` return calmly and agree, an accepted
document comes out whole and stays accepted, and the worker reading it from a
file returns a verdict. When one fails, libFuzzer stops and writes the input
as ``crash-*`` in the working folder; copy it into ``tests/data/fuzz/`` with a
name that says what it is, and the test suite replays it from then on. The
files there also seed the next session; the first folder collects what the
session finds new.

The pytest run never imports this file: its name does not start with ``test_``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

# Words that let the mutations build GeoJSON rather than noise.
DICTIONARY = [
    '"type"',
    '"coordinates"',
    '"geometry"',
    '"geometries"',
    '"properties"',
    '"features"',
    '"bbox"',
    '"id"',
    '"Point"',
    '"MultiPoint"',
    '"LineString"',
    '"MultiLineString"',
    '"Polygon"',
    '"MultiPolygon"',
    '"GeometryCollection"',
    '"Feature"',
    '"FeatureCollection"',
    "NaN",
    "-Infinity",
    "1e999",
    "18446744073709551616",
    "-0.0",
    "0.5e-7",
    "\\u003a",
    "\\ud800",
    "\ufeff",
]

with atheris.instrument_imports(include=["geoingest"]):
    sys.path.insert(0, str(Path(__file__).parent))
    from geoingest.workers import Ingested, Job, Rejected, process_file
    from test_geojson_properties import assert_round_trips, assert_sound

_SCRATCH = Path(tempfile.mkdtemp(prefix="geoingest-fuzz-")) / "input.geojson"


def one_input(data: bytes) -> None:
    """Check every property on one input; raising tells libFuzzer it found something."""
    assert_sound(data)
    for precision in (-1, 6):
        assert_round_trips(data, precision)
    _SCRATCH.write_bytes(data)
    st = _SCRATCH.stat()
    job = Job(str(_SCRATCH), st.st_size, st.st_mtime_ns, 6, 1 << 20, "geojson")
    assert isinstance(process_file(job), Ingested | Rejected)


def _escaped(word: str) -> str:
    """Write a word's UTF-8 bytes the way a libFuzzer dictionary wants them."""
    return "".join(
        chr(byte) if 0x20 <= byte < 0x7F and byte not in b'"\\' else f"\\x{byte:02X}"
        for byte in word.encode()
    )


def main() -> None:
    """Write the dictionary beside the scratch file, then hand over to libFuzzer."""
    words = _SCRATCH.with_name("geojson.dict")
    words.write_text("".join(f'"{_escaped(word)}"\n' for word in DICTIONARY))
    args = [*sys.argv, f"-dict={words}"]
    if not any(arg.startswith("-max_len=") for arg in args):
        args.append("-max_len=16384")
    atheris.Setup(args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
