"""GeoJSON for geoingest: decoding, the RFC 7946 check, rounding and encoding.

Pure functions over bytes and decoded values, with no I/O, so that workers can
run them on any file and tests can run them in microseconds.

- :func:`check_bytes` reports every problem of a file, errors and warnings, in
  document order; ``geoingest validate`` prints them.
- :func:`ingest_document` is the hot path: it accepts exactly what
  ``check_bytes`` finds no error in, and returns the file's features rounded
  and encoded, or the errors that refuse it.
- :data:`ERROR_RULES` and :data:`WARNING_RULES` list every rule id either can
  report, each with a one-line description.
"""

from geoingest.geojson.ingest import Accepted, Rejected, ingest_document
from geoingest.geojson.problems import ERROR_RULES, WARNING_RULES, Problem
from geoingest.geojson.validate import check_bytes, check_document

__all__ = [
    "ERROR_RULES",
    "WARNING_RULES",
    "Accepted",
    "Problem",
    "Rejected",
    "check_bytes",
    "check_document",
    "ingest_document",
]
