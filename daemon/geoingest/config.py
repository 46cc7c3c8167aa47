"""Settings: defaults, a TOML file, the environment and the command line.

One table, :data:`OPTIONS`, names every setting once. The command line, the
TOML file and the ``GEOINGEST_<NAME>`` environment variables are all built
from it, so the three always offer the same keys. Precedence is command line,
then environment, then file, then the defaults.

Every value passes through the same converter whatever its origin, and a bad
value raises :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "GEOINGEST_"
MIB = 1024 * 1024


class ConfigError(Exception):
    """A setting is missing or has a value geoingest cannot use.

    Args:
        key: The setting's name as written in the TOML file.
        message: What is wrong with it, as one sentence.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True, slots=True)
class InputRoot:
    """One input folder and the name its metrics carry as ``source``."""

    name: str
    path: Path


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of a geoingest run, converted and checked."""

    inputs: tuple[InputRoot, ...]
    output: Path
    state_dir: Path
    quarantine_dir: Path
    on_success: str = "keep"
    done_dir: Path | None = None
    patterns: tuple[str, ...] = ("*.geojson",)
    excludes: tuple[str, ...] = ()
    settle_s: float = 1.0
    rescan_interval_s: float = 60.0
    force_polling: bool = False
    max_concurrency: int | str = 256
    queue_size: int = 1000
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    batch_max_features: int = 10_000
    batch_max_bytes: int = 64 * MIB
    batch_max_age_s: float = 5.0
    precision: int = 6
    max_file_bytes: int = 64 * MIB
    output_format: str = "geojson"
    metrics_address: tuple[str, int] = ("127.0.0.1", 9611)
    drain_timeout_s: float = 30.0
    dedupe: str = "content"
    ledger_retention_s: float = 30 * 86400.0
    log_level: str = "info"
    log_format: str | None = None


# Converters: each takes the raw value (a string from the command line or the
# environment, or a TOML value) and returns the typed value or raises ValueError.


def _to_int(raw: object) -> int:
    if isinstance(raw, bool):
        raise ValueError("expected a whole number")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str):
        return int(raw.strip().replace("_", ""))
    raise ValueError("expected a whole number")


def _to_concurrency(raw: object) -> int | str:
    if isinstance(raw, str) and raw.strip().lower() == "auto":
        return "auto"
    try:
        return _to_int(raw)
    except ValueError:
        raise ValueError("expected a whole number or auto") from None


def _to_float(raw: object) -> float:
    if isinstance(raw, bool):
        raise ValueError("expected a number")
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        return float(raw)
    raise ValueError("expected a number")


def _to_bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(raw, str) and raw.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _to_str(raw: object) -> str:
    if not isinstance(raw, str) or not raw:
        raise ValueError("expected a non-empty string")
    return raw


def _to_path(raw: object) -> Path:
    return Path(_to_str(raw)).expanduser()


def _to_list(raw: object) -> list[str]:
    """Lists come as TOML arrays, repeated options, or comma-separated strings."""
    if isinstance(raw, str):
        return [part.strip() for part in raw.split(",") if part.strip()]
    if isinstance(raw, list | tuple) and all(isinstance(item, str) for item in raw):
        return list(raw)
    raise ValueError("expected a list of strings")


def _to_address(raw: object) -> tuple[str, int]:
    host, sep, port = _to_str(raw).rpartition(":")
    if not sep or not host:
        raise ValueError("expected HOST:PORT, for example 127.0.0.1:9611")
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError("the port must be between 0 and 65535")
    return host.strip("[]"), number


def _choice(*allowed: str) -> Callable[[object], str]:
    def convert(raw: object) -> str:
        value = _to_str(raw).lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value

    return convert


@dataclass(frozen=True, slots=True)
class Option:
    """One setting as the command line, the file and the environment know it."""

    key: str
    convert: Callable[[object], Any]
    help: str
    default: str
    repeatable: bool = False
    metavar: str | None = None

    @property
    def flag(self) -> str:
        """The command-line spelling, e.g. ``--settle-s``."""
        return "--" + self.key.replace("_", "-")

    @property
    def env(self) -> str:
        """The environment variable, e.g. ``GEOINGEST_SETTLE_S``."""
        return ENV_PREFIX + self.key.upper()


OPTIONS: tuple[Option, ...] = (
    Option(
        "input",
        _to_list,
        "An input folder to ingest from; repeat for several. Write NAME=DIR "
        "to choose the name its metrics carry, which is otherwise the folder's name.",
        "none, required",
        repeatable=True,
        metavar="[NAME=]DIR",
    ),
    Option(
        "output",
        _to_path,
        "The folder that receives the committed batch files.",
        "none, required",
        metavar="DIR",
    ),
    Option(
        "state_dir",
        _to_path,
        "The folder for geoingest's own state.",
        "<output>/.geoingest",
        metavar="DIR",
    ),
    Option(
        "quarantine_dir",
        _to_path,
        "The folder that receives rejected files and the reason for each.",
        "<state-dir>/quarantine",
        metavar="DIR",
    ),
    Option(
        "on_success",
        _choice("keep", "move", "delete"),
        "What happens to a source file once the batch holding its features is committed.",
        "keep",
        metavar="keep|move|delete",
    ),
    Option(
        "done_dir",
        _to_path,
        "Where ingested files go with --on-success move, at their "
        "path relative to their input folder.",
        "none",
        metavar="DIR",
    ),
    Option(
        "pattern",
        _to_list,
        "A file-name glob that selects files to ingest; repeat for several.",
        "*.geojson",
        repeatable=True,
        metavar="GLOB",
    ),
    Option(
        "exclude",
        _to_list,
        "A glob of names or relative paths to leave alone; repeat for "
        "several. Dot-files and names ending in .tmp or .part are always skipped.",
        "none",
        repeatable=True,
        metavar="GLOB",
    ),
    Option(
        "settle_s",
        _to_float,
        "Seconds a file's size and modification time must stay "
        "unchanged before it counts as complete.",
        "1.0",
        metavar="SECONDS",
    ),
    Option(
        "rescan_interval_s",
        _to_float,
        "Seconds between reconciliation walks that find "
        "files the watcher missed; 0 turns them off.",
        "60",
        metavar="SECONDS",
    ),
    Option(
        "force_polling",
        _to_bool,
        "Poll the input folders instead of using inotify, for "
        "network filesystems whose remote writes inotify cannot see.",
        "false",
        metavar="true|false",
    ),
    Option(
        "max_concurrency",
        _to_concurrency,
        "The most files open or in flight at once, or auto to adapt the limit to the "
        "storage's measured latency and throughput.",
        "256",
        metavar="N|auto",
    ),
    Option(
        "queue_size",
        _to_int,
        "The most settled files waiting for a worker; a full queue pauses discovery.",
        "1000",
        metavar="N",
    ),
    Option(
        "workers",
        _to_int,
        "Worker processes that parse, validate and transform files.",
        "the number of CPUs",
        metavar="N",
    ),
    Option(
        "batch_max_features",
        _to_int,
        "A batch is committed once it holds this many features.",
        "10000",
        metavar="N",
    ),
    Option(
        "batch_max_bytes",
        _to_int,
        "A batch is committed once it holds this many bytes.",
        "67108864 (64 MiB)",
        metavar="BYTES",
    ),
    Option(
        "batch_max_age_s",
        _to_float,
        "A batch is committed once its oldest feature has waited this many seconds.",
        "5",
        metavar="SECONDS",
    ),
    Option(
        "precision",
        _to_int,
        "Decimals kept in every coordinate; -1 keeps coordinates as they are.",
        "6",
        metavar="DECIMALS",
    ),
    Option(
        "max_file_bytes",
        _to_int,
        "Larger input files are quarantined without being read.",
        "67108864 (64 MiB)",
        metavar="BYTES",
    ),
    Option(
        "output_format",
        _choice("geojson", "geojsonseq"),
        "Write batches as RFC 7946 "
        "FeatureCollections (.geojson) or RFC 8142 text sequences (.geojsons).",
        "geojson",
        metavar="geojson|geojsonseq",
    ),
    Option(
        "metrics_address",
        _to_address,
        "HOST:PORT for /metrics, /healthz and /readyz; port 0 picks a free port.",
        "127.0.0.1:9611",
        metavar="HOST:PORT",
    ),
    Option(
        "drain_timeout_s",
        _to_float,
        "Seconds a shutdown waits for files in flight before it gives up on them.",
        "30",
        metavar="SECONDS",
    ),
    Option(
        "dedupe",
        _choice("content", "path", "none"),
        "Which files count as already ingested: the same content under any name, the same "
        "path with the same size and modification time, or none.",
        "content",
        metavar="content|path|none",
    ),
    Option(
        "ledger_retention_s",
        _to_float,
        "Seconds the ledger keeps entries of disposed, duplicate and quarantined files; "
        "older ones are compacted away.",
        "2592000 (30 days)",
        metavar="SECONDS",
    ),
    Option(
        "log_level",
        _choice("debug", "info", "warning", "error"),
        "The least severe log level written.",
        "info",
        metavar="LEVEL",
    ),
    Option(
        "log_format",
        _choice("json", "console"),
        "JSON lines, or a console format for people.",
        "console on a terminal, json otherwise",
        metavar="json|console",
    ),
)

OPTIONS_BY_KEY: dict[str, Option] = {option.key: option for option in OPTIONS}


def read_file(path: Path) -> dict[str, object]:
    """Read a TOML configuration file.

    Raises:
        ConfigError: The file cannot be read, is not TOML, or has an unknown key.
    """
    try:
        with path.open("rb") as f:
            table = tomllib.load(f)
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{path} is not valid TOML: {exc}") from exc
    for key in table:
        if key not in OPTIONS_BY_KEY:
            raise ConfigError(key, f"unknown setting in {path}")
    return table


def read_environment(environ: Mapping[str, str]) -> dict[str, object]:
    """Collect the ``GEOINGEST_<NAME>`` variables that are set and not empty."""
    return {
        option.key: environ[option.env] for option in OPTIONS if environ.get(option.env, "") != ""
    }


def load(
    cli: Mapping[str, object],
    environ: Mapping[str, str],
    config_file: Path | None = None,
) -> Settings:
    """Merge the sources of settings and build :class:`Settings`.

    Args:
        cli: Values given on the command line, by key; absent keys were not given.
        environ: The process environment.
        config_file: A TOML file, when ``--config`` names one.

    Raises:
        ConfigError: A value is missing, malformed or inconsistent.

    Example:
        >>> s = load({"input": ["drop"], "output": "out"}, {"GEOINGEST_SETTLE_S": "2"})
        >>> (s.inputs[0].name, s.settle_s, str(s.state_dir))
        ('drop', 2.0, 'out/.geoingest')
    """
    merged: dict[str, object] = {}
    if config_file is not None:
        merged.update(read_file(config_file))
    merged.update(read_environment(environ))
    merged.update({key: value for key, value in cli.items() if value is not None})
    values = {key: _convert(key, raw) for key, raw in merged.items()}
    return _build(values)


def _convert(key: str, raw: object) -> object:
    try:
        return OPTIONS_BY_KEY[key].convert(raw)
    except (ValueError, TypeError) as exc:
        shown = raw if isinstance(raw, str) else repr(raw)
        raise ConfigError(key, f"{exc or 'invalid value'} (got {shown})") from exc


def _build(values: dict[str, Any]) -> Settings:
    """Fill in derived defaults and check that the settings fit together."""
    if not values.get("input"):
        raise ConfigError("input", "at least one input folder is required")
    if "output" not in values:
        raise ConfigError("output", "an output folder is required")
    inputs = _input_roots(values.pop("input"))
    output: Path = values.pop("output")
    state_dir: Path = values.pop("state_dir", output / ".geoingest")
    quarantine_dir: Path = values.pop("quarantine_dir", state_dir / "quarantine")
    renamed = {"pattern": "patterns", "exclude": "excludes"}
    fields = {renamed.get(key, key): value for key, value in values.items()}
    for key in ("patterns", "excludes"):
        if key in fields:
            fields[key] = tuple(fields[key])
    settings = Settings(
        inputs=inputs,
        output=output,
        state_dir=state_dir,
        quarantine_dir=quarantine_dir,
        **fields,
    )
    _check(settings)
    return settings


def _input_roots(entries: Sequence[str]) -> tuple[InputRoot, ...]:
    roots: list[InputRoot] = []
    for entry in entries:
        name, sep, folder = entry.partition("=")
        path = Path(folder if sep else entry).expanduser()
        roots.append(InputRoot(name=name if sep else (path.resolve().name or "root"), path=path))
    names = [root.name for root in roots]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ConfigError(
            "input",
            f"two input folders share the name {duplicated[0]!r}; "
            "write NAME=DIR to tell them apart",
        )
    return tuple(roots)


_POSITIVE = (
    "queue_size",
    "workers",
    "batch_max_features",
    "batch_max_bytes",
    "max_file_bytes",
)
_NOT_NEGATIVE = (
    "settle_s",
    "rescan_interval_s",
    "batch_max_age_s",
    "drain_timeout_s",
    "ledger_retention_s",
)


def _check(settings: Settings) -> None:
    if settings.max_concurrency != "auto" and int(settings.max_concurrency) < 1:
        raise ConfigError("max_concurrency", "must be 1 or more, or auto")
    for key in _POSITIVE:
        if getattr(settings, key) < 1:
            raise ConfigError(key, "must be 1 or more")
    for key in _NOT_NEGATIVE:
        if getattr(settings, key) < 0:
            raise ConfigError(key, "must not be negative")
    if not -1 <= settings.precision <= 15:
        raise ConfigError("precision", "must be between -1 and 15")
    if settings.on_success == "move" and settings.done_dir is None:
        raise ConfigError("done_dir", "is required with on_success = move")
    # A folder geoingest writes to must not lie inside an input, or it would
    # ingest its own output, or the files it quarantined, again.
    written = {
        "output": settings.output,
        "state_dir": settings.state_dir,
        "quarantine_dir": settings.quarantine_dir,
        "done_dir": settings.done_dir,
    }
    for key, folder in written.items():
        if folder is None:
            continue
        for root in settings.inputs:
            if folder.resolve().is_relative_to(root.path.resolve()):
                raise ConfigError(key, f"must not lie inside the input folder {root.path}")
