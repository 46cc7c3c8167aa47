"""The hot path: ingest_document agrees with check_bytes and the careful transform."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoingest.geojson import Accepted, Problem, Rejected, check_bytes, ingest_document
from geoingest.geojson.transform import output_features, round_feature

# Valid documents first, with what makes the rounding and the warnings work:
# halves, integers, altitudes, positions out of range, rings wound either way,
# empty coordinates, collections. Then one mutation, somewhere, for the errors.
halves = st.builds(lambda k, p: (k + 0.5) / 10.0**p, st.integers(-1800, 1800), st.integers(0, 6))
plain_positions = st.tuples(st.floats(-180, 180), st.floats(-90, 90)).map(list)
odd_positions = st.one_of(
    plain_positions,
    st.tuples(st.one_of(halves, st.integers(-180, 180)), st.floats(-90, 90)).map(list),
    st.tuples(st.floats(-180, 180), st.floats(-90, 90), st.floats(-100, 100)).map(list),
    st.tuples(st.floats(-400, 400), st.floats(-200, 200)).map(list),
)


def shapes(positions: st.SearchStrategy[list[Any]]) -> dict[str, st.SearchStrategy[Any]]:
    """Return a coordinates strategy per geometry type, built on ``positions``."""
    lines = st.lists(positions, min_size=2, max_size=6)
    rings = st.lists(positions, min_size=3, max_size=6).map(lambda ring: [*ring, list(ring[0])])
    polygons = st.lists(rings, min_size=1, max_size=3)
    return {
        "Point": positions,
        "MultiPoint": st.lists(positions, min_size=1, max_size=4),
        "LineString": lines,
        "MultiLineString": st.lists(lines, min_size=1, max_size=3),
        "Polygon": polygons,
        "MultiPolygon": st.lists(polygons, min_size=1, max_size=3),
    }


altitudes = st.tuples(st.floats(-180, 180), st.floats(-90, 90), st.floats(-100, 9000)).map(list)
PLAIN, PLAIN_3D, ODD = shapes(plain_positions), shapes(altitudes), shapes(odd_positions)
bboxes = st.lists(st.floats(-10, 10), min_size=4, max_size=4)
foreign = st.one_of(
    *[st.just({})] * 4,
    st.dictionaries(st.sampled_from(["title", "bbox", "crs"]), bboxes, max_size=1),
)


def shaped(kind: str, coordinates: Any, more: dict[str, Any], first: bool) -> dict[str, Any]:
    core = {"type": kind, "coordinates": coordinates}
    return {**more, **core} if first else {**core, **more}


simple = st.one_of(
    *[
        st.builds(
            shaped,
            st.just(kind),
            st.one_of(PLAIN[kind], PLAIN[kind], PLAIN_3D[kind], ODD[kind], st.just([])),
            foreign,
            st.booleans(),
        )
        for kind in PLAIN
    ]
)
collected = st.recursive(
    simple,
    lambda inner: st.builds(
        lambda members: {"type": "GeometryCollection", "geometries": members},
        st.lists(inner, max_size=3),
    ),
    max_leaves=3,
)
geometries = st.one_of(*[simple] * 4, collected)
properties = st.one_of(
    st.none(), st.dictionaries(st.text(max_size=3), st.floats(-1, 1), max_size=2)
)
ids = st.one_of(st.text(max_size=3), st.integers(-(2**63), 2**63 - 1), st.floats(-1, 1))


def featured(geometry: Any, props: Any, more: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": props, **more}


features = st.builds(
    featured,
    st.one_of(geometries, geometries, geometries, st.none()),
    properties,
    st.one_of(foreign, st.fixed_dictionaries({"id": ids})),
)
collections = st.builds(
    lambda items, more: {"type": "FeatureCollection", "features": items, **more},
    st.lists(features, min_size=1, max_size=6),
    foreign,
)
valid_documents = st.one_of(collections, collections, features, geometries)
JUNK = [None, True, False, 0, 1.5, "x", "Feature", [], [1.0], [[1.0, 2.0]], {}, {"type": "Point"}]
DROP = "drop this member"
NUDGE = "add 0.5 to this number"


def mutated(document: Any, choice: int, junk: Any) -> Any:
    """Replace or drop one value, chosen among all those in ``document``."""
    slots: list[tuple[Any, Any]] = []
    todo = [document]
    while todo:
        value = todo.pop()
        keys = value.keys() if isinstance(value, dict) else range(len(value))
        for key in keys:
            slots.append((value, key))
            if isinstance(value[key], dict | list):
                todo.append(value[key])
    if not slots:
        return junk
    container, key = slots[choice % len(slots)]
    if junk == DROP and isinstance(container, dict):
        del container[key]
    elif junk == NUDGE:
        numbers = [slot for slot in slots if type(slot[0][slot[1]]) is float]
        if numbers:
            container, key = numbers[choice % len(numbers)]
            container[key] += 0.5
    else:
        container[key] = junk
    return document


documents = st.one_of(
    valid_documents,
    st.builds(
        mutated, valid_documents, st.integers(0, 10**6), st.sampled_from([*JUNK, DROP, NUDGE])
    ),
)
precisions = st.sampled_from([-1, 0, 1, 3, 6, 9, 12])


def carefully(raw: bytes, precision: int) -> list[bytes]:
    """Encode the features of a valid document the slow, plain way."""
    result = []
    for feature in output_features(orjson.loads(raw)):
        round_feature(feature, precision)
        result.append(orjson.dumps(feature))
    return result


def assert_agrees(document: Any, precision: int) -> None:
    """Assert that ingest_document's verdict and output follow the careful path's."""
    raw = orjson.dumps(document)
    problems = check_bytes(raw)
    errors = [problem for problem in problems if not problem.warning]
    result = ingest_document(raw, precision)
    if errors:
        assert result == Rejected(errors)
    else:
        assert result == Accepted(carefully(raw, precision), problems)


SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(SETTINGS, max_examples=600)
@given(document=documents, precision=precisions)
def test_ingest_accepts_exactly_what_the_careful_check_accepts(
    document: Any, precision: int
) -> None:
    assert_agrees(document, precision)


@settings(SETTINGS, max_examples=300)
@given(
    drawn=st.lists(PLAIN["LineString"], min_size=1, max_size=20),
    precision=precisions,
)
def test_plain_features_come_out_as_the_careful_transform_makes_them(
    drawn: list[Any], precision: int
) -> None:
    document = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": line},
                "id": i,
                "properties": {"n": i},
            }
            for i, line in enumerate(drawn)
        ],
    }
    raw = orjson.dumps(document)
    result = ingest_document(raw, precision)
    assert isinstance(result, Accepted)
    assert result.features == carefully(raw, precision)
    assert result.warnings == check_bytes(raw)


def near_half(precision: int, share: float, steps: int) -> float:
    """Return a decimal half at ``precision`` in longitude range, moved ``steps`` floats."""
    scale = 10**precision
    value = (int(share * 180 * scale) - 90 * scale + 0.5) / scale
    for _ in range(abs(steps)):
        value = math.nextafter(value, math.copysign(math.inf, steps))
    return value


@settings(SETTINGS, max_examples=200)
@given(
    precision=st.integers(0, 9),
    numbers=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(-2, 2)), min_size=4, max_size=60
    ),
)
def test_numbers_next_to_a_half_come_out_as_round_makes_them(
    precision: int, numbers: list[tuple[float, int]]
) -> None:
    values = [near_half(precision, share, steps) for share, steps in numbers]
    line = [[x, y / 2] for x, y in zip(values, reversed(values), strict=True)]
    feature = {"type": "Feature", "properties": None}
    document = {
        "type": "FeatureCollection",
        "features": [{**feature, "geometry": {"type": "LineString", "coordinates": line}}],
    }
    assert_agrees(document, precision)


RING = [[0.5, 0.5], [1.5, 0.5], [1.5, 1.5], [0.5, 1.5], [0.5, 0.5]]
ONE_DEFECT = {
    "a_plain_point": {"type": "Point", "coordinates": [1.25, 2.5]},
    "an_integer_position": {"type": "Point", "coordinates": [1, 2.5]},
    "a_boolean_in_a_position": {"type": "LineString", "coordinates": [[1.0, 2.0], [True, 2.0]]},
    "a_string_in_a_position": {"type": "Point", "coordinates": [1.0, "2"]},
    "an_altitude": {"type": "LineString", "coordinates": [[1.0, 2.0, 0.5], [3.0, 4.0, 5.0]]},
    "a_boolean_altitude": {"type": "Point", "coordinates": [1.0, 2.0, True]},
    "an_integer_altitude": {"type": "MultiPoint", "coordinates": [[1.0, 2.0, 3]]},
    "a_mix_of_2d_and_3d": {"type": "LineString", "coordinates": [[1.0, 2.0], [3.0, 4.0, 5.0]]},
    "a_3d_ring_clockwise": {"type": "Polygon", "coordinates": [[[*p, 1.0] for p in RING[::-1]]]},
    "four_numbers": {"type": "Point", "coordinates": [1.0, 2.0, 3.0, 4.0]},
    "one_number": {"type": "Point", "coordinates": [1.0]},
    "a_latitude_out_of_range": {"type": "LineString", "coordinates": [[1.0, 2.0], [3.0, 95.0]]},
    "a_longitude_out_of_range": {"type": "Point", "coordinates": [-181.0, 2.0]},
    "a_line_of_one": {"type": "LineString", "coordinates": [[1.0, 2.0]]},
    "an_empty_line": {"type": "LineString", "coordinates": []},
    "an_open_ring": {"type": "Polygon", "coordinates": [[*RING[:-1], [0.5, 0.75]]]},
    "a_ring_of_three": {"type": "Polygon", "coordinates": [[*RING[:2], RING[0]]]},
    "a_clockwise_ring": {"type": "Polygon", "coordinates": [RING[::-1]]},
    "a_ring_over_the_antimeridian": {
        "type": "Polygon",
        "coordinates": [[[179.0, 0.0], [-179.0, 0.0], [-179.0, 1.0], [179.0, 1.0], [179.0, 0.0]]],
    },
    "an_empty_multipoint": {"type": "MultiPoint", "coordinates": []},
    "a_short_line_in_a_multilinestring": {
        "type": "MultiLineString",
        "coordinates": [[[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0]]],
    },
    "an_open_ring_in_a_multipolygon": {
        "type": "MultiPolygon",
        "coordinates": [[RING], [RING, [*RING[:-1], [0.5, 0.75]]]],
    },
    "a_jump_in_a_multilinestring": {
        "type": "MultiLineString",
        "coordinates": [[[1.0, 2.0], [3.0, 4.0]], [[170.0, 0.0], [-170.0, 0.0]]],
    },
    "a_hole_wound_counterclockwise": {"type": "Polygon", "coordinates": [RING, RING]},
    "a_geometry_with_a_bbox": {"type": "Point", "coordinates": [1.0, 2.0], "bbox": [1, 2]},
    "a_geometry_with_properties": {"type": "Point", "coordinates": [1.0, 2.0], "properties": {}},
    "a_geometry_with_a_foreign_member": {"type": "Point", "coordinates": [1.0, 2.0], "x": 1},
    "a_collection": {"type": "GeometryCollection", "geometries": [{"type": "Point"}]},
    "an_unknown_type": {"type": "Pointe", "coordinates": [1.0, 2.0]},
    "a_negative_zero": {"type": "Point", "coordinates": [-0.0, -1e-9]},
    "no_geometry": None,
    "a_string_geometry": "POINT (1 2)",
}
FEATURE_DEFECTS = {
    "properties_as_a_list": {"properties": []},
    "a_boolean_id": {"id": False},
    "a_features_member": {"features": []},
    "a_crs_member": {"crs": None},
    "a_bbox": {"bbox": [0, 0, 1, 1]},
}


@pytest.mark.parametrize("precision", [-1, 0, 2, 6, 10])
@pytest.mark.parametrize("geometry", [pytest.param(g, id=name) for name, g in ONE_DEFECT.items()])
def test_each_shortcut_of_the_fused_pass_agrees_with_the_careful_check(
    geometry: Any, precision: int
) -> None:
    plain = {
        "type": "Feature",
        "properties": {},
        "geometry": {"type": "Point", "coordinates": [0.0, 0.0]},
    }
    odd = {"type": "Feature", "properties": {"a": 1.23456}, "geometry": geometry, "id": 3}
    assert_agrees({"type": "FeatureCollection", "features": [plain, odd, plain]}, precision)


@pytest.mark.parametrize(
    "members", [pytest.param(m, id=name) for name, m in FEATURE_DEFECTS.items()]
)
def test_feature_members_that_need_the_careful_check_get_it(members: dict[str, Any]) -> None:
    odd = {"type": "Feature", "properties": {}, "geometry": None, **members}
    assert_agrees({"type": "FeatureCollection", "features": [odd]}, 6)


def test_a_broken_feature_after_rounded_ones_is_reported_as_check_bytes_reports_it() -> None:
    good = {
        "type": "Feature",
        "properties": {},
        "geometry": {"type": "Point", "coordinates": [0.123456, 1.0]},
    }
    bad = {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [1.0]}}
    raw = orjson.dumps({"type": "FeatureCollection", "features": [good, good, bad, bad]})
    result = ingest_document(raw, 2)
    assert isinstance(result, Rejected)
    assert [(p.rule, p.pointer) for p in result.problems] == [
        ("position-too-short", "/features/2/geometry/coordinates"),
        ("position-too-short", "/features/3/geometry/coordinates"),
    ]


POINT = b'{"type": "Point", "coordinates": [1.5, 2.5]}'
FEATURE = b'{"type": "Feature", "properties": {"a": "x:y"}, "geometry": ' + POINT + b"}"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(POINT.replace(b'"type"', b'"type": "Point", "type"'), id="geometry"),
        pytest.param(FEATURE[:-1] + b', "id": 1, "id": 2}', id="feature"),
        pytest.param(FEATURE.replace(b'"a"', b'"a": 1, "a"'), id="properties"),
        pytest.param(
            b'{"type": "FeatureCollection", "features": [' + FEATURE + b'], "features": []}',
            id="collection",
        ),
        pytest.param(
            b'{"type": "FeatureCollection", "features": ['
            + FEATURE
            + b", "
            + FEATURE.replace(b'"x:y"', b'{"k": 1, "k": 1}')
            + b"]}",
            id="second_feature",
        ),
        pytest.param(
            b'{"type": "FeatureCollection", "name": {"a": 1, "a": 2}, "features": []}',
            id="collection_member",
        ),
    ],
)
def test_a_member_named_twice_is_refused_as_check_bytes_refuses_it(raw: bytes) -> None:
    expected = check_bytes(raw)
    assert [problem.rule for problem in expected] == ["duplicate-member"]
    assert ingest_document(raw, 6) == Rejected(expected)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(FEATURE, id="a_colon_in_a_string"),
        pytest.param(FEATURE.replace(b"x:y", b"x\\u003ay"), id="an_escaped_colon"),
        pytest.param(POINT, id="a_bare_geometry"),
        pytest.param(
            b'{"type": "FeatureCollection", "name": "a:b", "features": [' + FEATURE + b"]}",
            id="a_collection_with_members",
        ),
    ],
)
def test_colons_in_strings_are_not_taken_for_a_member_named_twice(raw: bytes) -> None:
    result = ingest_document(raw, 6)
    assert isinstance(result, Accepted)
    assert check_bytes(raw) == []


def test_a_collection_member_too_deep_to_write_is_no_obstacle() -> None:
    raw = b'{"type": "FeatureCollection", "features": [], "x": ' + b"[" * 300 + b"]" * 300 + b"}"
    assert check_bytes(raw) == []
    assert ingest_document(raw, 6) == Accepted([], [])


def test_a_decoding_problem_is_the_only_problem() -> None:
    assert ingest_document(b"\xef\xbb\xbf{}", 6) == Rejected(check_bytes(b"\xef\xbb\xbf{}"))


def test_warnings_of_an_accepted_file_are_listed_in_document_order() -> None:
    clockwise = [[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]
    jump = [[170.0, 0.0], [-170.0, 0.0]]
    document = {
        "type": "FeatureCollection",
        "crs": {},
        "features": [
            {
                "type": "Feature",
                "properties": None,
                "geometry": {"type": "Polygon", "coordinates": [clockwise]},
            },
            {
                "type": "Feature",
                "properties": None,
                "geometry": {"type": "LineString", "coordinates": jump},
            },
            {
                "type": "Feature",
                "properties": None,
                "geometry": {"type": "Point", "coordinates": []},
            },
        ],
    }
    result = ingest_document(orjson.dumps(document), 6)
    assert isinstance(result, Accepted)
    assert [(p.rule, p.pointer) for p in result.warnings] == [
        ("crs-member", "/crs"),
        ("winding-order", "/features/0/geometry/coordinates/0"),
        ("crosses-antimeridian", "/features/1/geometry/coordinates"),
        ("empty-coordinates", "/features/2/geometry/coordinates"),
    ]
    assert all(isinstance(p, Problem) and p.warning for p in result.warnings)


def test_a_precision_below_minus_one_is_refused() -> None:
    with pytest.raises(ValueError, match="precision"):
        ingest_document(b"{}", -2)
