"""Looking into what geoingest did and would do, and taking quarantined files back.

These back the ``geoingest ledger ls``, ``ledger show``, ``dry-run`` and
``requeue`` commands. They read the ledger through its read-only connection
and change nothing, except ``requeue``, which moves one file back into its
input folder and removes its quarantine entry.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from geoingest import workers
from geoingest.config import InputRoot, Settings
from geoingest.files import move_file
from geoingest.ledger import LEDGER_FILE, Entry, Ledger
from geoingest.logs import printable
from geoingest.quarantine import ERROR_SUFFIX, read_reason
from geoingest.walk import Entry as WalkEntry
from geoingest.walk import Names, walk


class RequeueError(Exception):
    """A file cannot be taken back; the message says why."""


def format_entries(entries: Iterable[Entry]) -> list[str]:
    """One line per entry: state, time, hash, source and path, batch.

    Example:
        >>> from pathlib import PurePath
        >>> entry = Entry("ab" * 32, "drop", PurePath("a.geojson"), 3, 0, "disposed",
        ...               "batch-1.geojson", None, 0.0)
        >>> format_entries([entry])[0].split()
        ['disposed', '1970-01-01T00:00:00Z', 'abababababab', 'drop/a.geojson', 'batch-1.geojson']
    """
    lines = []
    for e in entries:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.updated))
        where = printable(f"{e.source}/{e.path}")
        extra = e.batch or e.detail or ""
        lines.append(f"{e.state:<11} {when} {e.sha256[:12] or '-':<12} {where} {extra}".rstrip())
    return lines


def format_entry_details(entry: Entry) -> str:
    """Every field of one entry, one per line."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.updated))
    fields = {
        "state": entry.state,
        "sha256": entry.sha256 or "-",
        "source": entry.source,
        "path": printable(entry.path),
        "size": str(entry.size),
        "mtime_ns": str(entry.mtime_ns),
        "batch": entry.batch or "-",
        "detail": entry.detail or "-",
        "updated": when,
    }
    return "\n".join(f"{key}: {value}" for key, value in fields.items())


def requeue(settings: Settings, quarantined: Path) -> Path:
    """Move a quarantined file back into its input folder so it is ingested again.

    Args:
        settings: The daemon's settings (inputs, quarantine folder, state folder).
        quarantined: The file in the quarantine folder.

    Returns:
        Where the file now is.

    Raises:
        RequeueError: The file is not in quarantine, its input folder is not
            configured, or a file of that name already waits in the input folder.
    """
    quarantined = quarantined.absolute()
    folder = settings.quarantine_dir.absolute()
    if not quarantined.is_relative_to(folder) or not quarantined.is_file():
        raise RequeueError(f"{quarantined} is not a file in the quarantine folder {folder}")
    try:
        reason = read_reason(quarantined)
    except (OSError, ValueError) as exc:
        raise RequeueError(f"cannot read the reason beside {quarantined}: {exc}") from exc
    roots = {root.name: root for root in settings.inputs}
    root = roots.get(str(reason.get("source")))
    if root is None:
        raise RequeueError(f"its input folder {reason.get('source')!r} is not configured")
    rel = quarantined.relative_to(folder)
    target = root.path / rel
    if target.exists():
        raise RequeueError(f"{target} already exists; move it away first")
    target.parent.mkdir(parents=True, exist_ok=True)
    move_file(quarantined, target)
    quarantined.with_name(quarantined.name + ERROR_SUFFIX).unlink(missing_ok=True)
    ledger = Ledger(settings.state_dir)
    try:
        ledger.forget_path(root.name, rel, "quarantined")
    finally:
        ledger.close()
    return target


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the daemon would do with one entry of an input folder, and why."""

    path: Path
    action: str  # "ingest", "skip", "duplicate" or "quarantine"
    reason: str


def dry_run(settings: Settings, now: float | None = None) -> Iterator[Verdict]:
    """Walk the inputs and judge every entry as the daemon would, with no side effects.

    Files are read and validated in this process; nothing is moved, written or
    recorded.
    """
    now = time.time() if now is None else now
    names = Names(tuple(settings.patterns), tuple(settings.excludes))
    ledger_file = settings.state_dir / LEDGER_FILE
    ledger = Ledger(settings.state_dir, readonly=True) if ledger_file.exists() else None
    seen: dict[str, Path] = {}
    try:
        for root in settings.inputs:
            for entry in walk(root, names):
                yield _judge_entry(settings, root, entry, now, ledger, seen)
    finally:
        if ledger is not None:
            ledger.close()


def _judge_entry(
    settings: Settings,
    root: InputRoot,
    entry: WalkEntry,
    now: float,
    ledger: Ledger | None,
    seen: dict[str, Path],
) -> Verdict:
    path = Path(entry.path)
    if entry.kind != "file":
        return Verdict(path, "skip", entry.kind)
    if now - entry.mtime_ns / 1e9 < settings.settle_s:
        return Verdict(path, "skip", f"too young: changed less than {settings.settle_s} s ago")
    rel = path.relative_to(root.path.absolute())
    if ledger is not None and ledger.has_file(root.name, rel, entry.size, entry.mtime_ns):
        return Verdict(path, "skip", "already ingested")
    job = workers.Job(
        str(path),
        entry.size,
        entry.mtime_ns,
        settings.precision,
        settings.max_file_bytes,
        settings.output_format,
    )
    return _verdict_of(path, workers.process_file(job), settings, ledger, seen)


def _verdict_of(
    path: Path,
    result: workers.Result,
    settings: Settings,
    ledger: Ledger | None,
    seen: dict[str, Path],
) -> Verdict:
    match result:
        case workers.Ingested():
            if settings.dedupe == "content":
                if ledger is not None and ledger.has_content(result.sha256):
                    return Verdict(path, "duplicate", "the same content is already ingested")
                if result.sha256 in seen:
                    return Verdict(path, "duplicate", f"the same content as {seen[result.sha256]}")
            seen[result.sha256] = path
            warned = f", warnings: {', '.join(result.warnings)}" if result.warnings else ""
            return Verdict(path, "ingest", f"{result.features} features{warned}")
        case workers.Rejected():
            return Verdict(
                path, "quarantine", f"{result.rule} at #{result.pointer}: {result.message}"
            )
        case workers.Skipped() | workers.Unready():
            return Verdict(path, "skip", result.reason)
        case workers.Failed():
            return Verdict(path, "skip", f"I/O error: {result.message}")
    raise AssertionError(f"unexpected result {result!r}")
