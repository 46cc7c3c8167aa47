"""The spool: a chunk's output written by a worker, copied into batches by the kernel."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from geoingest import spool, workers
from geoingest.spool import Span, SpoolFile
from geoingest.workers import Ingested, Job

POINT = b'{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[%d,1]}}'


def _spooled(tmp_path: Path, name: str, bodies: list[bytes], sep: bytes) -> list[spool.Piece]:
    path = str(tmp_path / f"{name}{spool.SUFFIX}")
    offsets = spool.write_chunk(path, bodies, sep)
    owner = SpoolFile(path)
    return [Span(owner, offset, len(body)) for offset, body in zip(offsets, bodies, strict=True)]


def _joined(tmp_path: Path, pieces: list[spool.Piece], sep: bytes) -> bytes:
    target = tmp_path / "joined"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        written = spool.write_joined(fd, pieces, sep)
    finally:
        os.close(fd)
    data = target.read_bytes()
    assert written == len(data)
    return data


@pytest.mark.parametrize("sep", [b",\n", b""])
def test_spooled_and_inline_pieces_join_like_bytes(tmp_path: Path, sep: bytes) -> None:
    rng = random.Random(7)
    bodies = [POINT % i * rng.randint(1, 3) for i in range(40)]
    first = _spooled(tmp_path, "a", bodies[:15], sep)
    second = _spooled(tmp_path, "b", bodies[15:30], sep)
    inline: list[spool.Piece] = list(bodies[30:])
    # Interleaved, with gaps inside a spool file (a file of the chunk left out).
    pieces = first[:5] + inline[:3] + first[6:] + second[:7] + second[8:] + inline[3:]
    chosen = bodies[:5] + bodies[30:33] + bodies[6:15] + bodies[15:22] + bodies[23:30] + bodies[33:]
    assert _joined(tmp_path, pieces, sep) == sep.join(chosen)


def test_pieces_back_to_back_are_copied_in_one_run(tmp_path: Path) -> None:
    bodies = [POINT % i for i in range(10)]
    pieces = _spooled(tmp_path, "a", bodies, b",\n")
    merged = list(spool.runs(pieces[:4] + pieces[5:], b",\n"))
    assert len(merged) == 2
    assert _joined(tmp_path, merged, b",\n") == b",\n".join(bodies[:4] + bodies[5:])


def test_a_spool_file_can_go_when_the_last_batch_lets_go(tmp_path: Path) -> None:
    path = tmp_path / f"c{spool.SUFFIX}"
    owner = SpoolFile(str(path))
    owner.hold()
    owner.hold()
    assert not owner.release()  # the routing is done
    assert not owner.release()
    assert owner.release()


def test_clear_removes_what_an_earlier_run_left(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    folder.mkdir()
    (folder / f"1-1{spool.SUFFIX}").write_bytes(b"old")
    (folder / "keep.txt").write_bytes(b"not ours")
    assert spool.clear(folder) == 1
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]


def _jobs(tmp_path: Path, count: int) -> list[Job]:
    jobs = []
    for i in range(count):
        path = tmp_path / f"{i}.geojson"
        path.write_bytes(POINT % i)
        st = path.stat()
        jobs.append(Job(str(path), st.st_size, st.st_mtime_ns, 6, 1 << 20, "geojson"))
    return jobs


def test_a_worker_spools_the_output_of_a_chunk(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, 3)
    (tmp_path / "1.geojson").write_bytes(b"{")  # broken now: no output for it
    jobs[1] = Job(jobs[1].path, 1, Path(jobs[1].path).stat().st_mtime_ns, 6, 1 << 20, "geojson")
    path = tmp_path / f"chunk{spool.SUFFIX}"
    results = workers.process_files(jobs, str(path))
    ingested = [r for r in results if isinstance(r, Ingested)]
    assert len(ingested) == 2
    assert all(r.body == b"" and r.spooled is not None for r in ingested)
    owner = SpoolFile(str(path))
    pieces = [Span(owner, *r.spooled) for r in ingested if r.spooled is not None]
    alone = [workers.process_file(job) for job in (jobs[0], jobs[2])]
    assert _joined(tmp_path, pieces, b",\n") == b",\n".join(
        r.body for r in alone if isinstance(r, Ingested)
    )


def test_a_worker_sends_the_output_back_when_the_spool_cannot_be_written(
    tmp_path: Path,
) -> None:
    jobs = _jobs(tmp_path, 2)
    results = workers.process_files(jobs, str(tmp_path / "missing-folder" / "x.spool"))
    assert all(isinstance(r, Ingested) and r.body and r.spooled is None for r in results)


def test_a_batch_of_many_chunks_keeps_one_spool_file_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pieces: list[spool.Piece] = []
    for chunk in range(300):
        pieces += _spooled(tmp_path, f"c{chunk}", [POINT % chunk], b",\n")
    open_now: set[int] = set()
    most = 0
    real_open, real_close = os.open, os.close

    def counting_open(path: str, flags: int, *args: int) -> int:
        nonlocal most
        fd = real_open(path, flags, *args)
        if str(path).endswith(spool.SUFFIX):
            open_now.add(fd)
            most = max(most, len(open_now))
        return fd

    def counting_close(fd: int) -> None:
        open_now.discard(fd)
        real_close(fd)

    monkeypatch.setattr(os, "open", counting_open)
    monkeypatch.setattr(os, "close", counting_close)
    data = _joined(tmp_path, pieces, b",\n")
    assert (most, open_now) == (1, set())
    assert data == b",\n".join(POINT % i for i in range(300))
