"""Quarantine: rejected files kept aside with a machine-readable reason.

A rejected file is moved to the quarantine folder at its path relative to
its input folder, beside ``<name>.error.json``. The reason is written first,
so that a crash in between leaves the file in the drop folder, where it is
judged again, rather than a quarantined file with no reason.

A name too long to take the reason's suffix is shortened, keeping its start,
a hash of the whole name and its extension; the reason holds the full path.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

import orjson

from geoingest.files import move_file, unique_path, write_atomically
from geoingest.logs import printable

if TYPE_CHECKING:
    from geoingest.discovery import Candidate

ERROR_SUFFIX = ".error.json"
# File names hold at most 255 bytes on Linux filesystems. Beside the name go
# the reason's suffix, its temporary form (".name.error.json.tmp") and the
# counter that keeps a second file of the same name apart (".1").
_NAME_MAX = 255
_ROOM = len(f".{ERROR_SUFFIX}.tmp") + len(".9999")
_HASH_CHARS = 12


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a file was rejected."""

    rule: str
    pointer: str
    message: str
    sha256: str = ""


def quarantine(candidate: Candidate, reason: Reason, folder: Path) -> Path:
    """Move a rejected file into ``folder`` beside its reason; return where it went.

    Raises:
        OSError: The reason could not be written or the file could not be moved.
    """
    rel = candidate.rel
    target = unique_path(folder / rel.parent / stored_name(rel.name))
    target.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "rule": reason.rule,
        "pointer": reason.pointer,
        "message": reason.message,
        "sha256": reason.sha256,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": candidate.root.name,
        "path": printable(candidate.rel),
        "size": candidate.size,
    }
    error_file = target.with_name(target.name + ERROR_SUFFIX)
    write_atomically(error_file, orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    move_file(candidate.path, target)
    return target


def stored_name(name: str) -> str:
    """Return the name a rejected file is kept under: its own, unless that is too long.

    Example:
        >>> stored_name("a.geojson")
        'a.geojson'
        >>> len(os.fsencode(stored_name("é" * 127 + ".geojson")))
        234
    """
    raw = os.fsencode(name)
    if len(raw) + _ROOM <= _NAME_MAX:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:_HASH_CHARS].encode()
    extension = os.fsencode(PurePath(name).suffix)[-16:]
    head = raw[: _NAME_MAX - _ROOM - len(extension) - _HASH_CHARS - 1]
    return os.fsdecode(head + b"~" + digest + extension)


def read_reason(quarantined: Path) -> dict[str, object]:
    """Read the reason stored beside a quarantined file."""
    raw = (quarantined.parent / (quarantined.name + ERROR_SUFFIX)).read_bytes()
    report: dict[str, object] = orjson.loads(raw)
    return report


__all__ = ["ERROR_SUFFIX", "Reason", "quarantine", "read_reason", "stored_name"]
