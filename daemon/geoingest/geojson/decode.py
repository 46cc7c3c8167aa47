"""Turning bytes into a JSON value, and naming what went wrong when that fails.

orjson does the parsing. When it refuses a document, it says why in a message;
:func:`decode_problem` turns that refusal into a :class:`Problem` with its own
rule id, looking at the bytes themselves wherever they answer more surely than
the wording of the message does.

orjson 3.13 reads integers beyond the 64-bit range as floats rather than
refusing them, so such a number passes decoding with its low digits lost.

orjson also keeps the last of two members with the same name in one object,
without a word, where other readers keep the first or refuse the text. A
document whose meaning depends on the reader is refused as ``duplicate-member``.
"""

from __future__ import annotations

import re

import orjson

from geoingest.geojson.fused import count_colons
from geoingest.geojson.problems import Problem, child, error

_BOM = b"\xef\xbb\xbf"
_JSON_WHITESPACE = b" \t\r\n"
_NAN_LITERALS = ("NaN", "Infinity")
_SURROGATE_MESSAGES = ("no low surrogate", "invalid low surrogate", "invalid high surrogate")
_ESCAPED_COLON = b"\\u003"  # how \u003a and \u003A, escaped colons, begin
# In well-formed JSON, a string, or one of the six structural characters.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\],:]', re.DOTALL)
_NAME_SHOWN = 60


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
    doc = decode_unchecked(raw)
    if _may_repeat_a_name(raw, doc) and (repeated := repeated_member(raw)) is not None:
        raise DecodeError(repeated)
    return doc


def decode_unchecked(raw: bytes) -> object:
    """Return the JSON value in ``raw`` without looking for a member named twice.

    For callers that write the document back anyway: counting the colons of
    what they write, they can ask :func:`names_may_repeat` for less than
    :func:`decode` spends writing the whole document once more.

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


def _may_repeat_a_name(raw: bytes, doc: object) -> bool:
    """Say whether an object in ``raw`` may name a member twice; False is certain.

    Each member has one colon after its name, and orjson writes the colons
    inside strings as they are. So unless a name repeats, ``raw`` holds as many
    colons as ``doc`` written back, less those it escapes as ``\\u003a``; when
    one does, the member orjson dropped leaves ``raw`` with more. Counting costs
    a fraction of the parse; the exact scan runs only when the counts differ.
    """
    if not isinstance(doc, dict | list):
        return False
    try:
        written = count_colons(orjson.dumps(doc))
    except orjson.JSONEncodeError:
        return True  # deeper than orjson writes; the scan decides
    return names_may_repeat(raw, written)


def names_may_repeat(raw: bytes, written: int) -> bool:
    """Say whether ``raw`` may name a member twice, given the colons orjson writes for it.

    ``written`` counts the colons in the decoded document written back by
    orjson; see :func:`_may_repeat_a_name`. False is certain.
    """
    # An upper bound on the escaped colons is enough: too many only costs a scan.
    escaped = raw.count(_ESCAPED_COLON) if b"\\" in raw else 0
    return count_colons(raw) + escaped > written


def repeated_member(raw: bytes) -> Problem | None:
    """Return the first member named twice in one object of ``raw``, or None.

    ``raw`` must be well-formed JSON. The scan reads tokens in a loop, not by
    recursion, so any depth orjson reads is fine.

    Example:
        >>> repeated_member(b'{"a": [{"b": 1, "b": 2}]}').pointer
        '/a/0/b'
    """
    names: list[set[str] | None] = []  # per open container; None for an array
    path: list[str | int] = []  # per open container, the member or index being read
    expect_name = False
    for match in _TOKEN.finditer(raw):
        token = match.group()
        if token in (b"{", b"["):
            names.append(set() if token == b"{" else None)
            path.append(0)
            expect_name = token == b"{"
        elif token in (b"}", b"]"):
            names.pop()
            path.pop()
        elif token == b",":
            expect_name = names[-1] is not None
            if not expect_name:
                path[-1] = int(path[-1]) + 1
        elif expect_name:
            name, seen = orjson.loads(token), names[-1]
            assert seen is not None  # names are expected only in objects
            if name in seen:
                return _repeated(path[:-1], name)
            seen.add(name)
            path[-1], expect_name = name, False
    return None


def _repeated(path: list[str | int], name: str) -> Problem:
    """Return the problem for ``name`` repeated in the object at ``path``."""
    pointer = ""
    for key in path:
        pointer = child(pointer, key)
    shown = name if len(name) <= _NAME_SHOWN else name[:_NAME_SHOWN] + "..."
    text = f"The member {shown!r} appears twice in this object; readers differ on which counts."
    return error("duplicate-member", child(pointer, name), text)
