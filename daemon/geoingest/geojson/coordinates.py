"""The careful check of a geometry's coordinates: nesting, positions, lines and rings.

:class:`CoordinatesCheck` holds the part of the careful check that reads
inside a ``coordinates`` member; :class:`~geoingest.geojson.validate.Walker`
builds on it for objects and their members. Problems come in document order,
those of a line or ring before those of its positions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from geoingest.geojson.measures import jumps_antimeridian, signed_area2
from geoingest.geojson.problems import (
    Problem,
    antimeridian_warning,
    child,
    error,
    warning,
    winding_warning,
)

_PartCheck = Callable[[list[Any], str], None]


def describe(value: object) -> str:
    """Name the JSON kind of ``value`` for a message, with its article.

    Example:
        >>> describe(None), describe(True), describe([1]), describe({})
        ('null', 'a boolean', 'an array', 'an object')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def is_number(value: object) -> bool:
    """Return True for a JSON number; booleans are not numbers."""
    return type(value) is float or type(value) is int


class CoordinatesCheck:
    """Check coordinates and keep the problems found in :attr:`problems`."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        # Only the first position out of range in a geometry is reported.
        self._range_reported = False

    def not_an_array(self, value: object, pointer: str, name: str) -> None:
        """Report a member that must be an array and is not."""
        text = f"The {name} member must be an array, not {describe(value)}."
        self.problems.append(error("not-an-array", pointer, text))

    def coordinates(self, kind: str, value: object, pointer: str) -> None:
        """Check the ``coordinates`` member of a geometry of type ``kind``."""
        self._range_reported = False
        if not isinstance(value, list):
            self.not_an_array(value, pointer, "coordinates")
        elif not value:
            self._empty(pointer)
        elif kind == "Point":
            self._position(value, pointer)
        elif kind == "MultiPoint":
            self._positions(value, pointer)
        elif kind == "LineString":
            self._line(value, pointer)
        elif kind == "MultiLineString":
            self._parts(value, pointer, self._line)
        elif kind == "Polygon":
            self._polygon(value, pointer)
        else:
            self._parts(value, pointer, self._polygon)

    def _empty(self, pointer: str) -> None:
        """Report empty coordinates, which RFC 7946 lets readers take as null."""
        text = "These coordinates are empty; RFC 7946 section 3.1 lets readers treat them as null."
        self.problems.append(warning("empty-coordinates", pointer, text))

    def _too_shallow(self, value: list[Any], pointer: str) -> bool:
        """Report an array of arrays that holds something else; return True if it does."""
        stray = next((item for item in value if not isinstance(item, list)), value)
        if stray is value:
            return False
        text = f"This array must hold arrays, not {describe(stray)}: the nesting is wrong here."
        self.problems.append(error("bad-nesting", pointer, text))
        return True

    def _parts(self, value: list[Any], pointer: str, check: _PartCheck) -> None:
        """Check each member of a multi-geometry with ``check``, as its own geometry."""
        if self._too_shallow(value, pointer):
            return
        for index, part in enumerate(value):
            at = child(pointer, index)
            if part:
                check(part, at)
            else:
                self._empty(at)

    def _polygon(self, rings: list[Any], pointer: str) -> None:
        """Check the rings of one polygon; the first is the exterior, the rest are holes."""
        if not self._too_shallow(rings, pointer):
            for index, ring in enumerate(rings):
                self._ring(ring, child(pointer, index), hole=index > 0)

    def _ring(self, ring: list[Any], pointer: str, hole: bool) -> None:
        """Check a linear ring: four or more positions, closed, wound by the right-hand rule."""
        start = len(self.problems)
        valid = self._positions(ring, pointer)
        if valid is None:
            return
        found: list[Problem] = []
        if len(ring) < 4:
            text = f"A linear ring needs 4 or more positions, not {len(ring)}."
            found.append(error("ring-too-short", pointer, text))
        if valid and ring and ring[0] != ring[-1]:
            text = "A linear ring must end with the same position it starts with."
            found.append(error("ring-not-closed", pointer, text))
        if valid and not found:
            found.extend(self._ring_warnings(ring, pointer, hole))
        self.problems[start:start] = found

    def _ring_warnings(self, ring: list[Any], pointer: str, hole: bool) -> list[Problem]:
        """Return the warnings of a valid ring: antimeridian jumps and winding."""
        found: list[Problem] = []
        xs = [position[0] for position in ring]
        ys = [position[1] for position in ring]
        if jumps_antimeridian(xs):
            found.append(antimeridian_warning(pointer))
        area = signed_area2(xs, ys)
        if area and (area < 0) != hole:
            found.append(winding_warning(pointer, hole))
        return found

    def _line(self, line: list[Any], pointer: str) -> None:
        """Check a line: two or more positions."""
        start = len(self.problems)
        valid = self._positions(line, pointer)
        if valid is None:
            return
        found: list[Problem] = []
        if len(line) < 2:
            text = f"A line needs 2 or more positions, not {len(line)}."
            found.append(error("line-too-short", pointer, text))
        elif valid and jumps_antimeridian([position[0] for position in line]):
            found.append(antimeridian_warning(pointer))
        self.problems[start:start] = found

    def _positions(self, positions: list[Any], pointer: str) -> bool | None:
        """Check an array of positions; return True when all are valid, None if none are."""
        if self._too_shallow(positions, pointer):
            return None
        valid = True
        for index, position in enumerate(positions):
            valid = self._position(position, child(pointer, index)) and valid
        return valid

    def _position(self, position: list[Any], pointer: str) -> bool:
        """Check one position: two or three numbers; return True when it is valid."""
        if any(isinstance(number, list) for number in position):
            text = "This position holds arrays where numbers belong: the nesting is too deep."
            self.problems.append(error("bad-nesting", pointer, text))
            return False
        valid = True
        if len(position) < 2:
            text = f"A position needs at least 2 numbers, not {len(position)}."
            self.problems.append(error("position-too-short", pointer, text))
            valid = False
        elif len(position) > 3:
            text = f"A position has {len(position)} numbers; RFC 7946 advises 3 at most."
            self.problems.append(warning("position-too-long", pointer, text))
        start = len(self.problems)
        valid = self._position_numbers(position, pointer) and valid
        if valid and not self._range_reported and not _in_range(position):
            text = "This position lies outside longitude -180..180 or latitude -90..90."
            self.problems.insert(start, warning("coordinates-out-of-range", pointer, text))
            self._range_reported = True
        return valid

    def _position_numbers(self, position: list[Any], pointer: str) -> bool:
        """Check that each element of a position is a number; return True if all are."""
        valid = True
        for index, number in enumerate(position):
            if not is_number(number):
                text = f"A position holds numbers only, not {describe(number)}."
                self.problems.append(error("position-not-number", child(pointer, index), text))
                valid = False
        return valid


def _in_range(position: list[Any]) -> bool:
    """Return True when a position's longitude and latitude lie in the WGS 84 range."""
    inside: bool = -180.0 <= position[0] <= 180.0 and -90.0 <= position[1] <= 90.0
    return inside
