"""The ``geoingest`` command: run, once, validate, check-config.

Every setting is an option of ``run``, ``once`` and ``check-config``, built
from :data:`geoingest.config.OPTIONS`; the TOML file and the environment
accept the same names.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from geoingest import __version__
from geoingest.config import OPTIONS, ConfigError, Settings, load
from geoingest.exitcodes import ExitCode

_DESCRIPTION = "Turn drop folders of GeoJSON files into validated, batched, durable output."
_COMMANDS = {
    "run": "Ingest what is in the input folders, then watch them for new files until stopped.",
    "once": "Ingest what is in the input folders now, then exit.",
    "check-config": "Check the configuration and the folders; exit 0 when they are usable.",
}


def _version() -> str:
    """Name the version, and whether the compiled coordinate pass was built at install time."""
    from geoingest.geojson.fused import COMPILED

    coordinates = "compiled" if COMPILED else "pure Python, no C compiler at install time"
    return f"geoingest {__version__} (coordinate pass: {coordinates})"


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="geoingest", description=_DESCRIPTION)
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in _COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _add_setting_options(sub)
    validate = commands.add_parser(
        "validate",
        help="Check GeoJSON files against RFC 7946 and print one line per problem.",
        description="Check GeoJSON files against RFC 7946. Prints one line per problem as "
        "PATH: RULE at POINTER: MESSAGE and exits 1 when any file has an error (warnings "
        "alone exit 0).",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="The files to check.")
    _add_inspection_commands(commands)
    return parser


def _add_inspection_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ledger = commands.add_parser(
        "ledger",
        help="Show what the ledger knows about source files.",
        description="Show what the ledger knows about source files.",
    )
    actions = ledger.add_subparsers(dest="ledger_command", required=True, metavar="ACTION")
    ls = actions.add_parser("ls", help="List the most recently updated entries, newest first.")
    ls.add_argument("--limit", type=int, default=50, help="The most entries to list (default: 50).")
    _add_setting_options(ls)
    show = actions.add_parser("show", help="Show every entry for a path or a content hash.")
    show.add_argument(
        "key", metavar="PATH_OR_HASH", help="A path relative to its input folder, or a sha256."
    )
    _add_setting_options(show)
    dry_run = commands.add_parser(
        "dry-run",
        help="Report what would be ingested, skipped or quarantined, changing nothing.",
        description="Walk the input folders and report, one line per entry, what the daemon "
        "would do with it and why, without moving, writing or recording anything.",
    )
    _add_setting_options(dry_run)
    requeue = commands.add_parser(
        "requeue",
        help="Move a fixed quarantined file back into its input folder.",
        description="Move a quarantined file back into its input folder, at its relative path, "
        "so that the daemon ingests it again.",
    )
    requeue.add_argument(
        "path", metavar="PATH", type=Path, help="The file in the quarantine folder."
    )
    _add_setting_options(requeue)


def _add_setting_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help="A TOML file of settings; the command line and GEOINGEST_* environment variables "
        "override it (default: none).",
    )
    for option in OPTIONS:
        parser.add_argument(
            option.flag,
            dest=option.key,
            action="append" if option.repeatable else "store",
            metavar=option.metavar or option.key.upper(),
            help=f"{option.help} (default: {option.default}; environment: {option.env})",
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``geoingest`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "validate":
        return validate_files(args.files)
    try:
        settings = settings_from(args)
    except ConfigError as exc:
        print(f"geoingest: configuration error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    inspect = _INSPECTIONS.get(args.command)
    if inspect is not None:
        return inspect(settings, args)

    from geoingest import logs
    from geoingest.service import serve

    logs.configure(settings.log_level, settings.log_format)
    return int(
        serve(settings, once=args.command == "once", reload_settings=lambda: settings_from(args))
    )


def settings_from(args: argparse.Namespace) -> Settings:
    """Merge the parsed command line with the environment and the config file."""
    cli = {option.key: getattr(args, option.key) for option in OPTIONS}
    return load(cli, os.environ, args.config)


def show_ledger(settings: Settings, args: argparse.Namespace) -> ExitCode:
    """Print ledger entries, as ``geoingest ledger ls|show`` does."""
    from geoingest import inspection
    from geoingest.ledger import LEDGER_FILE, Ledger

    if not (settings.state_dir / LEDGER_FILE).exists():
        print(f"geoingest: no ledger in {settings.state_dir}", file=sys.stderr)
        return ExitCode.USAGE
    ledger = Ledger(settings.state_dir)
    try:
        if args.ledger_command == "ls":
            lines = inspection.format_entries(ledger.recent(args.limit))
        else:
            lines = [inspection.format_entry_details(e) + "\n" for e in ledger.find(args.key)]
    finally:
        ledger.close()
    if not lines and args.ledger_command == "show":
        print(f"geoingest: the ledger knows nothing of {args.key}", file=sys.stderr)
        return ExitCode.PROBLEMS
    print("\n".join(lines).rstrip())
    return ExitCode.OK


def dry_run(settings: Settings) -> ExitCode:
    """Print what the daemon would do with each entry, as ``geoingest dry-run`` does."""
    from collections import Counter

    from geoingest.inspection import dry_run as judge
    from geoingest.logs import printable

    actions: Counter[str] = Counter()
    for verdict in judge(settings):
        actions[verdict.action] += 1
        print(f"{printable(verdict.path)}: {verdict.action}: {verdict.reason}")
    summary = ", ".join(f"{actions[a]} {a}" for a in ("ingest", "duplicate", "quarantine", "skip"))
    print(f"dry run: {summary}", file=sys.stderr)
    return ExitCode.OK


def requeue_file(settings: Settings, path: Path) -> ExitCode:
    """Take a quarantined file back, as ``geoingest requeue`` does."""
    from geoingest.inspection import RequeueError, requeue

    try:
        target = requeue(settings, path)
    except RequeueError as exc:
        print(f"geoingest: cannot requeue: {exc}", file=sys.stderr)
        return ExitCode.PROBLEMS
    print(f"requeued as {target}")
    return ExitCode.OK


def check_config(settings: Settings) -> ExitCode:
    """Report whether the settings and folders are usable, as ``check-config`` does."""
    problems = [
        f"input: {root.path} does not exist or is not a folder"
        for root in settings.inputs
        if not root.path.is_dir()
    ]
    for key in ("output", "state_dir", "quarantine_dir", "done_dir"):
        folder = getattr(settings, key)
        if folder is not None:
            problem = _creatable_problem(folder)
            if problem:
                problems.append(f"{key}: {problem}")
    for problem in problems:
        print(f"geoingest: configuration error: {problem}", file=sys.stderr)
    if problems:
        return ExitCode.USAGE
    print("configuration ok")
    return ExitCode.OK


def _creatable_problem(folder: Path) -> str | None:
    """Why ``folder`` could not be used as a writable folder, without creating it."""
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def validate_files(paths: Sequence[str]) -> ExitCode:
    """Validate files and print one line per problem, as ``geoingest validate`` does."""
    from geoingest.geojson import check_bytes

    worst = ExitCode.OK
    for path in paths:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            print(f"{path}: io-error at #: {exc.strerror}")
            worst = ExitCode.PROBLEMS
            continue
        for problem in check_bytes(raw):
            kind = " (warning)" if problem.warning else ""
            print(f"{path}: {problem.rule} at #{problem.pointer}: {problem.message}{kind}")
            if not problem.warning:
                worst = ExitCode.PROBLEMS
    return worst


# Commands that look and report rather than run the daemon.
_INSPECTIONS: dict[str, Callable[[Settings, argparse.Namespace], ExitCode]] = {
    "check-config": lambda settings, args: check_config(settings),
    "ledger": show_ledger,
    "dry-run": lambda settings, args: dry_run(settings),
    "requeue": lambda settings, args: requeue_file(settings, args.path),
}


if __name__ == "__main__":
    sys.exit(main())
