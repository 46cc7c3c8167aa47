"""Turning bytes into a JSON value, and naming what went wrong when that fails.

orjson does the parsing. When it refuses a document, it says why in a message;
:func:`decode_problem` turns that refusal into a :class:`Problem` with its own
rule id, looking at the bytes themselves wherever they answer more surely than
the wording of the message does.

orjson 3.13 reads integers beyond the 64-bit range as floats rather than
refusing them, so such a number passes decoding with its low digits lost.
"""

from __future__ import annotations

import orjson

from geoingest.geojson.problems import Problem, error

_BOM = b"\xef\xbb\xbf"
_JSON_WHITESPACE = b" \t\r\n"
_NAN_LITERALS = ("NaN", "Infinity")
_SURROGATE_MESSAGES = ("no low surrogate", "invalid low surrogate", "invalid high surrogate")


class DecodeError(Exception):
    """Raised by :func:`decode` with the :class:`Problem` that stopped it."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def decode(raw: bytes) -> object:
    """Return the JSON value in ``raw``.

    Raises:
        DecodeError: The bytes are not one well-formed JSON text that orjson reads.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as refusal:
        raise DecodeError(decode_problem(raw, refusal)) from None


def decode_problem(raw: bytes, refusal: orjson.JSONDecodeError) -> Problem:
    """Return the :class:`Problem` behind orjson's refusal to read ``raw``."""
    # The bytes decide the first three; orjson's message decides the rest.
    if not raw.strip(_JSON_WHITESPACE):
        return error("empty-file", "", "The file is empty or holds only whitespace.")
    if raw.startswith(_BOM):
        return error("bom", "", "The file starts with a UTF-8 byte order mark; JSON has none.")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return error("encoding", "", f"Byte {bad.start} is not part of valid UTF-8 text.")
    return _problem_from_message(refusal)


def _problem_from_message(refusal: orjson.JSONDecodeError) -> Problem:
    """Map a refusal of well-encoded text to its rule id."""
    where = f"line {refusal.lineno}, column {refusal.colno}"
    reason = refusal.msg
    if refusal.doc.startswith(_NAN_LITERALS, refusal.pos):
        return error("json-nan", "", f"NaN and Infinity are not JSON numbers ({where}).")
    if reason.startswith(_SURROGATE_MESSAGES):
        return error("encoding", "", f"A string escapes a lone UTF-16 surrogate ({where}).")
    if reason.startswith("depth limit exceeded"):
        return error("json-too-deep", "", f"Arrays and objects nest too deeply ({where}).")
    if reason.startswith("number is infinity"):
        return error("number-out-of-range", "", f"A number is too large for a float ({where}).")
    return error("json-syntax", "", f"The JSON is malformed at {where}: {reason}.")
