"""Time three ways of reading every file of a corpus from asyncio: why geoingest has no aiofiles.

    python bench/read_speed.py CORPUS_DIR [--concurrency 64] [--repeat 3]

Each way opens, reads and hashes (sha256) every file under CORPUS_DIR, with the
page cache warm, and the best of ``--repeat`` runs is reported in files/s:

- aiofiles: one coroutine per file under a semaphore, as the design
  document's script reads (three thread hops per file: open, read, close);
- to_thread: one ``asyncio.to_thread`` call per file under the same semaphore;
- workers: what geoingest does, one call into a pool of worker processes per
  chunk of 16 files, each worker reading its files with ``os.read``.

The file list is built first and not timed. aiofiles comes from the ``bench``
extra: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import aiofiles

CHUNK_FILES = 16


def read_and_hash(path: str) -> str:
    """Read a whole file with ``os.read`` and return its sha256."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        digest = hashlib.sha256()
        while block := os.read(fd, 1 << 20):
            digest.update(block)
        return digest.hexdigest()
    finally:
        os.close(fd)


def read_chunk(paths: list[str]) -> list[str]:
    """Read and hash a chunk of files, in a worker process."""
    return [read_and_hash(path) for path in paths]


async def with_aiofiles(paths: list[str], concurrency: int) -> int:
    """Read every file through aiofiles, at most ``concurrency`` at once."""
    gate = asyncio.Semaphore(concurrency)

    async def one(path: str) -> str:
        async with gate, aiofiles.open(path, "rb") as f:
            return hashlib.sha256(await f.read()).hexdigest()

    return len(await asyncio.gather(*(one(path) for path in paths)))


async def with_to_thread(paths: list[str], concurrency: int) -> int:
    """Read every file with one ``asyncio.to_thread`` call each."""
    gate = asyncio.Semaphore(concurrency)

    async def one(path: str) -> str:
        async with gate:
            return await asyncio.to_thread(read_and_hash, path)

    return len(await asyncio.gather(*(one(path) for path in paths)))


def with_workers(workers: int) -> Callable[[list[str], int], Awaitable[int]]:
    """Return a reader that hands chunks of files to a pool of ``workers`` processes."""

    async def read_all(paths: list[str], concurrency: int) -> int:
        loop = asyncio.get_running_loop()
        chunks = [paths[i : i + CHUNK_FILES] for i in range(0, len(paths), CHUNK_FILES)]
        gate = asyncio.Semaphore(max(1, concurrency // CHUNK_FILES))
        with ProcessPoolExecutor(workers) as pool:

            async def one(chunk: list[str]) -> int:
                async with gate:
                    return len(await loop.run_in_executor(pool, read_chunk, chunk))

            return sum(await asyncio.gather(*(one(chunk) for chunk in chunks)))

    return read_all


def main() -> None:
    """Parse the arguments, time each way and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    paths = sorted(str(p) for p in args.corpus.rglob("*") if p.is_file() and not p.is_symlink())
    read_chunk(paths)  # warm the page cache

    ways = {
        "aiofiles": with_aiofiles,
        "to_thread": with_to_thread,
        "workers": with_workers(args.workers),
    }
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, way in ways.items():
            started = time.perf_counter()
            assert asyncio.run(way(paths, args.concurrency)) == len(paths)
            elapsed = time.perf_counter() - started
            best[name] = min(best.get(name, elapsed), elapsed)

    print(f"{len(paths):,} files, best of {args.repeat}, page cache warm\n")
    print("| way | s | files/s | vs aiofiles |\n| --- | --: | --: | --: |")
    for name, elapsed in best.items():
        ratio = best["aiofiles"] / elapsed
        print(f"| {name} | {elapsed:.2f} | {len(paths) / elapsed:,.0f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
