"""Properties of the check on hostile input: it never raises, and what it accepts comes out intact.

The documents are GeoJSON-shaped (most are nearly valid, with junk in some
places), written as text in several ways, then often broken at the byte level:
cut short, a byte changed or inserted, a byte order mark, NaN, a number too
large, nesting too deep. The files under ``tests/data/fuzz`` come from the
fuzzer in ``tests/fuzz_geojson.py``: inputs that reach unusual verdicts, and
any that ever broke a property, replayed so that none ever does again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoingest.geojson import (
    ERROR_RULES,
    WARNING_RULES,
    Accepted,
    Rejected,
    check_bytes,
    ingest_document,
)
from geoingest.geojson.decode import DecodeError, decode
from geoingest.workers import Ingested, Job, process_file
from geoingest.workers import Rejected as FileRejected

FUZZ_FIXTURES = sorted((Path(__file__).parent / "data" / "fuzz").glob("*"))
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# GeoJSON-shaped values: mostly the right nesting, now and then junk.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
numbers = st.one_of(st.floats(-180, 180), st.integers(-90, 90), st.floats(-1e6, 1e6))
positions = st.one_of(
    st.lists(numbers, min_size=2, max_size=3),
    st.lists(numbers, max_size=4),
    st.lists(scalars, max_size=3),
)


def rings(items: list[Any], closed: bool) -> list[Any]:
    return [*items, items[0]] if closed and items else items


lines = st.lists(positions, max_size=5)
closed_lines = st.builds(rings, lines, st.booleans())
COORDINATES = {
    "Point": positions,
    "MultiPoint": lines,
    "LineString": lines,
    "MultiLineString": st.lists(lines, max_size=3),
    "Polygon": st.lists(closed_lines, max_size=3),
    "MultiPolygon": st.lists(st.lists(closed_lines, max_size=2), max_size=2),
}
simple_geometries = st.one_of(
    *[
        st.fixed_dictionaries({"type": st.just(kind), "coordinates": coordinates})
        for kind, coordinates in COORDINATES.items()
    ]
)
geometries = st.recursive(
    simple_geometries,
    lambda inner: st.fixed_dictionaries(
        {"type": st.just("GeometryCollection"), "geometries": st.lists(inner, max_size=3)}
    ),
    max_leaves=4,
)
features = st.fixed_dictionaries(
    {
        "type": st.just("Feature"),
        "geometry": st.one_of(st.none(), geometries),
        "properties": st.one_of(st.none(), st.dictionaries(st.text(max_size=5), json_values)),
    },
    optional={"id": st.one_of(st.text(max_size=4), st.integers(), json_values), "x": json_values},
)
collections = st.fixed_dictionaries(
    {"type": st.just("FeatureCollection"), "features": st.lists(features, max_size=4)},
    optional={"bbox": st.lists(numbers, max_size=6), "name": json_values},
)
documents = st.one_of(collections, collections, features, geometries, json_values)


def as_text(document: Any, indent: int | None, ascii_only: bool) -> bytes:
    """Write a document as JSON text, the way some producer might."""
    return json.dumps(document, indent=indent, ensure_ascii=ascii_only).encode()


texts = st.builds(as_text, documents, st.sampled_from([None, 0, 2]), st.booleans())
SWAPS = {"nan": b"NaN", "infinity": b"-Infinity", "too-large": b"1e999"}
BREAKS = ["cut", "replace", "insert", "bom", "too-deep", "none", *SWAPS]


def broken(raw: bytes, how: str, at: int, byte: int) -> bytes:
    """Break ``raw`` in one way, at one place."""
    where = at % (len(raw) + 1)
    if how in SWAPS:
        digit = next((i for i in range(where, len(raw)) if raw[i : i + 1].isdigit()), None)
        return raw if digit is None else raw[:digit] + SWAPS[how] + raw[digit + 1 :]
    changes = {
        "cut": lambda: raw[:where],
        "replace": lambda: raw[:where] + bytes([byte]) + raw[where + 1 :],
        "insert": lambda: raw[:where] + bytes([byte]) + raw[where:],
        "bom": lambda: b"\xef\xbb\xbf" + raw,
        "too-deep": lambda: b"[" * 1100 + raw + b"]" * 1100,
        "none": lambda: raw,
    }
    return changes[how]()


hostile = st.one_of(
    st.builds(broken, texts, st.sampled_from(BREAKS), st.integers(0, 10**6), st.integers(0, 255)),
    st.binary(max_size=64),
)


def assert_sound(raw: bytes) -> None:
    """Assert that the check and the hot path both take ``raw`` calmly, and agree."""
    problems = check_bytes(raw)
    for problem in problems:
        assert problem.rule in (WARNING_RULES if problem.warning else ERROR_RULES)
        assert "\n" not in problem.message
    errors = [problem for problem in problems if not problem.warning]
    outcome = ingest_document(raw, 6)
    if errors:
        assert isinstance(outcome, Rejected)
        assert outcome.problems[0] == errors[0]
    else:
        assert isinstance(outcome, Accepted)


@FAST
@given(raw=hostile)
def test_the_check_never_raises_and_the_hot_path_agrees_with_it(raw: bytes) -> None:
    assert_sound(raw)


def assert_round_trips(raw: bytes, precision: int) -> None:
    """Assert that, if ``raw`` is accepted, its features come out whole, and stay accepted."""
    outcome = ingest_document(raw, precision)
    if not isinstance(outcome, Accepted):
        return
    given_doc = orjson.loads(raw)
    wanted = given_doc["features"] if given_doc["type"] == "FeatureCollection" else [given_doc]
    written = [orjson.loads(feature) for feature in outcome.features]
    assert len(written) == len(wanted)
    for before, after in zip(wanted, written, strict=True):
        assert after["type"] == "Feature"
        if before["type"] == "Feature":
            assert after["properties"] == before["properties"]
            assert after.get("id") == before.get("id")

    # The batch is valid GeoJSON, and ingesting it again changes nothing.
    batch = b'{"type":"FeatureCollection","features":[' + b",".join(outcome.features) + b"]}"
    assert not [problem for problem in check_bytes(batch) if not problem.warning]
    again = ingest_document(batch, precision)
    assert isinstance(again, Accepted)
    assert again.features == outcome.features


@FAST
@given(raw=texts, precision=st.sampled_from([-1, 0, 3, 6]))
def test_what_is_accepted_comes_out_whole_and_stays_accepted(raw: bytes, precision: int) -> None:
    assert_round_trips(raw, precision)


@pytest.mark.parametrize("fixture", FUZZ_FIXTURES, ids=lambda path: path.name)
def test_inputs_the_fuzzer_found_are_taken_calmly(fixture: Path) -> None:
    raw = fixture.read_bytes()
    assert_sound(raw)
    assert_round_trips(raw, 6)


# JSON text built member by member, so that names can repeat, at any depth.
names = st.sampled_from(["type", "a", "b", "a:b", "é", "a/b~"])


def write_value(value: Any, escape_colons: bool) -> str:
    """Write a value of the pairs tree: objects are ("object", [(name, value), ...])."""
    if isinstance(value, tuple):
        members = []
        for name, inner in value[1]:
            text = json.dumps(name)
            if escape_colons:
                text = text.replace(":", "\\u003a")
            members.append(f"{text}: {write_value(inner, escape_colons)}")
        return "{" + ", ".join(members) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(write_value(item, escape_colons) for item in value) + "]"
    return json.dumps(value)


pairs_trees = st.recursive(
    st.one_of(st.integers(0, 9), st.sampled_from(["x", "y:z", ""])),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(st.tuples(names, inner), max_size=4).map(lambda pairs: ("object", pairs))
    ),
    max_leaves=10,
)


def repeats_a_name(text: str) -> bool:
    """Whether any object in ``text`` names a member twice, by the standard library."""
    found = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found.append(len(pairs) != len({name for name, _ in pairs}))
        return dict(pairs)

    json.loads(text, object_pairs_hook=hook)
    return any(found)


@FAST
@given(tree=pairs_trees, escape_colons=st.booleans())
def test_a_name_repeated_in_any_object_is_found(tree: Any, escape_colons: bool) -> None:
    text = write_value(tree, escape_colons)
    try:
        decode(text.encode())
    except DecodeError as refusal:
        assert refusal.problem.rule == "duplicate-member"
        assert repeats_a_name(text)
    else:
        assert not repeats_a_name(text)


@settings(FAST, max_examples=60, suppress_health_check=list(HealthCheck))
@given(raw=hostile)
def test_the_reader_turns_any_bytes_into_a_verdict(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "drop.geojson"
    path.write_bytes(raw)
    st_ = path.stat()
    job = Job(str(path), st_.st_size, st_.st_mtime_ns, 6, 1 << 20, "geojson")
    assert isinstance(process_file(job), Ingested | FileRejected)
