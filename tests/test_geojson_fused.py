"""The compiled fused pass must do exactly what the Python one does.

Every feature either pass sees must come out the same: the same encoded
bytes, the same warnings in the same order, the same features left to the
careful check. The Python pass is the reference; its own agreement with the
careful check is tested in ``test_geojson_ingest.py``.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geoingest.geojson.fused import COMPILED, FAST_DIGITS, FusedPass, count_colons
from test_geojson_properties import FAST, features

needs_compiled = pytest.mark.skipif(not COMPILED, reason="the compiled pass is not installed")
PRECISIONS = st.sampled_from([-1, 0, 1, 3, 6, FAST_DIGITS, FAST_DIGITS + 1])


def both_passes(items: list[Any], precision: int) -> tuple[Any, Any]:
    """Run each pass on its own copy of ``items``; return what each made of them."""
    results = []
    for compiled in (True, False):
        fused = FusedPass(precision, compiled=compiled).collection(copy.deepcopy(items))
        results.append((fused.encoded, fused.notes, fused.unusual))
    return results[0], results[1]


@needs_compiled
@FAST
@given(items=st.lists(features, max_size=4), precision=PRECISIONS)
def test_the_compiled_pass_agrees_on_any_features(items: list[Any], precision: int) -> None:
    compiled, python = both_passes(items, precision)
    assert compiled == python


in_range = st.tuples(st.floats(-180, 180), st.floats(-90, 90)).map(list)


def polygon(ring: list[list[float]], clockwise: bool) -> dict[str, Any]:
    closed = [*ring, ring[0]]
    return {"type": "Polygon", "coordinates": [closed[::-1] if clockwise else closed]}


plain_geometries = st.one_of(
    in_range.map(lambda p: {"type": "Point", "coordinates": p}),
    st.lists(in_range, min_size=2, max_size=6).map(
        lambda line: {"type": "LineString", "coordinates": line}
    ),
    st.builds(polygon, st.lists(in_range, min_size=3, max_size=6), st.booleans()),
    st.lists(in_range, min_size=1, max_size=4).map(
        lambda points: {"type": "MultiPoint", "coordinates": points}
    ),
)


@needs_compiled
@FAST
@given(geometries=st.lists(plain_geometries, min_size=1, max_size=5), precision=PRECISIONS)
def test_the_compiled_pass_rounds_and_warns_like_python_on_plain_features(
    geometries: list[dict[str, Any]], precision: int
) -> None:
    items = [{"type": "Feature", "properties": {}, "geometry": g} for g in geometries]
    compiled, python = both_passes(items, precision)
    assert compiled == python
    assert compiled[2] == 0  # plain features never need the careful check


@needs_compiled
def test_positions_the_compiled_pass_leaves_to_python_still_come_out() -> None:
    # A 3D position, an integer and a longitude out of range: the Python loop decides.
    items = [
        {"type": "Feature", "properties": None, "geometry": {"type": "Point", "coordinates": c}}
        for c in ([1.23456789, 2.0, 3.3333333], [1, 2.5], [181.0, 0.0], [0.1234565, 0.0])
    ]
    compiled, python = both_passes(items, 6)
    assert compiled == python
    assert compiled[0][0] == (
        b'{"type":"Feature","properties":null,'
        b'"geometry":{"type":"Point","coordinates":[1.234568,2.0,3.333333]}}'
    )


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler on this machine")
def test_an_install_with_a_c_compiler_uses_the_compiled_pass() -> None:
    version = subprocess.run(
        [sys.executable, "-m", "geoingest", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert COMPILED
    assert "coordinate pass: compiled" in version


@needs_compiled
@given(data=st.binary(max_size=4096) | st.text(alphabet=':{}"ab,', max_size=4096).map(str.encode))
def test_the_compiled_colon_count_agrees_with_bytes_count(data: bytes) -> None:
    assert count_colons(data) == data.count(b":")
