"""The figures of one benchmark run, the verdict on them, and what the machine was.

A run holds the corpus it used, every one-shot run of every tool (several
when ``--repeat`` asks), and the watch-mode result. Tables show each tool's
median run; the JSON document keeps them all.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from corpora import Corpus
from oneshot import ToolRun
from report import oneshot_markdown, output_checks, ratios, throughput, watch_markdown
from watchmode import WatchResult

REPO = Path(__file__).resolve().parent.parent
EXIT_OK, EXIT_CHECK_FAILED, EXIT_SETUP_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 130


def median_run(runs: list[ToolRun]) -> ToolRun:
    """Return the run with the median wall time, or the first failure if any run failed."""
    failed = [run for run in runs if not run.ok]
    if failed:
        return failed[0]
    return sorted(runs, key=lambda run: run.wall_s)[(len(runs) - 1) // 2]


def environment() -> dict[str, object]:
    """Return what a reader needs to compare figures between machines."""
    try:
        revision = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        revision = ""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": len(os.sched_getaffinity(0)),
        "revision": revision,
        "load_average": " ".join(f"{load:.2f}" for load in os.getloadavg()),
    }


@dataclass(slots=True)
class Measurements:
    """Everything one benchmark run measured."""

    environment: dict[str, object]
    corpus: Corpus | None = None
    runs: list[list[ToolRun]] = field(default_factory=list)
    watch: WatchResult | None = None

    @property
    def medians(self) -> list[ToolRun]:
        """Each tool's median run."""
        return [median_run(runs) for runs in self.runs]

    def exit_code(self) -> int:
        """Return whether geoingest ran and passed every check, as an exit code."""
        corpus, watch = self.corpus, self.watch
        ours = [run for runs in self.runs for run in runs if run.name == "geoingest"]
        if corpus is not None and any(run.features_out != corpus.features for run in ours):
            return EXIT_CHECK_FAILED
        if any(not run.ok for run in ours) or (watch is not None and not watch.passed):
            return EXIT_CHECK_FAILED
        return EXIT_OK

    def troubled(self) -> bool:
        """Whether any tool or step failed, so that its logs are worth keeping."""
        failed = any(run.error for runs in self.runs for run in runs)
        return failed or bool(self.watch is not None and self.watch.error)

    def document(self, args: argparse.Namespace) -> dict[str, object]:
        """Return every figure, and the arguments that produced them, ready for JSON."""
        arguments = {key: str(v) if isinstance(v, Path) else v for key, v in vars(args).items()}
        figures: dict[str, object] = {"arguments": arguments, "environment": self.environment}
        if self.corpus is not None:
            corpus, medians = self.corpus, self.medians
            figures["corpus"] = corpus.as_dict()
            figures["oneshot"] = [{**run.as_dict(), **throughput(run, corpus)} for run in medians]
            figures["oneshot_all_runs"] = [run.as_dict() for runs in self.runs for run in runs]
            figures["ratios"] = ratios(medians)
            figures["checks"] = output_checks(medians, corpus)
        figures["watch"] = self.watch.as_dict() if self.watch else None
        return figures

    def markdown(self) -> str:
        """Return the tables for stdout."""
        sections = [oneshot_markdown(self.medians, self.corpus)] if self.corpus else []
        sections += [watch_markdown(self.watch)] if self.watch is not None else []
        load = self.environment["load_average"]
        sections.append(
            f"Load average when the run began: {load}; CPUs: {self.environment['cpus']}."
        )
        return "\n\n".join(sections)
