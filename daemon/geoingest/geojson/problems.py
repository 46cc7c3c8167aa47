"""What a check finds wrong with a document, and the catalogue of rule ids.

A :class:`Problem` names the rule it breaks with a stable kebab-case id, says
where with an RFC 6901 JSON pointer, and explains in one sentence. Errors make
geoingest reject a file; warnings mark what RFC 7946 tells parsers not to
reject, and the file is ingested with them.

The catalogue below is the full list of ids either kind of check can report,
so that metrics can create every label value at start.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding of a check.

    Attributes:
        rule: Stable kebab-case id of the rule, a key of :data:`ERROR_RULES`
            or :data:`WARNING_RULES`.
        pointer: RFC 6901 JSON pointer to the value concerned; ``""`` is the
            whole document.
        message: One sentence for a person, without newlines.
        warning: True when RFC 7946 says parsers should not reject this.

    Example:
        >>> Problem("ring-not-closed", "/coordinates/0", "The ring is open.")
        Problem(rule='ring-not-closed', pointer='/coordinates/0', message='The ring is open.', \
warning=False)
    """

    rule: str
    pointer: str
    message: str
    warning: bool = False


ERROR_RULES: dict[str, str] = {
    "empty-file": "The file has no bytes, or only whitespace.",
    "bom": "The file starts with a UTF-8 byte order mark, which JSON forbids.",
    "encoding": "The text is not valid UTF-8, or escapes a lone UTF-16 surrogate.",
    "json-nan": "A NaN or Infinity literal stands where JSON allows only finite numbers.",
    "json-too-deep": "Arrays and objects nest deeper than geoingest reads or writes.",
    "number-out-of-range": "A number is too large for a 64-bit float.",
    "json-syntax": "The text is not well-formed JSON.",
    "duplicate-member": "An object names the same member twice.",
    "not-geojson": "The document is not a JSON object.",
    "missing-type": "An object that must be GeoJSON has no type member.",
    "unknown-type": "A type member is not one of the nine GeoJSON type names.",
    "not-a-feature": "An element of features is not a Feature object.",
    "not-a-geometry": "A geometry or geometries element is not a Geometry object.",
    "missing-member": "A member that the object's type requires is absent.",
    "changed-semantics": "A member that RFC 7946 section 7.1 forbids on this type is present.",
    "not-an-array": "A features, geometries or coordinates member is not an array.",
    "bad-nesting": "Coordinates nest too shallow or too deep for the geometry type.",
    "position-not-number": "An element of a position is not a number.",
    "position-too-short": "A position has fewer than two numbers.",
    "line-too-short": "A line has fewer than two positions.",
    "ring-too-short": "A linear ring has fewer than four positions.",
    "ring-not-closed": "A linear ring does not end where it starts.",
    "bad-properties": "A Feature's properties member is neither an object nor null.",
    "bad-id": "A Feature's id member is neither a string nor a number.",
    "bad-bbox": "A bbox member is not an array of 2n numbers.",
}

WARNING_RULES: dict[str, str] = {
    "empty-coordinates": "A coordinates array, or a member of a multi-geometry, is empty.",
    "position-too-long": "A position has more than three numbers.",
    "coordinates-out-of-range": "A longitude or latitude lies outside the WGS 84 range.",
    "crosses-antimeridian": "Consecutive positions lie more than 180 degrees of longitude apart.",
    "winding-order": "A polygon ring does not follow the right-hand rule.",
    "nested-geometry-collection": "A GeometryCollection holds another GeometryCollection.",
    "single-geometry-collection": "A GeometryCollection holds only one geometry.",
    "crs-member": "An object carries the crs member of the 2008 GeoJSON format.",
}


def error(rule: str, pointer: str, message: str) -> Problem:
    """Return an error :class:`Problem`; ``rule`` must be in :data:`ERROR_RULES`."""
    return Problem(rule, pointer, message)


def warning(rule: str, pointer: str, message: str) -> Problem:
    """Return a warning :class:`Problem`; ``rule`` must be in :data:`WARNING_RULES`."""
    return Problem(rule, pointer, message, warning=True)


def antimeridian_warning(pointer: str) -> Problem:
    """Return the warning for a line or ring at ``pointer`` that jumps the antimeridian."""
    return warning(
        "crosses-antimeridian",
        pointer,
        "Consecutive positions lie more than 180 degrees of longitude apart; a line that "
        "crosses the antimeridian should be cut there (RFC 7946 section 3.1.9).",
    )


def winding_warning(pointer: str, hole: bool) -> Problem:
    """Return the warning for a ring at ``pointer`` wound against the right-hand rule."""
    if hole:
        text = "This hole runs counterclockwise; RFC 7946 section 3.1.6 asks for clockwise."
    else:
        text = "This exterior ring runs clockwise; RFC 7946 section 3.1.6 asks the opposite."
    return warning("winding-order", pointer, text)


def child(pointer: str, key: str | int) -> str:
    """Return the pointer to member or element ``key`` of the value at ``pointer``.

    Example:
        >>> child("/properties", "a/b~c")
        '/properties/a~1b~0c'
    """
    token = str(key)
    if "~" in token or "/" in token:
        token = token.replace("~", "~0").replace("/", "~1")
    return f"{pointer}/{token}"
