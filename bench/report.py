"""Turning measurements into Markdown tables and one JSON document.

Rates are per wall-clock second over the whole corpus, whatever a tool lost:
files/s and MB/s (10^6 bytes) of input, and features/s counted as the
features in the corpus's valid files. Memory is the peak over the tool's
whole process tree, in MB: summed RSS, which counts pages that processes
share once per process, and summed PSS, which splits them between sharers.
"CPU cores" is the CPU time of the tree divided by the wall time.
"""

from __future__ import annotations

from collections.abc import Iterable

from corpora import Corpus
from oneshot import ToolRun
from watchmode import WatchResult

GEOINGEST = "geoingest"
MB = 1e6


def throughput(run: ToolRun, corpus: Corpus) -> dict[str, float]:
    """Return a run's rates, zero when it did not finish."""
    if not run.ok or run.wall_s <= 0:
        return {"files_per_s": 0.0, "mb_per_s": 0.0, "features_per_s": 0.0}
    return {
        "files_per_s": corpus.files / run.wall_s,
        "mb_per_s": corpus.nbytes / MB / run.wall_s,
        "features_per_s": corpus.features / run.wall_s,
    }


def ratios(runs: list[ToolRun]) -> dict[str, dict[str, float]]:
    """Return geoingest's throughput and peak memory relative to each baseline that finished.

    Throughput above 1 means geoingest was faster; memory below 1 means it used less.
    """
    by_name = {run.name: run for run in runs if run.ok}
    ours = by_name.get(GEOINGEST)
    if ours is None:
        return {}
    return {
        name: {
            "throughput": other.wall_s / ours.wall_s,
            "memory_rss": _ratio(ours.peak_rss_bytes, other.peak_rss_bytes),
            "memory_pss": _ratio(ours.peak_pss_bytes, other.peak_pss_bytes),
        }
        for name, other in by_name.items()
        if name != GEOINGEST
    }


def _ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs else 0.0


def output_checks(runs: list[ToolRun], corpus: Corpus) -> dict[str, object]:
    """Return what each tool wrote against what the corpus holds; only geoingest must match."""
    checks: dict[str, object] = {"corpus_features": corpus.features, "corpus_broken": corpus.broken}
    for run in runs:
        checks[f"{run.name}_features_out"] = run.features_out if run.ok else None
    ours = next((run for run in runs if run.name == GEOINGEST), None)
    if ours is not None:
        checks["geoingest_features_match"] = ours.ok and ours.features_out == corpus.features
        checks["geoingest_quarantined"] = ours.quarantined
    return checks


def table(header: list[str], rows: Iterable[list[str]]) -> str:
    """Return a Markdown table, numbers right-aligned.

    >>> print(table(["a", "b"], [["x", "1"]]))
    | a | b |
    | --- | --: |
    | x | 1 |
    """
    rule = ["---"] + ["--:"] * (len(header) - 1)
    lines = [header, rule, *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def oneshot_markdown(runs: list[ToolRun], corpus: Corpus) -> str:
    """Return the one-shot tables and the output check as Markdown."""
    header = [
        "tool",
        "wall s",
        "files/s",
        "MB/s",
        "features/s",
        "peak RSS MB",
        "peak PSS MB",
        "processes",
        "CPU cores",
    ]
    rows = [_oneshot_row(run, corpus) for run in runs]
    parts = [
        f"## One-shot ingest: {corpus.files:,} files, {corpus.nbytes / MB:,.0f} MB, "
        f"{corpus.features:,} features in valid files, {corpus.broken:,} broken",
        table([*header, "features out"], rows),
    ]
    relative = ratios(runs)
    if relative:
        ratio_rows = [
            [
                f"vs {name}",
                *(f"{r[key]:.2f}x" for key in ("throughput", "memory_rss", "memory_pss")),
            ]
            for name, r in relative.items()
        ]
        header = ["geoingest", "throughput", "peak RSS", "peak PSS"]
        parts.append(table(header, ratio_rows))
    parts.append(_check_lines(runs, corpus))
    return "\n\n".join(parts)


def _oneshot_row(run: ToolRun, corpus: Corpus) -> list[str]:
    if not run.ok:
        return [run.name, *["-"] * 8, f"failed: {_short(run.error)}"]
    rates = throughput(run, corpus)
    return [
        run.name,
        f"{run.wall_s:.1f}",
        f"{rates['files_per_s']:,.0f}",
        f"{rates['mb_per_s']:.1f}",
        f"{rates['features_per_s']:,.0f}",
        f"{run.peak_rss_bytes / MB:,.0f}",
        f"{run.peak_pss_bytes / MB:,.0f}",
        str(run.peak_processes),
        f"{run.cpu_s / run.wall_s:.2f}",
        f"{run.features_out:,}",
    ]


def _check_lines(runs: list[ToolRun], corpus: Corpus) -> str:
    lines = []
    for run in runs:
        if not run.ok:
            lines.append(f"- {run.name} did not complete: {run.error}")
        elif run.name == GEOINGEST:
            verdict = "matches" if run.features_out == corpus.features else "DOES NOT match"
            lines.append(
                f"- geoingest wrote {run.features_out:,} features in {run.batches} batches: "
                f"{verdict} the corpus's {corpus.features:,}; it quarantined "
                f"{run.quarantined} files of {corpus.broken} broken."
            )
        else:
            lost = corpus.features - run.features_out
            lines.append(f"- {run.name} wrote {run.features_out:,} features ({lost:,} lost).")
    return "\n".join(lines)


def watch_markdown(result: WatchResult) -> str:
    """Return the watch-mode table and verdict as Markdown."""
    settings, latency = result.settings, result.latency
    title = (
        f"## Watch mode: {settings.rate:g} files/s for {settings.seconds:g} s, "
        f"settle_s={settings.settle_s:g}, batch_max_age_s={settings.batch_max_age_s:g}"
    )
    rows = [
        ["arrival rate achieved, files/s", f"{result.achieved_rate:,.0f}"],
        ["worst lag of the producer behind schedule, s", f"{result.max_behind_schedule_s:.3f}"],
        [
            "CPU cores used while dropping: daemon / producer",
            f"{result.daemon_cores:.2f} / {result.bench_cores:.2f}",
        ],
    ]
    if latency is not None:
        rows += _latency_rows(result)
    rows += _daemon_rows(result)
    verdict = "PASS" if result.passed else "FAIL: " + "; ".join(result.shortfalls())
    lines = [
        f"**{verdict}**. The bar: p99 under {settings.latency_bar_s:g} s at the asked rate,",
        "every feature delivered exactly once, exit code 0 after SIGTERM.",
    ]
    return "\n\n".join([title, table(["measure", "value"], rows), " ".join(lines)])


def _latency_rows(result: WatchResult) -> list[list[str]]:
    latency = result.latency
    if latency is None:
        return []
    return [
        ["files dropped / delivered", f"{latency.files_dropped:,} / {latency.files_delivered:,}"],
        [
            "latency p50 / p90 / p99 / max, s",
            " / ".join(
                _seconds(v) for v in (latency.p50_s, latency.p90_s, latency.p99_s, latency.max_s)
            ),
        ],
        ["features dropped", f"{latency.features_dropped:,}"],
        [
            "features missing / duplicated / unexpected",
            f"{latency.features_missing} / {latency.features_duplicated} / "
            f"{latency.features_unexpected}",
        ],
        ["exactly once", "yes" if latency.exactly_once else "NO"],
    ]


def _daemon_rows(result: WatchResult) -> list[list[str]]:
    return [
        ["ready (/readyz 200) before the first drop", "yes" if result.ready else "NO"],
        ["batches logged", str(result.batches_logged)],
        ["wait after the last drop until all was committed, s", f"{result.drain_wait_s:.1f}"],
        ["exit code after SIGTERM", str(result.exit_code)],
        ["processes left after exit", str(len(result.leftover_processes))],
        [
            "peak RSS / PSS of the process tree, MB",
            f"{result.peak_rss_bytes / MB:,.0f} / {result.peak_pss_bytes / MB:,.0f}",
        ],
        [
            "process_open_fds idle / peak (max_concurrency)",
            f"{_number(result.open_fds_first)} / {_number(result.open_fds_peak)} "
            f"({result.settings.max_concurrency})",
        ],
        ["warning / error log lines", f"{result.warnings_logged} / {result.errors_logged}"],
    ]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _short(text: str | None, limit: int = 60) -> str:
    text = (text or "").replace("|", "/")
    return text if len(text) <= limit else text[: limit - 3] + "..."
