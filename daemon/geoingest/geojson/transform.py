"""The careful transforms: a valid document becomes features with rounded coordinates.

These functions expect a document that :mod:`geoingest.geojson.validate` has
passed, and change it in place: the caller owns the decoded value, and copying
every coordinate list again would only cost time.

Rounding follows Python's ``round(x, precision)`` to the bit: half to even on
the exact binary value, integers left as integers, and ``precision == -1``
leaving every number as it came. A bbox is left as given.
"""

from __future__ import annotations

from typing import Any

KEEP_PRECISION = -1


def as_feature(geometry: dict[str, Any]) -> dict[str, Any]:
    """Wrap a bare Geometry in a Feature without properties.

    Example:
        >>> as_feature({"type": "Point", "coordinates": [1.0, 2.0]})
        {'type': 'Feature', 'geometry': {'type': 'Point', 'coordinates': [1.0, 2.0]}, \
'properties': None}
    """
    return {"type": "Feature", "geometry": geometry, "properties": None}


def output_features(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the features a valid document stands for, in order."""
    kind = doc["type"]
    if kind == "FeatureCollection":
        features: list[dict[str, Any]] = doc["features"]
        return features
    if kind == "Feature":
        return [doc]
    return [as_feature(doc)]


def check_precision(precision: int) -> None:
    """Raise ValueError unless ``precision`` is -1 (keep) or a number of decimals."""
    if precision < KEEP_PRECISION:
        raise ValueError(f"precision must be -1 or at least 0, not {precision}")


def round_feature(feature: dict[str, Any], precision: int) -> None:
    """Round the coordinates of a valid Feature's geometry in place."""
    geometry = feature["geometry"]
    if geometry is not None and precision != KEEP_PRECISION:
        round_geometry(geometry, precision)


def round_geometry(geometry: dict[str, Any], precision: int) -> None:
    """Round the coordinates of a valid Geometry, and of a collection's members, in place.

    Example:
        >>> line = {"type": "LineString", "coordinates": [[0.125, 1], [2.5, 3.75]]}
        >>> round_geometry(line, 1)
        >>> line["coordinates"]
        [[0.1, 1], [2.5, 3.8]]
    """
    if geometry["type"] == "GeometryCollection":
        for member in geometry["geometries"]:
            round_geometry(member, precision)
    else:
        geometry["coordinates"] = round_coordinates(geometry["coordinates"], precision)


def round_coordinates(value: list[Any], precision: int) -> list[Any]:
    """Return a copy of a valid coordinates array, or part of one, with numbers rounded."""
    if value and isinstance(value[0], list):
        return [round_coordinates(part, precision) for part in value]
    return [round(number, precision) for number in value]
