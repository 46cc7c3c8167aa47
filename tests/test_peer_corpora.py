"""The labelled GeoJSON files of three other projects, scored against geoingest.

The files and their scorer live in ``shared/peer-corpora`` beside the
repository, not in it; without that folder these tests are skipped.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).parents[1]
PEER_CORPORA = REPOSITORY / ".." / "shared" / "peer-corpora"
SCORER = PEER_CORPORA / "score.py"

pytestmark = pytest.mark.skipif(
    not SCORER.is_file(), reason=f"no peer corpora at {PEER_CORPORA} (shared/ beside the repo)"
)


def labelled_files() -> int:
    """Return how many files the corpus manifest labels."""
    with (PEER_CORPORA / "MANIFEST.tsv").open(encoding="utf-8") as manifest:
        return sum(1 for line in manifest if line.strip()) - 1


def score(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run the scorer with geoingest importable, and return what it did."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(REPOSITORY / "daemon"), environment.get("PYTHONPATH", "")]
    )
    return subprocess.run(
        [sys.executable, str(SCORER), *arguments, "--fail-on-disagree"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=110,
        check=False,
    )


def test_geoingest_validate_agrees_with_every_labelled_file() -> None:
    command = f"{shlex.quote(sys.executable)} -m geoingest validate {{path}}"
    result = score("--cmd", command, "--jobs", "4")
    total = labelled_files()
    assert result.stdout.splitlines()[-1] == f"score: {total}/{total} agreed", result.stdout
    assert result.returncode == 0


def test_check_bytes_agrees_with_every_labelled_file_when_warnings_are_allowed() -> None:
    result = score(
        "--func",
        "geoingest.geojson:check_bytes",
        "--input",
        "bytes",
        "--warn-regex",
        "warning=True",
    )
    total = labelled_files()
    assert result.stdout.splitlines()[-1] == f"score: {total}/{total} agreed", result.stdout
    assert result.returncode == 0
