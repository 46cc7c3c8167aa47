"""The worker pool: real worker processes fed through pipes the event loop reads."""

from __future__ import annotations

import asyncio
import os
import signal
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import orjson
import pytest

from geoingest.pool import Pool
from geoingest.workers import FileRef, Ingested, Options, Rejected

OPTIONS = Options(precision=6, max_file_bytes=1 << 20, output_format="geojson")


def _files(folder: Path, count: int, points: int = 1) -> list[FileRef]:
    refs = []
    for i in range(count):
        path = folder / f"{i}.geojson"
        features = [
            {
                "type": "Feature",
                "properties": {"i": i},
                "geometry": {"type": "Point", "coordinates": [j, 1]},
            }
            for j in range(points)
        ]
        path.write_bytes(orjson.dumps({"type": "FeatureCollection", "features": features}))
        st = path.stat()
        refs.append((str(path), st.st_size, st.st_mtime_ns))
    return refs


def test_chunks_come_back_whole_and_in_order(tmp_path: Path) -> None:
    files = _files(tmp_path, 40)
    (tmp_path / "39.geojson").write_bytes(b"{")  # changed since it settled: not judged
    broken = tmp_path / "broken.geojson"
    broken.write_bytes(b"{")
    files.append((str(broken), 1, broken.stat().st_mtime_ns))

    async def scenario() -> list[list[object]]:
        pool = Pool(2)
        try:
            chunks = [files[i : i + 7] for i in range(0, len(files), 7)]
            return list(await asyncio.gather(*(pool.submit(c, OPTIONS) for c in chunks)))
        finally:
            pool.close()

    results = [result for chunk in asyncio.run(scenario()) for result in chunk]
    assert len(results) == len(files)
    assert all(isinstance(r, Ingested) and r.features == 1 for r in results[:39])
    assert isinstance(results[-1], Rejected)


def test_a_dead_worker_fails_its_chunk_and_is_replaced(tmp_path: Path) -> None:
    files = _files(tmp_path, 300, points=200)  # long enough to be caught working

    async def scenario() -> tuple[BaseException | None, int, list[int], list[int]]:
        pool = Pool(1)
        try:
            before = [w.process.pid for w in pool._workers if w.process.pid is not None]
            doomed = pool.submit(files, OPTIONS)
            await asyncio.sleep(0.05)
            os.kill(before[0], signal.SIGKILL)
            try:
                await doomed
                error: BaseException | None = None
            except BrokenProcessPool as exc:
                error = exc
            after = [w.process.pid for w in pool._workers if w.process.pid is not None]
            again = await pool.submit(files[:3], OPTIONS)
            return error, len(again), before, after
        finally:
            pool.close()

    error, answered, before, after = asyncio.run(scenario())
    assert isinstance(error, BrokenProcessPool)
    assert answered == 3
    assert len(after) == 1 and after != before


def test_a_closed_pool_refuses_work(tmp_path: Path) -> None:
    async def scenario() -> None:
        pool = Pool(1)
        pool.close()
        pool.submit(_files(tmp_path, 1), OPTIONS)

    with pytest.raises(BrokenProcessPool):
        asyncio.run(scenario())
