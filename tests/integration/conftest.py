"""Start the real daemon as a subprocess and read what it writes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import corpus
from daemon_process import Daemon


@pytest.fixture
def folders(tmp_path: Path) -> corpus.Folders:
    """An input, output, and done folder for one test."""
    made = corpus.Folders(tmp_path / "drop", tmp_path / "out", tmp_path / "done")
    made.drop.mkdir()
    return made


@pytest.fixture
def start_daemon(folders: corpus.Folders) -> Iterator[Callable[..., Daemon]]:
    """Start ``geoingest run`` (or another command) with fast test settings."""
    started: list[Daemon] = []

    def start(*extra: str, command: str = "run", env: dict[str, str] | None = None) -> Daemon:
        args = [
            command,
            "--input",
            str(folders.drop),
            "--output",
            str(folders.out),
            "--metrics-address",
            "127.0.0.1:0",
            "--settle-s",
            "0.2",
            "--batch-max-age-s",
            "0.3",
            "--workers",
            "2",
            "--log-format",
            "json",
            "--rescan-interval-s",
            "2",
            *extra,
        ]
        daemon = Daemon(args, env)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.close()
