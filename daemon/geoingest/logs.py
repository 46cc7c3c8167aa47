"""Logging: structlog configured once, JSON lines or a console format.

Values are made safe for one-line logs: file names are bytes on Linux and
may hold newlines, control characters or bytes that are not UTF-8, so every
string value is escaped before it is rendered.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from pathlib import PurePath
from typing import Any

import orjson
import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
# The least severe level written, for the few per-file events on the hot path:
# asking the logger costs a bind per call, even for an event it then drops.
_threshold = {"least": logging.INFO}
_CONTROL = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)}
_CONTROL.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def printable(value: str | PurePath) -> str:
    """Return text that shows any file name on one line, reversibly enough to find it.

    Example:
        >>> printable("bad\\nname\\udcff.geojson")
        'bad\\\\nname\\\\xff.geojson'
    """
    text = str(value)
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text.translate(_CONTROL)


def escaped(value: Any) -> Any:
    """Return ``value`` with every string in it made printable, lists and maps included.

    A name that is not UTF-8 would otherwise stop the JSON renderer, and a
    newline would break the console format's one line per event.

    Example:
        >>> escaped({"inputs": ["ok", "bad\\udcff"], "count": 2})
        {'inputs': ['ok', 'bad\\\\xff'], 'count': 2}
    """
    if isinstance(value, str | PurePath):
        return printable(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [escaped(item) for item in value]
    if isinstance(value, dict):
        return {printable(str(key)): escaped(item) for key, item in value.items()}
    return value


def _escape_values(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in event.items():
        event[key] = escaped(value)
    return event


def _dumps(obj: Any, **_kw: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


def enabled(level: str) -> bool:
    """Say whether events of ``level`` are written.

    Example:
        >>> configure("info", "json")
        >>> enabled("debug"), enabled("warning")
        (False, True)
    """
    return _LEVELS[level] >= _threshold["least"]


def configure(level: str = "info", fmt: str | None = None) -> None:
    """Configure structlog for the whole process.

    Args:
        level: The least severe level written: debug, info, warning or error.
        fmt: ``json`` or ``console``; by default console on a terminal, json otherwise.
    """
    _threshold["least"] = _LEVELS[level]
    if fmt is None:
        fmt = "console" if sys.stdout.isatty() else "json"
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _escape_values,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=False,
    )
