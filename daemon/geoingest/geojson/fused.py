"""The fused pass: check, round and encode ordinary Features in one go.

Most features geoingest sees are plain: a Point, a line or a polygon of 2D
float positions inside the WGS 84 range, properties as an object, an id. (3D
positions pass too, rounded number by number with ``round``.) For
those, one list comprehension per line checks every position and rounds it,
and the Feature goes straight to orjson. Anything else raises
:class:`Unusual` (or fails with TypeError, ValueError, KeyError or IndexError
on the way), :meth:`FusedPass.collection` marks that feature, and the caller
hands it to the careful check in :mod:`geoingest.geojson.validate`, which
decides.

So this module must never pass a feature that the careful check would fault,
and must report the warnings the careful check would report for the features it
does pass: antimeridian jumps and winding order. Every other warning makes the
feature unusual.

Where :mod:`geoingest.geojson._coords` was compiled at install time, it makes
the same checks and rounding in C for every feature whose coordinates are
plain 2D positions, and hands any other feature back to the Python loop below.

Rounding uses a float-only form of ``round(x, precision)``: scale, snap to an
integer by adding and taking away 1.5 * 2**52 (which rounds half to even in
hardware), scale back. Scaling can move a value that lies within a hair of a
half to the other side of it, so such values, and every value at precisions
above :data:`FAST_DIGITS`, go through ``round`` itself; the result is the same
to the bit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from types import ModuleType
from typing import Any

import orjson

from geoingest.geojson.measures import jumps_antimeridian, signed_area2
from geoingest.geojson.transform import KEEP_PRECISION

_coords: ModuleType | None
try:
    from geoingest.geojson import _coords
except ImportError:  # installed without a C compiler: the Python loop does the same work
    _coords = None

COMPILED = _coords is not None


def count_colons(data: bytes) -> int:
    """Count the colons in ``data``, with the compiled loop where there is one.

    Example:
        >>> count_colons(b'{"a":1,"b":{"c":2}}')
        3
    """
    if _coords is not None:
        return int(_coords.colons(data))
    return data.count(b":")


"""Whether the compiled pass is installed."""

Position = list[float]
Line = list[Position]
Notes = list[tuple[str, bool | None]]
"""Warnings found by the fused pass, as (pointer below the geometry, hole or None).

``None`` marks an antimeridian jump; True or False a ring wound the wrong way.
"""

# A scaled number this close to a half or closer may have crossed it when scaled.
# Telling the two sides apart needs the error of x * 10**precision to stay far
# below the margin left, 0.0001; at 9 decimals it is under 0.00002 for any
# longitude.
NEAR_HALF = 0.4999
FAST_DIGITS = 9
_SNAP = 1.5 * 2.0**52

# Members whose presence needs the careful check: forbidden ones, and ones that
# need checking (bbox) or warn (crs). A Feature's are tested one by one, inline.
_GEOMETRY_FLAGS = frozenset({"geometry", "properties", "features", "geometries", "bbox", "crs"})
_ID_TYPES = frozenset({str, int, float})


class Unusual(Exception):
    """Raised for a feature that the careful check must look at."""


def point_rounder(precision: int) -> Callable[[Any], Position]:
    """Return a function that rounds one 2D or 3D float position in range.

    The function raises :class:`Unusual` for anything else.

    Example:
        >>> point_rounder(2)([0.125, -0.001])
        [0.12, -0.0]
    """
    round_line = line_rounder(precision)
    if precision == KEEP_PRECISION or precision > FAST_DIGITS:
        return lambda position: round_line([position])[0]
    scale, snap, low, high = 10.0**precision, _SNAP, -NEAR_HALF, NEAR_HALF

    def round_point(position: Any) -> Position:
        try:
            x, y = position
        except ValueError:
            return round_line([position])[0]
        if (
            type(x) is float is type(y)
            and -180.0 <= x <= 180.0
            and -90.0 <= y <= 90.0
            and low < (a := x * scale) - (u := a + snap - snap or a * 0.0) < high
            and low < (b := y * scale) - (v := b + snap - snap or b * 0.0) < high
        ):
            return [u / scale, v / scale]
        return round_line([position])[0]

    return round_point


def line_rounder(precision: int) -> Callable[[Any], Line]:
    """Return a function that rounds an array of 2D float positions in range.

    Arrays of 3D positions are rounded too, with ``round`` itself. The function
    raises :class:`Unusual` for anything else: positions of mixed or other
    lengths, numbers that are not floats, or positions out of range.

    Example:
        >>> line_rounder(1)([[0.25, 1.04], [-0.04, 89.96]])
        [[0.2, 1.0], [-0.0, 90.0]]
    """
    if precision == KEEP_PRECISION:
        return _keep_line
    exact = _exact_rounder(precision)
    if precision > FAST_DIGITS:
        return exact
    scale, snap, low, high = 10.0**precision, _SNAP, -NEAR_HALF, NEAR_HALF

    def round_line(line: Any) -> Line:
        # a and b are the scaled numbers, u and v the integers nearest to them;
        # "or a * 0.0" gives a zero the sign of the number that rounds to it.
        try:
            out = [
                [u / scale, v / scale]
                for x, y in line
                if type(x) is float is type(y)
                and -180.0 <= x <= 180.0
                and -90.0 <= y <= 90.0
                and low < (a := x * scale) - (u := a + snap - snap or a * 0.0) < high
                and low < (b := y * scale) - (v := b + snap - snap or b * 0.0) < high
            ]
        except ValueError:  # a position that is not 2D
            return exact(line)
        return out if len(out) == len(line) else exact(line)

    return round_line


def _exact_rounder(precision: int) -> Callable[[Any], Line]:
    """Return a line rounder that calls ``round`` on every number."""

    def round_line(line: Any) -> Line:
        try:
            out = [
                [round(x, precision), round(y, precision)]
                for x, y in line
                if type(x) is float is type(y) and -180.0 <= x <= 180.0 and -90.0 <= y <= 90.0
            ]
        except ValueError:  # a position that is not 2D
            out = [
                [round(x, precision), round(y, precision), round(z, precision)]
                for x, y, z in line
                if type(x) is float is type(y) is type(z)
                and -180.0 <= x <= 180.0
                and -90.0 <= y <= 90.0
            ]
        if len(out) != len(line):
            raise Unusual
        return out

    return round_line


def _keep_line(line: Any) -> Line:
    """Check an array of 2D or 3D float positions in range, and return it as it is."""
    try:
        kept = [
            1
            for x, y in line
            if type(x) is float is type(y) and -180.0 <= x <= 180.0 and -90.0 <= y <= 90.0
        ]
    except ValueError:  # a position that is not 2D
        kept = [
            1
            for x, y, z in line
            if type(x) is float is type(y) is type(z)
            and -180.0 <= x <= 180.0
            and -90.0 <= y <= 90.0
        ]
    if len(kept) != len(line):
        raise Unusual
    checked: Line = line
    return checked


@dataclass(slots=True)
class Fused:
    """What the fused pass made of the features of a collection.

    Attributes:
        encoded: Each feature encoded, or None where the careful check must look.
        notes: Warnings on plain features, in order, as (feature index, pointer
            below the geometry, hole or None); see :data:`Notes`.
        unusual: How many features are None in ``encoded``.
    """

    encoded: list[bytes | None]
    notes: list[tuple[int, str, bool | None]]
    unusual: int


class FusedPass:
    """Check, round and encode plain Features; see the module docstring.

    Args:
        precision: Decimals to round coordinates to; -1 keeps them as they are.
        compiled: Whether to use the compiled pass, where it is installed.
    """

    def __init__(self, precision: int, *, compiled: bool = COMPILED) -> None:
        self._round_point = point_rounder(precision)
        self._round_line = line_rounder(precision)
        # The compiled pass's rounding arguments; a scale of 0.0 keeps the numbers.
        self._compiled: tuple[float, int] | None = None
        if compiled and COMPILED and precision <= FAST_DIGITS:
            keep = precision == KEEP_PRECISION
            self._compiled = (0.0, 0) if keep else (10.0**precision, precision)
        self._shapes: dict[str, Callable[[Any, Notes], Any]] = {
            "MultiPoint": self._multi_point,
            "LineString": self._line_string,
            "MultiLineString": self._multi_line_string,
            "Polygon": self._polygon,
            "MultiPolygon": self._multi_polygon,
        }

    def collection(self, features: list[Any]) -> Fused:
        """Round and encode the plain features of a collection; see :class:`Fused`.

        Plain features get their rounded coordinates in place; an unusual one
        may have been changed in part.
        """
        if self._compiled is None or _coords is None:
            return self._collection(features)
        scale, digits = self._compiled
        encoded, notes, deferred = _coords.collection(features, scale, digits, orjson.dumps)
        fused = Fused(encoded, notes, encoded.count(None))
        # Features with coordinates other than plain 2D positions, for the Python loop.
        for index in deferred:
            alone = self._collection([features[index]])
            if alone.encoded[0] is not None:
                encoded[index] = alone.encoded[0]
                fused.unusual -= 1
                notes.extend((index, below, hole) for _, below, hole in alone.notes)
        if deferred:
            notes.sort(key=itemgetter(0))
        return fused

    def _collection(self, features: list[Any]) -> Fused:
        # One loop with the feature's own checks inline, and Points rounded
        # inline: a Python call per feature costs as much as all those checks.
        round_point, shapes, dumps = self._round_point, self._shapes, orjson.dumps
        fused = Fused([], [], 0)
        encoded, noted = fused.encoded, fused.notes
        notes: Notes = []
        for index, feature in enumerate(features):
            try:
                if type(feature) is not dict or feature.get("type") != "Feature":
                    raise Unusual
                if "features" in feature or "bbox" in feature or "crs" in feature:
                    raise Unusual
                properties = feature["properties"]
                if properties is not None and type(properties) is not dict:
                    raise Unusual
                if type(feature.get("id", "")) not in _ID_TYPES:
                    raise Unusual
                geometry = feature["geometry"]
                if geometry is not None:
                    if type(geometry) is not dict or not _GEOMETRY_FLAGS.isdisjoint(geometry):
                        raise Unusual
                    kind, coordinates = geometry["type"], geometry["coordinates"]
                    if kind == "Point":
                        geometry["coordinates"] = round_point(coordinates)
                    else:
                        geometry["coordinates"] = shapes[kind](coordinates, notes)
                encoded.append(dumps(feature))
            except (Unusual, TypeError, ValueError, KeyError, IndexError):
                encoded.append(None)
                fused.unusual += 1
                notes.clear()
            if notes:
                noted.extend((index, below, hole) for below, hole in notes)
                notes.clear()
        return fused

    def _multi_point(self, positions: Any, notes: Notes) -> Line:
        """Round a MultiPoint's positions."""
        if type(positions) is not list or not positions:
            raise Unusual
        return self._round_line(positions)

    def _line_string(self, line: Any, notes: Notes, pointer: str = "/coordinates") -> Line:
        """Round a line of two or more positions, noting a jump over the antimeridian."""
        out = self._round_line(line)
        if len(out) < 2:
            raise Unusual
        if jumps_antimeridian(next(zip(*line, strict=False))):
            notes.append((pointer, None))
        return out

    def _multi_line_string(self, lines: Any, notes: Notes) -> list[Line]:
        """Round the lines of a MultiLineString."""
        if type(lines) is not list or not lines:
            raise Unusual
        return [
            self._line_string(line, notes, f"/coordinates/{index}")
            for index, line in enumerate(lines)
        ]

    def _polygon(self, rings: Any, notes: Notes, pointer: str = "/coordinates") -> list[Line]:
        """Round the rings of a polygon, noting antimeridian jumps and winding."""
        if type(rings) is not list or not rings:
            raise Unusual
        return [self._ring(ring, notes, pointer, index) for index, ring in enumerate(rings)]

    def _multi_polygon(self, polygons: Any, notes: Notes) -> list[list[Line]]:
        """Round the polygons of a MultiPolygon."""
        if type(polygons) is not list or not polygons:
            raise Unusual
        return [
            self._polygon(rings, notes, f"/coordinates/{index}")
            for index, rings in enumerate(polygons)
        ]

    def _ring(self, ring: Any, notes: Notes, polygon: str, index: int) -> Line:
        """Round a closed ring of four or more positions; ring 0 is the exterior."""
        out = self._round_line(ring)
        if len(out) < 4 or ring[0] != ring[-1]:
            raise Unusual
        xs, ys, *_ = zip(*ring, strict=False)
        if jumps_antimeridian(xs):
            notes.append((f"{polygon}/{index}", None))
        area = signed_area2(xs, ys)
        if area and (area < 0) != (index > 0):
            notes.append((f"{polygon}/{index}", index > 0))
        return out
