"""The flush policy and the batcher."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from geoingest.batching import Batch, Batcher, FlushPolicy
from geoingest.config import InputRoot
from geoingest.discovery import Candidate
from geoingest.workers import Ingested

ROOT = InputRoot("drop", Path("/drop"))


def _file(name: str, features: int, body_bytes: int = 10) -> tuple[Candidate, Ingested]:
    candidate = Candidate(ROOT, ROOT.path / name, body_bytes, 0, "backfill")
    return candidate, Ingested("0" * 64, body_bytes, features, b"x" * body_bytes, ())


async def _run(
    policy: FlushPolicy, files: list[tuple[Candidate, Ingested]]
) -> list[tuple[int, str]]:
    flushed: list[tuple[int, str]] = []

    async def commit(batch: Batch, trigger: str) -> None:
        flushed.append((batch.features, trigger))

    batcher = Batcher(policy, commit)
    for candidate, result in files:
        await batcher.add(candidate, result)
    return flushed


def test_flushes_when_the_feature_limit_is_reached() -> None:
    policy = FlushPolicy(max_features=10, max_bytes=10**9, max_age_s=60)
    flushed = asyncio.run(_run(policy, [_file("a", 4), _file("b", 6), _file("c", 1)]))
    assert flushed == [(10, "features")]


def test_flushes_before_a_file_that_would_overflow() -> None:
    policy = FlushPolicy(max_features=10, max_bytes=10**9, max_age_s=60)
    flushed = asyncio.run(_run(policy, [_file("a", 7), _file("b", 7)]))
    assert flushed == [(7, "features")]


def test_a_single_file_over_the_limit_is_one_batch() -> None:
    policy = FlushPolicy(max_features=10, max_bytes=10**9, max_age_s=60)
    flushed = asyncio.run(_run(policy, [_file("a", 25)]))
    assert flushed == [(25, "features")]


def test_flushes_when_the_byte_limit_is_reached() -> None:
    policy = FlushPolicy(max_features=10**6, max_bytes=100, max_age_s=60)
    flushed = asyncio.run(_run(policy, [_file("a", 1, 60), _file("b", 1, 60)]))
    assert flushed == [(1, "bytes")]


def test_flushes_when_batch_age_passes() -> None:
    async def scenario() -> list[str]:
        triggers: list[str] = []

        async def commit(batch: Batch, trigger: str) -> None:
            triggers.append(trigger)

        batcher = Batcher(FlushPolicy(10**6, 10**9, max_age_s=0.2), commit)
        ticker = asyncio.create_task(batcher.flush_when_old(tick_s=0.02))
        await batcher.add(*_file("a", 1))
        await asyncio.sleep(0.1)
        assert triggers == []
        await asyncio.sleep(0.3)
        ticker.cancel()
        return triggers

    assert asyncio.run(scenario()) == ["age"]


def test_the_next_batch_fills_while_a_full_one_commits() -> None:
    async def scenario() -> tuple[list[int], list[int], int]:
        started: list[int] = []
        release = asyncio.Event()

        async def commit(batch: Batch, trigger: str) -> None:
            started.append(batch.features)
            await release.wait()

        batcher = Batcher(FlushPolicy(max_features=2, max_bytes=10**9, max_age_s=60), commit)
        await batcher.add(*_file("a", 2))  # full: starts committing
        await asyncio.sleep(0)
        await batcher.add(*_file("b", 1))  # goes into the next batch without waiting
        seen_while_committing = list(started)
        pending = batcher.pending_files
        release.set()
        await batcher.flush("shutdown")
        return seen_while_committing, started, pending

    while_committing, started, pending = asyncio.run(scenario())
    assert while_committing == [2]
    assert started == [2, 1]
    assert pending == 2


def test_batches_commit_one_at_a_time_and_in_order() -> None:
    async def scenario() -> list[str]:
        events: list[str] = []

        async def commit(batch: Batch, trigger: str) -> None:
            name = batch.files[0][0].path.name
            events.append(f"start {name}")
            await asyncio.sleep(0.01)
            events.append(f"end {name}")

        batcher = Batcher(FlushPolicy(max_features=1, max_bytes=10**9, max_age_s=60), commit)
        for name in ("a", "b", "c"):
            await batcher.add(*_file(name, 1))
        await batcher.flush("shutdown")
        return events

    assert asyncio.run(scenario()) == [
        "start a", "end a", "start b", "end b", "start c", "end c",
    ]  # fmt: skip


def test_adding_without_waiting_flushes_exactly_as_adding_does() -> None:
    rng = random.Random(3)
    policy = FlushPolicy(max_features=25, max_bytes=400, max_age_s=60)
    files = [_file(f"f{i}", rng.randint(0, 12), rng.randint(1, 90)) for i in range(300)]

    async def run_now_or_later() -> tuple[list[tuple[int, str]], int]:
        flushed: list[tuple[int, str]] = []

        async def commit(batch: Batch, trigger: str) -> None:
            flushed.append((batch.features, trigger))

        batcher, added_now = Batcher(policy, commit), 0
        for candidate, result in files:
            if batcher.add_now(candidate, result):
                added_now += 1
            else:
                await batcher.add(candidate, result)
        return flushed, added_now

    flushed, added_now = asyncio.run(run_now_or_later())
    assert flushed == asyncio.run(_run(policy, files))
    assert 0 < added_now < len(files)
