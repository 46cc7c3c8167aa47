"""The careful check: what check_bytes reports, under which rule id, and where."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from geoingest.geojson import ERROR_RULES, WARNING_RULES, Problem, check_bytes
from geoingest.geojson.validate import MAX_COLLECTION_DEPTH

SQUARE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]
SQUARE_CW = SQUARE[::-1]
HOLE = [[0.2, 0.2], [0.2, 0.8], [0.8, 0.8], [0.8, 0.2], [0.2, 0.2]]


def point(*numbers: Any) -> dict[str, Any]:
    return {"type": "Point", "coordinates": list(numbers)}


def feature(geometry: Any = None, **members: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": {}, **members}


def collection(*features: Any, **members: Any) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features), **members}


def found(document: Any) -> list[tuple[str, str]]:
    """Return (rule, pointer) for each problem check_bytes finds in ``document``."""
    raw = document if isinstance(document, bytes) else orjson.dumps(document)
    return [(problem.rule, problem.pointer) for problem in check_bytes(raw)]


def nested_collections(depth: int) -> dict[str, Any]:
    geometry: dict[str, Any] = point(1.0, 2.0)
    for _ in range(depth):
        geometry = {"type": "GeometryCollection", "geometries": [geometry, point(3.0, 4.0)]}
    return geometry


ERROR_CASES = [
    # Decoding.
    pytest.param(b"", [("empty-file", "")], id="zero_bytes_are_empty_file"),
    pytest.param(b" \r\n\t ", [("empty-file", "")], id="only_whitespace_is_empty_file"),
    pytest.param(b"\xef\xbb\xbf{}", [("bom", "")], id="a_byte_order_mark_is_bom"),
    pytest.param(b'{"a": "\xff"}', [("encoding", "")], id="bytes_outside_utf8_are_encoding"),
    pytest.param(b'["\\ud800"]', [("encoding", "")], id="an_escaped_lone_surrogate_is_encoding"),
    pytest.param(b"[NaN]", [("json-nan", "")], id="nan_is_json_nan"),
    pytest.param(b"[Infinity]", [("json-nan", "")], id="infinity_is_json_nan"),
    pytest.param(b"[-Infinity]", [("json-nan", "")], id="minus_infinity_is_json_nan"),
    pytest.param(b"[" * 1100 + b"]" * 1100, [("json-too-deep", "")], id="deep_arrays_are_too_deep"),
    pytest.param(b"[1e400]", [("number-out-of-range", "")], id="1e400_is_out_of_range"),
    pytest.param(b"[-2e308]", [("number-out-of-range", "")], id="minus_2e308_is_out_of_range"),
    pytest.param(b'{"type": "Point"', [("json-syntax", "")], id="a_truncated_text_is_json_syntax"),
    pytest.param(b'{"a": 1 "b": 2}', [("json-syntax", "")], id="a_missing_comma_is_json_syntax"),
    pytest.param(b"[nan]", [("json-syntax", "")], id="lowercase_nan_is_json_syntax"),
    pytest.param(b"{} {}", [("json-syntax", "")], id="two_values_are_json_syntax"),
    pytest.param(
        b'{"type": "Point", "coordinates": [1, 2], "type": "Point"}',
        [("duplicate-member", "/type")],
        id="a_member_named_twice_is_duplicate_member",
    ),
    pytest.param(b"\x00\xff not json", [("encoding", "")], id="binary_is_encoding"),
    # The top level.
    pytest.param(None, [("not-geojson", "")], id="null_is_not_geojson"),
    pytest.param([point(1.0, 2.0)], [("not-geojson", "")], id="an_array_is_not_geojson"),
    pytest.param("Point", [("not-geojson", "")], id="a_string_is_not_geojson"),
    pytest.param({"coordinates": [1.0, 2.0]}, [("missing-type", "")], id="no_type_is_missing_type"),
    pytest.param({"type": "point"}, [("unknown-type", "/type")], id="types_are_case_sensitive"),
    pytest.param({"type": "Polgon"}, [("unknown-type", "/type")], id="a_misspelt_type_is_unknown"),
    pytest.param({"type": {}}, [("unknown-type", "/type")], id="a_type_object_is_unknown"),
    # FeatureCollection.
    pytest.param(
        {"type": "FeatureCollection"}, [("missing-member", "")], id="a_collection_needs_features"
    ),
    pytest.param(
        {"type": "FeatureCollection", "features": {}},
        [("not-an-array", "/features")],
        id="features_must_be_an_array",
    ),
    pytest.param(
        collection(None, point(1.0, 2.0), {"type": "Featur"}),
        [
            ("not-a-feature", "/features/0"),
            ("not-a-feature", "/features/1"),
            ("unknown-type", "/features/2/type"),
        ],
        id="features_holds_only_features",
    ),
    pytest.param(
        collection(properties={}, coordinates=[], geometry=None, geometries=[]),
        [
            ("changed-semantics", "/properties"),
            ("changed-semantics", "/coordinates"),
            ("changed-semantics", "/geometry"),
            ("changed-semantics", "/geometries"),
        ],
        id="a_collection_must_not_look_like_a_feature_or_geometry",
    ),
    # Feature.
    pytest.param(
        {"type": "Feature"},
        [("missing-member", ""), ("missing-member", "")],
        id="a_feature_needs_geometry_and_properties",
    ),
    pytest.param(
        {"type": "Feature", "geometry": None, "properties": []},
        [("bad-properties", "/properties")],
        id="properties_must_be_an_object_or_null",
    ),
    pytest.param(feature(id=True), [("bad-id", "/id")], id="a_boolean_id_is_bad"),
    pytest.param(feature(id={}), [("bad-id", "/id")], id="an_object_id_is_bad"),
    pytest.param(feature(id=None), [("bad-id", "/id")], id="a_null_id_is_bad"),
    pytest.param(
        feature("Point"), [("not-a-geometry", "/geometry")], id="geometry_must_be_an_object"
    ),
    pytest.param(
        feature(feature()), [("not-a-geometry", "/geometry")], id="a_feature_is_not_a_geometry"
    ),
    pytest.param(
        feature(features=[]), [("changed-semantics", "/features")], id="a_feature_has_no_features"
    ),
    # Geometry members.
    pytest.param({"type": "Point"}, [("missing-member", "")], id="a_point_needs_coordinates"),
    pytest.param(
        {**point(1.0, 2.0), "geometry": {}, "properties": {}, "features": [], "geometries": []},
        [
            ("changed-semantics", "/geometry"),
            ("changed-semantics", "/properties"),
            ("changed-semantics", "/features"),
            ("changed-semantics", "/geometries"),
        ],
        id="a_geometry_must_not_look_like_a_feature_or_collection",
    ),
    pytest.param(
        {"type": "GeometryCollection", "coordinates": []},
        [("missing-member", ""), ("changed-semantics", "/coordinates")],
        id="a_geometry_collection_has_geometries_not_coordinates",
    ),
    pytest.param(
        {"type": "GeometryCollection", "geometries": {}},
        [("not-an-array", "/geometries")],
        id="geometries_must_be_an_array",
    ),
    pytest.param(
        {"type": "GeometryCollection", "geometries": [point(1.0, 2.0), False]},
        [("not-a-geometry", "/geometries/1")],
        id="geometries_holds_only_geometries",
    ),
    pytest.param(
        {"type": "LineString", "coordinates": "0,0 1,1"},
        [("not-an-array", "/coordinates")],
        id="coordinates_must_be_an_array",
    ),
    # Coordinates.
    pytest.param(
        {"type": "Point", "coordinates": [[1.0, 2.0]]},
        [("bad-nesting", "/coordinates")],
        id="a_point_nested_too_deep",
    ),
    pytest.param(
        {"type": "MultiPoint", "coordinates": [1.0, 2.0]},
        [("bad-nesting", "/coordinates")],
        id="a_multipoint_nested_too_shallow",
    ),
    pytest.param(
        {"type": "Polygon", "coordinates": [5]},
        [("bad-nesting", "/coordinates")],
        id="a_polygon_nested_too_shallow",
    ),
    pytest.param(
        {"type": "MultiPolygon", "coordinates": [[[1.0]]]},
        [("bad-nesting", "/coordinates/0/0")],
        id="a_multipolygon_nested_too_shallow",
    ),
    pytest.param(
        {"type": "LineString", "coordinates": [["a", 1.0], [True, 2.0], [None, 3.0]]},
        [
            ("position-not-number", "/coordinates/0/0"),
            ("position-not-number", "/coordinates/1/0"),
            ("position-not-number", "/coordinates/2/0"),
        ],
        id="strings_booleans_and_null_are_not_numbers",
    ),
    pytest.param(point(1.5), [("position-too-short", "/coordinates")], id="one_number_is_short"),
    pytest.param(
        {"type": "MultiPoint", "coordinates": [[1.0, 2.0], []]},
        [("position-too-short", "/coordinates/1")],
        id="an_empty_position_is_short",
    ),
    pytest.param(
        {"type": "LineString", "coordinates": [[1.0, 2.0]]},
        [("line-too-short", "/coordinates")],
        id="a_line_of_one_position_is_short",
    ),
    pytest.param(
        {"type": "MultiLineString", "coordinates": [[[0.0, 0.0], [1.0, 1.0]], [[2.0, 2.0]]]},
        [("line-too-short", "/coordinates/1")],
        id="each_line_of_a_multilinestring_needs_two_positions",
    ),
    pytest.param(
        {"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]]},
        [("ring-too-short", "/coordinates/0")],
        id="a_ring_of_three_positions_is_short",
    ),
    pytest.param(
        {"type": "Polygon", "coordinates": [SQUARE[:-1]]},
        [("ring-not-closed", "/coordinates/0")],
        id="a_ring_must_end_where_it_starts",
    ),
    pytest.param(
        {"type": "Polygon", "coordinates": [[*SQUARE[:-1], [0.0, 0.0, 5.0]]]},
        [("ring-not-closed", "/coordinates/0")],
        id="a_ring_closed_with_another_altitude_is_open",
    ),
    pytest.param(
        {"type": "MultiPolygon", "coordinates": [[SQUARE], [SQUARE, HOLE[:-1]]]},
        [("ring-not-closed", "/coordinates/1/1")],
        id="each_ring_of_a_multipolygon_must_close",
    ),
    # bbox.
    pytest.param({**point(1.0, 2.0), "bbox": "0,0,1,1"}, [("bad-bbox", "/bbox")], id="bbox_text"),
    pytest.param({**point(1.0, 2.0), "bbox": [0, 0]}, [("bad-bbox", "/bbox")], id="bbox_of_two"),
    pytest.param({**point(1.0, 2.0), "bbox": [0, 0, 1]}, [("bad-bbox", "/bbox")], id="bbox_odd"),
    pytest.param(
        collection(bbox=[0, 0, 1, "1"]), [("bad-bbox", "/bbox/3")], id="bbox_holds_numbers_only"
    ),
    pytest.param(
        feature(bbox=[0, False, 1, 1]), [("bad-bbox", "/bbox/1")], id="a_bbox_boolean_is_bad"
    ),
    # What geoingest cannot write back.
    pytest.param(
        b'{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": null, '
        b'"properties": {}}, {"type": "Feature", "geometry": null, "properties": {"deep": '
        + b"[" * 300
        + b"]" * 300
        + b"}}]}",
        [("json-too-deep", "/features/1")],
        id="a_feature_too_deep_to_encode",
    ),
]

WARNING_CASES = [
    pytest.param(point(), [("empty-coordinates", "/coordinates")], id="an_empty_point"),
    pytest.param(
        feature({"type": "Polygon", "coordinates": []}),
        [("empty-coordinates", "/geometry/coordinates")],
        id="an_empty_polygon",
    ),
    pytest.param(
        {"type": "MultiPolygon", "coordinates": [[SQUARE], []]},
        [("empty-coordinates", "/coordinates/1")],
        id="an_empty_member_of_a_multipolygon",
    ),
    pytest.param(
        point(1.0, 2.0, 3.0, 4.0),
        [("position-too-long", "/coordinates")],
        id="a_position_of_four_numbers",
    ),
    pytest.param(
        {"type": "MultiPoint", "coordinates": [[0.0, 0.0], [190.0, 0.0], [0.0, -91.0]]},
        [("coordinates-out-of-range", "/coordinates/1")],
        id="the_first_position_out_of_range_per_geometry",
    ),
    pytest.param(
        {"type": "LineString", "coordinates": [[170.0, 45.0], [-170.0, 45.0]]},
        [("crosses-antimeridian", "/coordinates")],
        id="a_line_that_jumps_the_antimeridian",
    ),
    pytest.param(
        {"type": "Polygon", "coordinates": [SQUARE_CW]},
        [("winding-order", "/coordinates/0")],
        id="a_clockwise_exterior_ring",
    ),
    pytest.param(
        {"type": "Polygon", "coordinates": [SQUARE, HOLE[::-1]]},
        [("winding-order", "/coordinates/1")],
        id="a_counterclockwise_hole",
    ),
    pytest.param(
        {"type": "GeometryCollection", "geometries": [point(1.0, 2.0)]},
        [("single-geometry-collection", "/geometries")],
        id="a_collection_of_one_geometry",
    ),
    pytest.param(
        nested_collections(2),
        [("nested-geometry-collection", "/geometries/0")],
        id="a_collection_inside_a_collection",
    ),
    pytest.param(collection(crs={"type": "name"}), [("crs-member", "/crs")], id="a_crs_member"),
]

VALID_CASES = [
    pytest.param(point(1.0, 2.0), id="a_bare_point"),
    pytest.param(point(1, 2, 3), id="a_point_with_integers_and_altitude"),
    pytest.param(feature(), id="a_feature_without_geometry"),
    pytest.param(feature(point(1.0, 2.0), id="a", title="foreign"), id="a_feature_with_an_id"),
    pytest.param(feature(id=7.5, properties=None), id="a_number_id_and_null_properties"),
    pytest.param(collection(), id="an_empty_collection"),
    pytest.param({"type": "GeometryCollection", "geometries": []}, id="an_empty_geometries"),
    pytest.param(
        {"type": "Polygon", "coordinates": [SQUARE, HOLE], "bbox": [0, 0, 1, 1]},
        id="a_polygon_with_a_hole_and_bbox",
    ),
    pytest.param(
        {
            "type": "MultiLineString",
            "coordinates": [[[170, 45], [180, 45]], [[-180, 45], [-170, 45]]],
        },
        id="a_line_cut_at_the_antimeridian",
    ),
    pytest.param(collection(bbox=[0, 0, 0, 1, 1, 1], custom={"x": [1]}), id="a_3d_bbox"),
    pytest.param({"type": "Feature", "properties": {"a~b/c": 1}, "geometry": None}, id="odd_keys"),
]


@pytest.mark.parametrize(("document", "expected"), ERROR_CASES)
def test_errors_are_reported_with_their_rule_and_pointer(
    document: Any, expected: list[tuple[str, str]]
) -> None:
    assert found(document) == expected


@pytest.mark.parametrize(("document", "expected"), WARNING_CASES)
def test_what_rfc_7946_tolerates_is_a_warning(
    document: Any, expected: list[tuple[str, str]]
) -> None:
    raw = orjson.dumps(document)
    assert found(raw) == expected
    assert all(problem.warning for problem in check_bytes(raw))


@pytest.mark.parametrize("document", VALID_CASES)
def test_valid_documents_have_no_problem(document: Any) -> None:
    assert found(document) == []


def test_every_rule_in_the_catalogue_has_a_case() -> None:
    cases = [*ERROR_CASES, *WARNING_CASES]
    rules = {rule for case in cases for rule, _ in case.values[1]}  # type: ignore[attr-defined]
    assert rules == set(ERROR_RULES) | set(WARNING_RULES)


ALL_DOCUMENTS = [
    pytest.param(case.values[0], id=case.id)
    for case in [*ERROR_CASES, *WARNING_CASES, *VALID_CASES]
]


@pytest.mark.parametrize("document", ALL_DOCUMENTS)
def test_each_problem_is_one_catalogued_sentence(document: Any) -> None:
    raw = document if isinstance(document, bytes) else orjson.dumps(document)
    for problem in check_bytes(raw):
        catalogue = WARNING_RULES if problem.warning else ERROR_RULES
        assert problem.rule in catalogue
        assert problem.message.endswith(".")
        assert "\n" not in problem.message


def test_problems_follow_the_order_of_the_members_in_the_file() -> None:
    ordered = b'{"type": "Feature", "properties": 5, "id": {}, "geometry": null}'
    reversed_ = b'{"type": "Feature", "id": {}, "geometry": null, "properties": 5}'
    assert found(ordered) == [("bad-properties", "/properties"), ("bad-id", "/id")]
    assert found(reversed_) == [("bad-id", "/id"), ("bad-properties", "/properties")]


def test_an_objects_own_problems_come_before_those_of_its_members() -> None:
    broken = {"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, "x"], [0.0, 1.0]]]}
    document = {"type": "Feature", "geometry": broken}
    assert found(document) == [
        ("missing-member", ""),
        ("ring-too-short", "/geometry/coordinates/0"),
        ("position-not-number", "/geometry/coordinates/0/1/1"),
    ]


def test_every_feature_of_a_collection_is_checked() -> None:
    document = collection(feature(point(1.0)), feature(), feature(point("a", 2.0)))
    assert found(document) == [
        ("position-too-short", "/features/0/geometry/coordinates"),
        ("position-not-number", "/features/2/geometry/coordinates/0"),
    ]


def test_members_of_nested_collections_are_checked_with_their_path() -> None:
    inner = {"type": "GeometryCollection", "geometries": [point(1.0), point(2.0, 3.0)]}
    document = {"type": "GeometryCollection", "geometries": [point(0.0, 0.0), inner]}
    assert found(document) == [
        ("nested-geometry-collection", "/geometries/1"),
        ("position-too-short", "/geometries/1/geometries/0/coordinates"),
    ]


def test_pointers_escape_tilde_and_slash() -> None:
    document = {"type": "Feature", "geometry": None, "properties": None, "a/b~": 1, "id": []}
    assert found(document) == [("bad-id", "/id")]
    problems = check_bytes(orjson.dumps(collection(crs=1, **{"x/y": 1})))
    assert problems == [Problem("crs-member", "/crs", problems[0].message, warning=True)]


def test_a_problem_says_what_it_found() -> None:
    [problem] = check_bytes(b'{"type": "Point", "coordinates": [1.0, true]}')
    assert problem == Problem(
        "position-not-number",
        "/coordinates/1",
        "A position holds numbers only, not a boolean.",
    )


def test_a_json_syntax_problem_says_where_the_text_breaks() -> None:
    [problem] = check_bytes(b'{\n  "type": "Point",\n  "coordinates": [1.0 2.0]\n}')
    assert problem.rule == "json-syntax"
    assert "line 3, column 23" in problem.message


def test_collections_nested_deeper_than_the_limit_are_too_deep() -> None:
    problems = check_bytes(orjson.dumps(nested_collections(MAX_COLLECTION_DEPTH + 2)))
    errors = [(p.rule, p.pointer) for p in problems if not p.warning]
    assert errors == [("json-too-deep", "/geometries/0" * (MAX_COLLECTION_DEPTH + 1))]


def test_the_two_warnings_of_a_ring_come_in_a_fixed_order() -> None:
    ring = [[170.0, 0.0], [-170.0, 0.0], [-170.0, 1.0], [170.0, 1.0], [170.0, 0.0]]
    assert found({"type": "Polygon", "coordinates": [ring]}) == [
        ("crosses-antimeridian", "/coordinates/0"),
        ("winding-order", "/coordinates/0"),
    ]


def test_integers_beyond_64_bits_pass_as_floats() -> None:
    # orjson reads them as floats instead of refusing them; this pins that down.
    assert found(b'{"type": "Point", "coordinates": [18446744073709551616, 0]}') == [
        ("coordinates-out-of-range", "/coordinates")
    ]
