"""The hot path: from the bytes of one file to encoded, rounded features, or a refusal.

:func:`ingest_document` runs in the worker processes for every input file. It
accepts exactly the documents :func:`~geoingest.geojson.validate.check_bytes`
finds no error in, and when it refuses one, its first problem is the first
error ``check_bytes`` reports.

The walk is the careful one, with one change: the elements of a
FeatureCollection's ``features`` go through the fused pass first, and only
those it finds unusual get the careful check and the careful transform.
Rejected documents are decoded and checked again from their bytes, because
the fused pass rounds features in place before it meets the broken one.

A member named twice in one object makes ``check_bytes`` refuse the file
before any other check. Here the colons of the encoded features, which are
written anyway, stand in for writing the whole document once more to count
them, and the exact scan runs only when the bytes hold more.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import orjson

from geoingest.geojson.decode import (
    DecodeError,
    decode_unchecked,
    names_may_repeat,
    repeated_member,
)
from geoingest.geojson.fused import FusedPass, count_colons
from geoingest.geojson.problems import Problem, antimeridian_warning, child, winding_warning
from geoingest.geojson.transform import (
    check_precision,
    output_features,
    round_feature,
)
from geoingest.geojson.validate import Walker, check_bytes, has_error


@dataclass(slots=True)
class Accepted:
    """A document that passed: its features, encoded, and its warnings.

    Attributes:
        features: One orjson-encoded Feature per feature of the document.
        warnings: Warning problems in document order; empty for most files.
    """

    features: list[bytes]
    warnings: list[Problem]


@dataclass(slots=True)
class Rejected:
    """A document that failed: its errors in document order.

    Attributes:
        problems: The errors found; ``problems[0]`` is the one to report.
    """

    problems: list[Problem]


def ingest_document(raw: bytes, precision: int) -> Accepted | Rejected:
    """Decode, check, normalise to features, round and encode one file.

    Args:
        raw: The file's bytes.
        precision: Decimals to round every coordinate to; -1 keeps them as they are.

    Returns:
        :class:`Accepted` with the encoded features and any warnings, or
        :class:`Rejected` with the errors.

    Raises:
        ValueError: ``precision`` is below -1.

    Example:
        >>> result = ingest_document(b'{"type": "Point", "coordinates": [1.26, 2.0]}', 1)
        >>> result.features
        [b'{"type":"Feature","geometry":{"type":"Point","coordinates":[1.3,2.0]},"properties":null}']
    """
    check_precision(precision)
    try:
        doc = decode_unchecked(raw)
    except DecodeError as failure:
        return Rejected([failure.problem])
    walker = _IngestWalker(precision)
    walker.document(doc)
    if has_error(walker.problems):
        return _rejection(raw)
    assert isinstance(doc, dict)  # a document without errors is an object
    if doc["type"] == "FeatureCollection":
        features = walker.encoded
    else:
        features = _encode_carefully(output_features(doc), precision)
    written = _colons_written(doc, features)
    if (written is None or names_may_repeat(raw, written)) and repeated_member(raw):
        return _rejection(raw)
    return Accepted(features, walker.problems)


# The members "type", "geometry" and "properties" that wrap a bare geometry.
_WRAPPER_COLONS = 3


def _colons_written(doc: dict[str, Any], features: list[bytes]) -> int | None:
    """Return the colons orjson writes for ``doc``, given its encoded features.

    Returns None when a member outside the features nests deeper than orjson
    writes, and the count is unknown.
    """
    written = count_colons(b"".join(features))
    if doc["type"] == "Feature":
        return written
    if doc["type"] != "FeatureCollection":
        return written - _WRAPPER_COLONS
    shell = {name: value for name, value in doc.items() if name != "features"}
    try:
        return written + count_colons(orjson.dumps(shell)) + 1
    except orjson.JSONEncodeError:
        return None


def _rejection(raw: bytes) -> Rejected:
    """Check a refused document afresh from its bytes and return its errors."""
    return Rejected([problem for problem in check_bytes(raw) if not problem.warning])


def _encode_carefully(features: list[dict[str, Any]], precision: int) -> list[bytes]:
    """Round and encode features that passed the careful check."""
    for feature in features:
        round_feature(feature, precision)
    return [orjson.dumps(feature) for feature in features]


class _IngestWalker(Walker):
    """The careful walk, with the fused pass in front of each element of ``features``."""

    def __init__(self, precision: int) -> None:
        super().__init__()
        self.encoded: list[bytes] = []
        self._precision = precision
        self._fused = _fused_pass(precision)

    def features(self, value: object, pointer: str) -> None:
        """Ingest the elements of ``features``, stopping at the first broken one."""
        if not isinstance(value, list):
            super().features(value, pointer)
            return
        fused = self._fused.collection(value)
        if not fused.unusual:
            # The common case: every feature was plain, so no order to merge.
            self.encoded = cast(list[bytes], fused.encoded)
            self.problems.extend(_noted(pointer, *note) for note in fused.notes)
            return
        notes = iter(fused.notes)
        note = next(notes, None)
        for index, encoded in enumerate(fused.encoded):
            if encoded is not None:
                self.encoded.append(encoded)
            elif not self._ingest_unusual(value[index], child(pointer, index)):
                return
            while note is not None and note[0] == index:
                self.problems.append(_noted(pointer, *note))
                note = next(notes, None)

    def _ingest_unusual(self, item: object, pointer: str) -> bool:
        """Check, round and encode one feature carefully; return False if it is broken."""
        start = len(self.problems)
        self.feature_entry(item, pointer)
        if has_error(self.problems[start:]):
            return False
        assert isinstance(item, dict)  # feature_entry reports an error for anything else
        round_feature(item, self._precision)
        self.encoded.append(orjson.dumps(item))
        return True


@lru_cache(maxsize=4096)
def _noted(features: str, index: int, below: str, hole: bool | None) -> Problem:
    """Return the warning for a note of the fused pass on the geometry of a feature.

    The same few notes recur in file after file, and problems never change, so
    they come from a cache rather than being built each time.
    """
    at = f"{child(features, index)}/geometry{below}"
    return antimeridian_warning(at) if hole is None else winding_warning(at, hole)


@lru_cache(maxsize=8)
def _fused_pass(precision: int) -> FusedPass:
    """Return the fused pass for ``precision``, built once per process."""
    return FusedPass(precision)
