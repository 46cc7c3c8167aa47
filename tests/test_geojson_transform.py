"""Rounding and normalising: what comes out of a valid document, to the bit."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoingest.geojson import Accepted, ingest_document
from geoingest.geojson.fused import FAST_DIGITS, Unusual, line_rounder, point_rounder
from geoingest.geojson.transform import as_feature, round_geometry

RING = [[0.123, 0.456], [1.987, 0.456], [1.987, 1.5], [0.123, 0.456]]


def ingested(document: Any, precision: int) -> list[Any]:
    """Return the features ingest_document makes of ``document``, decoded again."""
    result = ingest_document(orjson.dumps(document), precision)
    assert isinstance(result, Accepted)
    return [orjson.loads(feature) for feature in result.features]


@pytest.mark.parametrize(
    ("kind", "coordinates", "rounded"),
    [
        ("Point", [1.26, -2.34], [1.3, -2.3]),
        ("MultiPoint", [[1.26, 2.0], [3.04, 4.96]], [[1.3, 2.0], [3.0, 5.0]]),
        ("LineString", [[0.05, 0.15], [0.25, 0.35]], [[0.1, 0.1], [0.2, 0.3]]),
        ("MultiLineString", [[[1.06, 2.0], [3.0, 4.0]]], [[[1.1, 2.0], [3.0, 4.0]]]),
        ("Polygon", [RING], [[[0.1, 0.5], [2.0, 0.5], [2.0, 1.5], [0.1, 0.5]]]),
        ("MultiPolygon", [[RING]], [[[[0.1, 0.5], [2.0, 0.5], [2.0, 1.5], [0.1, 0.5]]]]),
    ],
)
def test_every_geometry_type_is_rounded(kind: str, coordinates: Any, rounded: Any) -> None:
    geometry = {"type": kind, "coordinates": coordinates}
    round_geometry(geometry, 1)
    assert geometry == {"type": kind, "coordinates": rounded}


def test_nested_geometry_collections_are_rounded_all_the_way_down() -> None:
    inner = {
        "type": "GeometryCollection",
        "geometries": [{"type": "Point", "coordinates": [1.26, 2.0]}],
    }
    outer = {
        "type": "GeometryCollection",
        "geometries": [inner, {"type": "LineString", "coordinates": [[0.06, 0.0], [1.0, 1.04]]}],
    }
    [feature] = ingested(outer, 1)
    assert feature["geometry"] == {
        "type": "GeometryCollection",
        "geometries": [
            {
                "type": "GeometryCollection",
                "geometries": [{"type": "Point", "coordinates": [1.3, 2.0]}],
            },
            {"type": "LineString", "coordinates": [[0.1, 0.0], [1.0, 1.0]]},
        ],
    }


def test_altitudes_are_rounded_too() -> None:
    [feature] = ingested({"type": "Point", "coordinates": [1.26, 2.0, 100.55]}, 1)
    assert feature["geometry"]["coordinates"] == [1.3, 2.0, 100.5]


def test_halves_round_to_even_on_the_exact_binary_value() -> None:
    # 2.675 is stored a little below 2.675, 0.125 exactly: Python's round says 2.67 and 0.12.
    [feature] = ingested({"type": "Point", "coordinates": [2.675, 0.125]}, 2)
    assert feature["geometry"]["coordinates"] == [2.67, 0.12]


def test_integers_stay_integers() -> None:
    [feature] = ingested({"type": "LineString", "coordinates": [[1, 2], [3.14159, 4]]}, 2)
    assert orjson.dumps(feature["geometry"]["coordinates"]) == b"[[1,2],[3.14,4]]"


def test_precision_zero_keeps_floats() -> None:
    [feature] = ingested({"type": "Point", "coordinates": [1.5, 2.5]}, 0)
    assert orjson.dumps(feature["geometry"]["coordinates"]) == b"[2.0,2.0]"


def test_precision_minus_one_keeps_coordinates_as_they_are() -> None:
    coordinates = [[0.123456789123, -45.987654321987], [1, 2]]
    [feature] = ingested({"type": "LineString", "coordinates": coordinates}, -1)
    assert feature["geometry"]["coordinates"] == coordinates


def test_bbox_properties_id_and_foreign_members_are_left_as_given() -> None:
    document = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": "site-1",
                "bbox": [0.123456, 0.123456, 0.123456, 0.123456],
                "geometry": {"type": "Point", "coordinates": [0.123456, 0.123456], "note": 0.55},
                "properties": {"value": 0.987654, "nested": {"list": [0.111111]}},
                "source": {"scale": 0.333333},
            }
        ],
    }
    [feature] = ingested(document, 2)
    assert feature == {
        "type": "Feature",
        "id": "site-1",
        "bbox": [0.123456, 0.123456, 0.123456, 0.123456],
        "geometry": {"type": "Point", "coordinates": [0.12, 0.12], "note": 0.55},
        "properties": {"value": 0.987654, "nested": {"list": [0.111111]}},
        "source": {"scale": 0.333333},
    }


def test_a_bare_geometry_becomes_a_feature_with_null_properties() -> None:
    assert ingested({"type": "Point", "coordinates": [1.0, 2.0]}, 6) == [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [1.0, 2.0]},
            "properties": None,
        }
    ]
    assert as_feature({"type": "Point"}) == {
        "type": "Feature",
        "geometry": {"type": "Point"},
        "properties": None,
    }


def test_a_single_feature_comes_out_as_itself() -> None:
    feature = {"type": "Feature", "properties": {"a": 1}, "geometry": None, "id": 4}
    assert ingested(feature, 6) == [feature]


def test_the_features_of_a_collection_come_out_in_order_and_the_collection_goes() -> None:
    features = [
        {
            "type": "Feature",
            "properties": {"n": n},
            "geometry": {"type": "Point", "coordinates": [n, 0.5]},
        }
        for n in range(5)
    ]
    document = {
        "type": "FeatureCollection",
        "features": features,
        "bbox": [0, 0, 4, 1],
        "name": "x",
    }
    assert ingested(document, 6) == features


def test_encoded_features_are_compact_orjson() -> None:
    document = {"type": "Feature", "geometry": None, "properties": {"a": "é"}}
    result = ingest_document(orjson.dumps(document), 6)
    assert result == Accepted([orjson.dumps(document)], [])


# The float-only rounding of the fused pass must be Python's round to the bit.
def same_float(a: float, b: float) -> bool:
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def assert_rounds_as_round_does(x: float, y: float, precision: int) -> None:
    [[u, v]] = line_rounder(precision)([[x, y]])
    assert same_float(u, round(x, precision))
    assert same_float(v, round(y, precision))
    p, q = point_rounder(precision)([x, y])
    assert same_float(p, round(x, precision))
    assert same_float(q, round(y, precision))


@settings(max_examples=1000, deadline=None)
@given(x=st.floats(-180, 180), y=st.floats(-90, 90), precision=st.integers(0, 15))
def test_fast_rounding_equals_round_to_the_bit(x: float, y: float, precision: int) -> None:
    assert_rounds_as_round_does(x, y, precision)


@settings(max_examples=2000, deadline=None)
@given(
    precision=st.integers(0, FAST_DIGITS),
    share=st.floats(0, 1, exclude_max=True),
    steps=st.integers(-2, 2),
)
def test_values_next_to_a_half_round_as_round_does(
    precision: int, share: float, steps: int
) -> None:
    # A decimal half at this precision, then a float or two either side of it.
    scale = 10**precision
    x = (int(share * 360 * scale) - 180 * scale + 0.5) / scale
    for _ in range(abs(steps)):
        x = math.nextafter(x, math.copysign(math.inf, steps))
    x = max(-180.0, min(180.0, x))
    assert_rounds_as_round_does(x, x / 2, precision)


@pytest.mark.parametrize("value", [-0.0, -1e-300, -4e-7, -5e-324])
def test_numbers_that_round_to_zero_keep_their_sign(value: float) -> None:
    [u, _] = point_rounder(6)([value, 0.0])
    assert same_float(u, round(value, 6))


@pytest.mark.parametrize(
    "position",
    [[1, 2.0], [True, 2.0], [1.0, None], [1.0, 2.0, 3], [1.0], [181.0, 0.0], [0.0, -90.5]],
)
@pytest.mark.parametrize("precision", [-1, 3, FAST_DIGITS + 1])
def test_the_fast_rounders_refuse_what_they_do_not_handle(position: Any, precision: int) -> None:
    with pytest.raises((Unusual, ValueError)):
        line_rounder(precision)([[0.0, 0.0], position])
    with pytest.raises((Unusual, ValueError)):
        point_rounder(precision)(position)


@pytest.mark.parametrize("precision", [-1, 3, FAST_DIGITS + 1])
def test_the_fast_rounders_take_3d_positions_but_not_a_mix(precision: int) -> None:
    line = [[0.12345, 1.5, 100.06789], [2.25, 3.75, -4.00049]]
    expected = [[round(n, precision) if precision >= 0 else n for n in p] for p in line]
    assert line_rounder(precision)(line) == expected
    assert point_rounder(precision)(line[0]) == expected[0]
    with pytest.raises((Unusual, ValueError)):
        line_rounder(precision)([[0.0, 0.0], *line])
