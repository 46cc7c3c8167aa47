"""The careful check: every RFC 7946 rule, every problem, in document order.

:class:`Walker` visits a decoded document the way a reader would, object by
object and member by member in the order the file gives them, and records a
:class:`~geoingest.geojson.problems.Problem` for each rule broken. An object's
own problems come before those of its members, so a list of problems reads top
to bottom like the file.

The coordinates of each geometry are checked by the methods :class:`Walker`
takes from :class:`~geoingest.geojson.coordinates.CoordinatesCheck`.

This is the reference for what geoingest accepts. The fused pass in
:mod:`geoingest.geojson.fused` is only a faster road to the same verdicts, and
hands every feature it is not sure about back to this one.
"""

from __future__ import annotations

from typing import Any

import orjson

from geoingest.geojson.coordinates import CoordinatesCheck, describe, is_number
from geoingest.geojson.decode import DecodeError, decode
from geoingest.geojson.problems import Problem, child, error, warning
from geoingest.geojson.transform import as_feature

COORDINATE_TYPES = frozenset(
    {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}
)
GEOMETRY_TYPES = COORDINATE_TYPES | {"GeometryCollection"}
GEOJSON_TYPES = GEOMETRY_TYPES | {"Feature", "FeatureCollection"}
FEATURE_TYPES = frozenset({"Feature"})

# Each level costs a few Python frames; 100 levels stay far from the interpreter's
# recursion limit, and deeper ones would exceed what orjson writes back anyway.
MAX_COLLECTION_DEPTH = 100

_REQUIRED = {
    "FeatureCollection": ("features",),
    "Feature": ("geometry", "properties"),
    "GeometryCollection": ("geometries",),
}
_FORBIDDEN = {
    "FeatureCollection": frozenset({"properties", "coordinates", "geometry", "geometries"}),
    "Feature": frozenset({"features"}),
    "GeometryCollection": frozenset({"geometry", "properties", "features", "coordinates"}),
}
_FORBIDDEN_IN_SHAPES = frozenset({"geometry", "properties", "features", "geometries"})
_WANTED = {
    GEOJSON_TYPES: ("not-geojson", "a GeoJSON object"),
    FEATURE_TYPES: ("not-a-feature", "a Feature object"),
    GEOMETRY_TYPES: ("not-a-geometry", "a Geometry object"),
}


def check_bytes(raw: bytes) -> list[Problem]:
    """Decode and check one file; return every problem, errors and warnings alike.

    Example:
        >>> [p.rule for p in check_bytes(b'{"type": "Point", "coordinates": [1.5]}')]
        ['position-too-short']
    """
    try:
        doc = decode(raw)
    except DecodeError as failure:
        return [failure.problem]
    return check_document(doc)


def check_document(doc: object) -> list[Problem]:
    """Return every problem of an already decoded document, in document order."""
    walker = Walker()
    walker.document(doc)
    return walker.problems


def has_error(problems: list[Problem]) -> bool:
    """Return True when at least one of ``problems`` is an error."""
    return any(not problem.warning for problem in problems)


class Walker(CoordinatesCheck):
    """Check a decoded document and keep the problems found in :attr:`problems`.

    A subclass may take the elements of a FeatureCollection another way by
    overriding :meth:`features`; :meth:`feature_entry` checks one of them.
    """

    def document(self, doc: object) -> None:
        """Check a whole document: a FeatureCollection, a Feature or a Geometry."""
        if not isinstance(doc, dict):
            text = f"A GeoJSON document is a JSON object, not {describe(doc)}."
            self.problems.append(error("not-geojson", "", text))
            return
        kind = self._type_of(doc, "", GEOJSON_TYPES)
        if kind == "FeatureCollection":
            self._collection(doc, "")
        elif kind == "Feature":
            self._feature_checked(doc, "", doc)
        elif kind is not None:
            start = len(self.problems)
            self._geometry(doc, "", 0)
            if not has_error(self.problems[start:]):
                self._check_encodable(as_feature(doc), "")

    def features(self, value: object, pointer: str) -> None:
        """Check the ``features`` member of a FeatureCollection."""
        if not isinstance(value, list):
            self.not_an_array(value, pointer, "features")
            return
        for index, item in enumerate(value):
            self.feature_entry(item, child(pointer, index))

    def feature_entry(self, item: object, pointer: str) -> None:
        """Check one element of ``features``, including that it can be written back."""
        if self._type_of(item, pointer, FEATURE_TYPES) is not None:
            assert isinstance(item, dict)  # _type_of returns a name only for objects
            self._feature_checked(item, pointer, item)

    def _feature_checked(self, feature: dict[str, Any], pointer: str, output: object) -> None:
        """Check a Feature, then that ``output``, its form in the output, encodes."""
        start = len(self.problems)
        self._feature(feature, pointer)
        if not has_error(self.problems[start:]):
            self._check_encodable(output, pointer)

    def _type_of(self, value: object, pointer: str, allowed: frozenset[str]) -> str | None:
        """Return the GeoJSON type of ``value`` if it is one of ``allowed``, else report."""
        rule, wanted = _WANTED[allowed]
        if not isinstance(value, dict):
            text = f"This must be {wanted}, not {describe(value)}."
            self.problems.append(error(rule, pointer, text))
            return None
        if "type" not in value:
            text = f"This object must be {wanted} but has no type member."
            self.problems.append(error("missing-type", pointer, text))
            return None
        kind = value["type"]
        if not isinstance(kind, str) or kind not in GEOJSON_TYPES:
            self.problems.append(error("unknown-type", child(pointer, "type"), _unknown(kind)))
            return None
        if kind not in allowed:
            self.problems.append(error(rule, pointer, f"This must be {wanted}, not a {kind}."))
            return None
        return kind

    def _collection(self, collection: dict[str, Any], pointer: str) -> None:
        """Check a FeatureCollection's members."""
        self._require(collection, pointer, "FeatureCollection")
        for name, value in collection.items():
            at = child(pointer, name)
            if self._common_member(name, value, at, _FORBIDDEN["FeatureCollection"]):
                continue
            if name == "features":
                self.features(value, at)

    def _feature(self, feature: dict[str, Any], pointer: str) -> None:
        """Check a Feature's members."""
        self._require(feature, pointer, "Feature")
        for name, value in feature.items():
            at = child(pointer, name)
            if self._common_member(name, value, at, _FORBIDDEN["Feature"]):
                continue
            if name == "geometry":
                self._geometry_member(value, at)
            elif name == "properties" and not (value is None or isinstance(value, dict)):
                text = f"A Feature's properties must be an object or null, not {describe(value)}."
                self.problems.append(error("bad-properties", at, text))
            elif name == "id" and not (isinstance(value, str) or is_number(value)):
                text = f"A Feature id must be a string or a number, not {describe(value)}."
                self.problems.append(error("bad-id", at, text))

    def _geometry_member(self, value: object, pointer: str) -> None:
        """Check a Feature's ``geometry``: a Geometry object or null."""
        if value is None:
            return
        if self._type_of(value, pointer, GEOMETRY_TYPES) is not None:
            assert isinstance(value, dict)  # _type_of returns a name only for objects
            self._geometry(value, pointer, 0)

    def _require(self, obj: dict[str, Any], pointer: str, kind: str) -> None:
        """Report each member that ``kind`` requires and ``obj`` lacks."""
        for name in _REQUIRED.get(kind, ("coordinates",)):
            if name not in obj:
                text = f"A {kind} must have a {name} member."
                self.problems.append(error("missing-member", pointer, text))

    def _common_member(
        self, name: str, value: object, pointer: str, forbidden: frozenset[str]
    ) -> bool:
        """Check a member every GeoJSON object may carry; return True if it was one."""
        if name == "type":
            return True
        if name in forbidden:
            text = f"The {name} member changes GeoJSON semantics and is not allowed here."
            self.problems.append(error("changed-semantics", pointer, text))
            return True
        if name == "bbox":
            self._bbox(value, pointer)
            return True
        if name == "crs":
            text = "The crs member belongs to the 2008 GeoJSON format; RFC 7946 uses WGS 84 only."
            self.problems.append(warning("crs-member", pointer, text))
            return True
        return False

    def _bbox(self, value: object, pointer: str) -> None:
        """Check a bbox: an array of 2n numbers, n being two or more."""
        if not isinstance(value, list):
            text = f"A bbox must be an array of numbers, not {describe(value)}."
            self.problems.append(error("bad-bbox", pointer, text))
            return
        if len(value) < 4 or len(value) % 2:
            text = f"A bbox holds 2n numbers (4 for 2D, 6 for 3D), not {len(value)}."
            self.problems.append(error("bad-bbox", pointer, text))
        for index, number in enumerate(value):
            if not is_number(number):
                text = f"A bbox holds numbers only, not {describe(number)}."
                self.problems.append(error("bad-bbox", child(pointer, index), text))

    def _geometry(self, geometry: dict[str, Any], pointer: str, depth: int) -> None:
        """Check a Geometry object whose type is already known to be a geometry type."""
        kind = geometry["type"]
        if kind == "GeometryCollection":
            self._geometry_collection(geometry, pointer, depth)
            return
        self._require(geometry, pointer, kind)
        for name, value in geometry.items():
            at = child(pointer, name)
            if self._common_member(name, value, at, _FORBIDDEN_IN_SHAPES):
                continue
            if name == "coordinates":
                self.coordinates(kind, value, at)

    def _geometry_collection(self, collection: dict[str, Any], pointer: str, depth: int) -> None:
        """Check a GeometryCollection and, within a depth limit, its members."""
        if depth > MAX_COLLECTION_DEPTH:
            text = f"GeometryCollections nest more than {MAX_COLLECTION_DEPTH} levels deep."
            self.problems.append(error("json-too-deep", pointer, text))
            return
        if depth:
            text = "A GeometryCollection inside another; RFC 7946 section 3.1.8 advises against."
            self.problems.append(warning("nested-geometry-collection", pointer, text))
        self._require(collection, pointer, "GeometryCollection")
        for name, value in collection.items():
            at = child(pointer, name)
            if self._common_member(name, value, at, _FORBIDDEN["GeometryCollection"]):
                continue
            if name == "geometries":
                self._geometries(value, at, depth)

    def _geometries(self, value: object, pointer: str, depth: int) -> None:
        """Check the ``geometries`` member of a GeometryCollection."""
        if not isinstance(value, list):
            self.not_an_array(value, pointer, "geometries")
            return
        if len(value) == 1:
            text = "A GeometryCollection of one geometry; RFC 7946 section 3.1.8 advises against."
            self.problems.append(warning("single-geometry-collection", pointer, text))
        for index, item in enumerate(value):
            at = child(pointer, index)
            if self._type_of(item, at, GEOMETRY_TYPES) is not None:
                assert isinstance(item, dict)  # _type_of returns a name only for objects
                self._geometry(item, at, depth + 1)

    def _check_encodable(self, output: object, pointer: str) -> None:
        """Report a feature that nests deeper than orjson writes."""
        try:
            orjson.dumps(output)
        except orjson.JSONEncodeError:
            text = "This feature nests arrays and objects deeper than geoingest can write."
            self.problems.append(error("json-too-deep", pointer, text))


def _unknown(kind: object) -> str:
    """Return the message for a type member that names no GeoJSON type."""
    if not isinstance(kind, str):
        return f"The type member must be a string naming a GeoJSON type, not {describe(kind)}."
    return f"The type {kind!r} is not a GeoJSON type; the names are case-sensitive."
