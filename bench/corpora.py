"""The benchmark corpus: made once by the shared generator, reused while it matches.

The generator always writes the same bytes for the same arguments, so a corpus
is kept beside a small stamp file that records the arguments, a digest of the
generator and the summary line it printed. A later run with the same arguments
reuses the folder; any difference makes a fresh one.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from progress import note

STAMP_SUFFIX = ".stamp.json"
PATTERN = "*.geojson"


class CorpusError(RuntimeError):
    """The corpus could not be made or its folder cannot be used."""


@dataclass(frozen=True, slots=True)
class Corpus:
    """A generated corpus and what its generator said about it."""

    path: Path
    files: int
    nbytes: int
    features: int
    broken: int
    summary: str

    def as_dict(self) -> dict[str, object]:
        """Return the corpus's figures, with the path as text."""
        return {**asdict(self), "path": str(self.path)}


def parse_summary(line: str) -> dict[str, int]:
    """Read the generator's ``key=value`` summary line.

    >>> parse_summary("files=2 bytes=900 features=40 broken=0")["features"]
    40
    """
    fields = dict(part.split("=", 1) for part in line.split())
    try:
        return {key: int(fields[key]) for key in ("files", "bytes", "features", "broken")}
    except (KeyError, ValueError) as exc:
        raise CorpusError(f"unexpected generator summary line: {line!r}") from exc


def stamp_path(path: Path) -> Path:
    """Return where the stamp of the corpus in ``path`` is kept."""
    return path.with_name(path.name + STAMP_SUFFIX)


def generator_digest(generator: Path) -> str:
    """Return the sha256 of the generator script, so an edited generator makes a new corpus."""
    return hashlib.sha256(generator.read_bytes()).hexdigest()


def ensure_corpus(path: Path, generator: Path, arguments: list[str], timeout_s: float) -> Corpus:
    """Return the corpus in ``path``, generating it unless a matching one is there.

    Args:
        path: The corpus folder.
        generator: The generator script.
        arguments: Options passed to the generator after the folder.
        timeout_s: How long generation may take.

    Raises:
        CorpusError: The folder holds something else, or generation failed.
    """
    wanted: dict[str, object] = {
        "arguments": arguments,
        "generator_sha256": generator_digest(generator),
    }
    summary = _matching_summary(path, wanted)
    if summary is None:
        _clear_own_folder(path)
        partial = path.with_name(path.name + ".partial")
        note(f"generating a corpus in {path} ({' '.join(arguments)})")
        summary = _generate(partial, generator, arguments, timeout_s)
        # Stamp, then rename: an interruption in between leaves a stamp with no folder,
        # which the next run regenerates, never a folder it cannot vouch for.
        stamp_path(path).write_text(json.dumps({**wanted, "summary": summary}, indent=2) + "\n")
        partial.rename(path)
    else:
        note(f"reusing the corpus in {path}")
    return _corpus(path, summary)


def _corpus(path: Path, summary: str) -> Corpus:
    figures = parse_summary(summary)
    return Corpus(
        path=path,
        files=figures["files"],
        nbytes=figures["bytes"],
        features=figures["features"],
        broken=figures["broken"],
        summary=summary,
    )


def _matching_summary(path: Path, wanted: dict[str, object]) -> str | None:
    """Return the stamped summary when ``path`` holds a corpus made as ``wanted``."""
    stamp = stamp_path(path)
    if not stamp.is_file() or not path.is_dir():
        return None
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return None
    if {key: recorded.get(key) for key in wanted} != wanted:
        return None
    summary = recorded.get("summary")
    if not isinstance(summary, str):
        return None
    # A folder that lost or gained files since it was stamped is not the stamped corpus.
    if count_files(path) != parse_summary(summary)["files"]:
        return None
    return summary


def _generate(partial: Path, generator: Path, arguments: list[str], timeout_s: float) -> str:
    """Run the generator into a fresh folder and return its summary line."""
    shutil.rmtree(partial, ignore_errors=True)
    command = [sys.executable, str(generator), str(partial), *arguments]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise CorpusError(f"the generator did not finish within {timeout_s:.0f} s") from exc
    if done.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise CorpusError(f"the generator failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def _clear_own_folder(path: Path) -> None:
    """Remove a corpus folder this tool made earlier; refuse to touch anything else."""
    if not path.exists():
        return
    if not stamp_path(path).exists() and any(path.iterdir()):
        raise CorpusError(f"{path} exists, is not empty and holds no corpus stamp; choose another")
    shutil.rmtree(path)
    stamp_path(path).unlink(missing_ok=True)


def count_files(path: Path) -> int:
    """Return how many corpus files lie under ``path``."""
    return sum(1 for _ in path.rglob(PATTERN))


def link_tree(source: Path, target: Path) -> None:
    """Mirror the corpus files of ``source`` into ``target`` as hard links.

    Each tool ingests its own mirror, so a tool that moves files away (geoingest
    quarantines broken ones) leaves the corpus whole for the next tool and the
    next run, while every tool still reads the same cached inodes. Across
    filesystems, where links cannot be made, the files are copied instead.
    """
    for file in source.rglob(PATTERN):
        destination = target / file.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(file, destination)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            shutil.copyfile(file, destination)


def warm_page_cache(path: Path) -> tuple[int, int]:
    """Read every corpus file once so that every tool starts from a warm page cache.

    Returns:
        The number of files and bytes read.
    """
    files = nbytes = 0
    for file in path.rglob(PATTERN):
        fd = os.open(file, os.O_RDONLY)
        try:
            while chunk := os.read(fd, 1 << 20):
                nbytes += len(chunk)
        finally:
            os.close(fd)
        files += 1
    return files, nbytes
