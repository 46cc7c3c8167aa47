"""Measure geoingest against the two reference scripts, in one-shot and in watch mode.

Usage, from the repository root::

    .venv/bin/python bench/run.py --files 10000
    .venv/bin/python bench/run.py --files 100000 --json bench-100k.json
    .venv/bin/python bench/run.py --quick

One-shot: a corpus is made with the shared generator (``../shared`` beside the
repository) or reused when one made with the same arguments is there. Then
``geoingest once``, the design document's asyncio script and the plain
synchronous script each ingest it into a fresh folder, after an untimed read
that warms the page cache. Each run reports wall time, files/s, MB/s,
features/s and the peak summed RSS of its whole process tree, sampled from
``/proc`` every 20 ms. geoingest's output must hold exactly the features of
the corpus's valid files; the baselines' counts are shown for comparison.

Watch mode: ``geoingest run`` watches an empty folder while files arrive at a
steady rate (``--watch-rate`` for ``--watch-seconds``; 0 seconds skips it).
The run reports the latency from each file's landing to the commit of the
batch holding its features, whether every feature came out exactly once, the
exit code after SIGTERM, and the peak of ``process_open_fds``.

Markdown goes to stdout, progress to stderr, and every figure to ``--json``.
The exit code is 0 when geoingest ran and passed every check, 1 when it
failed one, 2 when the benchmark itself could not run, and 130 when it was
interrupted (Ctrl-C or SIGTERM), after stopping every process it started.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from corpora import Corpus, CorpusError, ensure_corpus
from oneshot import ToolRun, baseline_tools, byte_compile_geoingest, geoingest_tool, measure
from progress import note
from results import EXIT_INTERRUPTED, EXIT_OK, EXIT_SETUP_FAILED, REPO, Measurements, environment
from watchmode import WatchResult, WatchSettings, measure_watch

TOOLS = ("geoingest", "seed_async", "sync_naive")
AddArgument = Callable[..., argparse.Action]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line; ``--quick`` fills in whatever was left at its default."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_corpus_options(parser.add_argument_group("corpus and folders").add_argument)
    add_oneshot_options(parser.add_argument_group("one-shot ingest").add_argument)
    add_watch_options(parser.add_argument_group("watch mode").add_argument)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="A fast smoke run: 2000 files, "
        "10 s of watch mode, unless --files or --watch-seconds say otherwise.",
    )
    parser.add_argument("--json", type=Path, help="Write every figure to this JSON file.")
    args = parser.parse_args(argv)
    args.files = args.files or (2000 if args.quick else 10_000)
    if args.watch_seconds is None:
        args.watch_seconds = 10.0 if args.quick else 60.0
    if min(args.files, args.max_kb, args.repeat) < 1 or args.watch_rate <= 0:
        parser.error("--files, --max-kb, --repeat and --watch-rate must be positive")
    return args


def add_corpus_options(add: AddArgument) -> None:
    """Add the options that say which corpus to use and where to work."""
    add("--files", type=int, help="Files in the corpus (default: 10000, or 2000 with --quick).")
    add("--max-kb", type=int, default=50, help="Largest corpus file, in KiB (default: 50).")
    add(
        "--corpus",
        type=Path,
        help="The corpus folder (default: one named for the corpus's "
        "arguments in the work folder).",
    )
    add(
        "--work-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "geoingest-bench",
        help="Where corpora are kept and run folders made (default: <temp>/geoingest-bench).",
    )
    add(
        "--shared",
        type=Path,
        default=REPO.parent / "shared",
        help="The folder holding "
        "bench/make_corpus.py and bench/baselines (default: ../shared beside the repository).",
    )
    add(
        "--keep",
        action="store_true",
        help="Keep the run folder and its logs even when all went well.",
    )


def add_oneshot_options(add: AddArgument) -> None:
    """Add the options of the one-shot comparison."""
    add(
        "--tools",
        default=",".join(TOOLS),
        help="Comma-separated tools to run, empty for none (default: all three).",
    )
    add(
        "--repeat",
        type=int,
        default=1,
        help="Runs of each tool, in interleaved rounds; the "
        "tables show each tool's median run (default: 1).",
    )
    add(
        "--geoingest",
        default=f"{shlex.quote(sys.executable)} -m geoingest",
        help="The "
        "command that starts geoingest, before its subcommand (default: this interpreter "
        "with -m geoingest).",
    )
    add("--workers", type=int, help="geoingest's --workers (default: its own, the CPU count).")
    add(
        "--timeout-s",
        type=float,
        default=3600,
        help="Longest one tool, or making the corpus, may take (default: 3600).",
    )


def add_watch_options(add: AddArgument) -> None:
    """Add the options of the watch-mode measurement."""
    add("--watch-rate", type=float, default=1000, help="Files dropped per second (default: 1000).")
    add(
        "--watch-seconds",
        type=float,
        help="Seconds of dropping; 0 skips watch mode (default: 60, or 10 with --quick).",
    )
    add("--settle-s", type=float, default=1.0, help="geoingest's --settle-s (default: 1.0).")
    add(
        "--batch-max-age-s",
        type=float,
        default=5.0,
        help="geoingest's --batch-max-age-s (default: 5).",
    )
    add(
        "--max-concurrency",
        type=int,
        default=64,
        help="geoingest's --max-concurrency (default: 64).",
    )
    add(
        "--watch-grace-s",
        type=float,
        default=75.0,
        help="Longest wait after the last drop "
        "for every feature to be committed; covers one reconciliation walk (default: 75).",
    )


def default_corpus(work_dir: Path, files: int, max_kb: int) -> Path:
    """Return where a corpus made with these arguments is kept unless told otherwise."""
    return work_dir / f"corpus-{files}-files-{max_kb}-kb"


def prepare_corpus(args: argparse.Namespace) -> Corpus:
    """Make or reuse the corpus the arguments describe."""
    generator = args.shared / "bench" / "make_corpus.py"
    if not generator.is_file():
        raise CorpusError(f"no corpus generator at {generator}; pass --shared")
    path = args.corpus or default_corpus(args.work_dir, args.files, args.max_kb)
    path.parent.mkdir(parents=True, exist_ok=True)
    arguments = ["--files", str(args.files), "--max-kb", str(args.max_kb)]
    return ensure_corpus(path, generator, arguments, timeout_s=args.timeout_s)


def chosen_tools(args: argparse.Namespace) -> list[str]:
    """Return the names of the one-shot tools to run; an unknown name is an error."""
    chosen = [name.strip() for name in args.tools.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(TOOLS))
    if unknown:
        raise SystemExit(f"bench: unknown tool(s) {', '.join(unknown)}; choose from {TOOLS}")
    return chosen


def run_oneshot(args: argparse.Namespace, corpus: Corpus, run_dir: Path) -> list[list[ToolRun]]:
    """Run each chosen tool over the corpus ``--repeat`` times, in interleaved rounds.

    Returns:
        For each tool, its runs in order.
    """
    tools = [
        geoingest_tool(shlex.split(args.geoingest), args.workers),
        *baseline_tools(args.shared / "bench" / "baselines"),
    ]
    chosen = [tool for tool in tools if tool.name in chosen_tools(args)]
    runs: list[list[ToolRun]] = [[] for _ in chosen]
    for round_number in range(1, args.repeat + 1):
        for tool, done in zip(chosen, runs, strict=True):
            folder = run_dir / f"{tool.name}-{round_number}"
            done.append(measure(tool, corpus, folder, args.timeout_s))
            if done[-1].error:
                note(f"{tool.name}: {done[-1].error}")
    return runs


def run_watch(args: argparse.Namespace, run_dir: Path) -> WatchResult:
    """Run the watch-mode measurement with the arguments' settings."""
    settings = WatchSettings(
        launcher=shlex.split(args.geoingest),
        rate=args.watch_rate,
        seconds=args.watch_seconds,
        settle_s=args.settle_s,
        batch_max_age_s=args.batch_max_age_s,
        max_concurrency=args.max_concurrency,
        workers=args.workers,
        grace_s=args.watch_grace_s,
    )
    try:
        return measure_watch(settings, run_dir / "watch")
    finally:
        for data in ("drop", "output"):
            shutil.rmtree(run_dir / "watch" / data, ignore_errors=True)


def run_all(args: argparse.Namespace, run_dir: Path) -> Measurements:
    """Run the chosen measurements in ``run_dir``, print them and write the JSON file."""
    measured = Measurements(environment())
    if chosen_tools(args):
        measured.corpus = prepare_corpus(args)
        note(f"corpus: {measured.corpus.summary}")
        measured.runs = run_oneshot(args, measured.corpus, run_dir)
    if args.watch_seconds > 0:
        measured.watch = run_watch(args, run_dir)
    print(measured.markdown(), flush=True)
    if args.json:
        args.json.write_text(json.dumps(measured.document(args), indent=2) + "\n")
    return measured


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and return its exit code; keep the logs unless all went well."""
    args = parse_args(argv)
    byte_compile_geoingest()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=args.work_dir))
    # SIGTERM interrupts like Ctrl-C, so that every child process is stopped on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        measured = run_all(args, run_dir)
        code, troubled = measured.exit_code(), measured.troubled()
    except (CorpusError, OSError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        code, troubled = EXIT_SETUP_FAILED, True
    except KeyboardInterrupt:
        note("interrupted")
        code, troubled = EXIT_INTERRUPTED, True
    if (code == EXIT_OK and not troubled and not args.keep) or not any(run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        note(f"logs kept in {run_dir}")
    return code


if __name__ == "__main__":
    sys.exit(main())
