"""Discovery against real folders, real inotify events and real renames."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from watchfiles._rust_notify import RustNotify

from geoingest import discovery as discovery_module
from geoingest.config import InputRoot
from geoingest.discovery import Candidate, Discovery
from geoingest.metrics import Metrics

SETTLE_S = 0.2
# Long enough for the watcher's batch, a settle period and a hand-on.
QUIET_S = 0.6


class Harness:
    """One input folder, a discovery on it, and a consumer that keeps what it takes."""

    def __init__(self, base: Path, *, queue_size: int = 0, consume: bool = True, **options: Any):
        self.root = base / "in"
        self.root.mkdir(exist_ok=True)
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry, sources=["in"])
        self.queue: asyncio.Queue[Candidate] = asyncio.Queue(queue_size)
        options.setdefault("settle_s", SETTLE_S)
        roots = [InputRoot("in", self.root)]
        self.discovery = Discovery(roots, self.queue, self.metrics, **options)
        self.taken: list[Candidate] = []
        self.remember = True
        self._consume = consume
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Harness:
        self._tasks.append(asyncio.create_task(self.discovery.run()))
        if self._consume:
            self.start_consuming()
        await asyncio.wait_for(self.discovery.watching.wait(), 2)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.discovery.stop()
        started = time.monotonic()
        await asyncio.wait_for(self._tasks[0], 2)
        assert time.monotonic() - started < 0.5
        for task in self._tasks[1:]:
            task.cancel()

    def start_consuming(self) -> None:
        self._tasks.append(asyncio.create_task(self._take_all()))

    async def _take_all(self) -> None:
        while True:
            candidate = await self.queue.get()
            self.taken.append(candidate)
            self.discovery.release(candidate, remember=self.remember)

    async def settled(self, timeout_s: float = 4.0) -> list[str]:
        """Wait until nothing new arrives for a while; return what was taken, by rel path."""
        await asyncio.wait_for(self.discovery.backfill_done.wait(), timeout_s)
        deadline = time.monotonic() + timeout_s
        seen, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            if len(self.taken) != seen or not self.discovery.idle():
                seen, quiet_since = len(self.taken), time.monotonic()
            elif time.monotonic() - quiet_since >= QUIET_S:
                break
            await asyncio.sleep(0.02)
        return sorted(str(c.rel) for c in self.taken)

    def counts(self) -> Counter[str]:
        return Counter(str(c.rel) for c in self.taken)

    def sample(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(f"geoingest_{name}", labels)
        return 0.0 if value is None else value


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def write(path: Path, text: str = '{"type": "FeatureCollection", "features": []}') -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def age(path: Path, seconds: float = 60) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


async def until(check: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_backfill_hands_on_a_nested_tree_once(tmp_path: Path) -> None:
    names = ["top.geojson", "a/one.geojson", "a/b/two.geojson", "a/b/c/three.geojson"]
    names.append("folder.geojson/inside.geojson")  # a folder with a file-like name is walked

    async def scenario() -> None:
        h = Harness(tmp_path)
        for name in names:
            age(write(h.root / name))
        async with h:
            assert await h.settled() == sorted(names)
            assert {c.via for c in h.taken} == {"backfill"}
            assert h.sample("files_discovered_total", source="in", via="backfill") == 5
            assert h.sample("watch_rescans_total", reason="periodic") == 0

    run(scenario)


def test_a_file_written_in_chunks_is_handed_on_once_with_its_final_size(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Harness(tmp_path) as h:
            await h.settled()
            path = h.root / "slow.geojson"
            with path.open("w") as out:
                for _ in range(6):
                    out.write("x" * 1000)
                    out.flush()
                    await asyncio.sleep(SETTLE_S / 2)
            assert await h.settled() == ["slow.geojson"]
            assert h.taken[0].size == 6000
            assert h.taken[0].via == "watch"

    run(scenario)


def test_a_file_renamed_into_place_is_handed_on_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Harness(tmp_path) as h:
            await h.settled()
            part = write(h.root / "x.geojson.part")
            part.rename(h.root / "x.geojson")
            assert await h.settled() == ["x.geojson"]
            assert h.sample("skipped_files_total", reason="excluded") == 0

    run(scenario)


def test_a_folder_moved_in_with_files_inside_is_walked(tmp_path: Path) -> None:
    outside = tmp_path / "staging" / "batch"
    names = [f"batch/f{i}.geojson" for i in range(5)] + ["batch/deep/g.geojson"]
    for name in names:
        age(write(tmp_path / "staging" / name))

    async def scenario() -> None:
        async with Harness(tmp_path) as h:
            await h.settled()
            outside.rename(h.root / "batch")
            assert await h.settled() == sorted(names)
            assert h.counts().most_common(1)[0][1] == 1
            assert h.sample("watch_rescans_total", reason="new_directory") == 1
            assert h.sample("watch_missed_files_total", reason="new_directory") == 0

    run(scenario)


def test_mkdir_p_with_many_files_created_at_once_is_handed_on_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Harness(tmp_path) as h:
            await h.settled()
            deep = h.root / "a" / "b" / "c"
            deep.mkdir(parents=True)
            names = []
            for folder in (deep, deep.parent, deep.parent.parent):
                for i in range(100):
                    write(folder / f"f{i}.geojson")
                    names.append(str((folder / f"f{i}.geojson").relative_to(h.root)))
            assert await h.settled() == sorted(names)
            assert set(h.counts().values()) == {1}

    run(scenario)


def test_a_full_queue_pauses_the_walk_until_files_are_taken(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, queue_size=2, consume=False)
        for i in range(20):
            age(write(h.root / f"d{i % 4}" / f"f{i}.geojson"))
        async with h:
            await asyncio.sleep(0.5)
            assert h.queue.qsize() == 2
            assert h.sample("files_discovered_total", source="in", via="backfill") == 2
            assert not h.discovery.backfill_done.is_set()

            h.start_consuming()
            assert len(await h.settled()) == 20
            assert set(h.counts().values()) == {1}

    run(scenario)


def test_symlinks_to_files_and_folders_are_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    age(write(outside / "secret.geojson"))
    age(write(outside / "sub" / "hidden.geojson"))

    async def scenario() -> None:
        h = Harness(tmp_path)
        (h.root / "link.geojson").symlink_to(outside / "secret.geojson")
        (h.root / "linkdir").symlink_to(outside / "sub")
        age(write(h.root / "real.geojson"))
        async with h:
            assert await h.settled() == ["real.geojson"]
            assert h.sample("skipped_files_total", reason="symlink") == 2

            # The watcher does not look behind the symlinked folder either.
            write(outside / "sub" / "new.geojson")
            (h.root / "late.geojson").symlink_to(outside / "secret.geojson")
            assert await h.settled() == ["real.geojson"]
            assert h.sample("skipped_files_total", reason="symlink") == 3
            assert h.sample("skipped_files_total", reason="outside-root") == 0

    run(scenario)


def test_a_symlink_to_the_whole_filesystem_or_a_loop_costs_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path)
        (h.root / "root").symlink_to("/")
        (h.root / "loop").symlink_to(h.root)
        age(write(h.root / "real.geojson"))
        started = time.monotonic()
        async with h:
            assert time.monotonic() - started < 2.0
            assert await h.settled() == ["real.geojson"]
            assert h.sample("skipped_files_total", reason="symlink") == 2

    run(scenario)


def test_a_folder_moved_in_with_a_symlink_inside_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    staged = tmp_path / "staging" / "batch"
    age(write(staged / "f.geojson"))
    (staged / "link").symlink_to(outside)

    async def scenario() -> None:
        async with Harness(tmp_path) as h:
            await h.settled()
            staged.rename(h.root / "batch")
            assert await h.settled() == ["batch/f.geojson"]
            write(outside / "behind-the-link.geojson")
            assert await h.settled() == ["batch/f.geojson"]
            assert h.sample("skipped_files_total", reason="outside-root") == 0

    run(scenario)


def test_a_folder_made_while_watching_is_watched_to_any_depth(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Harness(tmp_path) as h:
            await h.settled()
            (h.root / "a" / "b").mkdir(parents=True)
            await asyncio.sleep(QUIET_S)
            await h.settled()
            write(h.root / "a" / "b" / "later.geojson")
            assert await h.settled() == ["a/b/later.geojson"]
            assert h.taken[0].via == "watch"
            assert h.sample("watch_missed_files_total", reason="new_directory") == 0

    run(scenario)


def test_a_folder_named_like_an_input_file_is_walked_and_counted(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path)
        age(write(h.root / "early.geojson" / "inside.geojson"))
        async with h:
            assert await h.settled() == ["early.geojson/inside.geojson"]
            write(h.root / "late.geojson" / "inside.geojson")
            assert await h.settled() == [
                "early.geojson/inside.geojson",
                "late.geojson/inside.geojson",
            ]
            assert h.sample("skipped_files_total", reason="not-regular") == 2

    run(scenario)


def test_a_fifo_is_skipped_without_blocking(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path)
        os.mkfifo(h.root / "pipe.geojson")
        age(write(h.root / "real.geojson"))
        async with h:
            assert await h.settled() == ["real.geojson"]
            os.mkfifo(h.root / "late.geojson")
            write(h.root / "after.geojson")
            assert await h.settled() == ["after.geojson", "real.geojson"]
            assert h.sample("skipped_files_total", reason="not-regular") == 2

    run(scenario)


def test_hidden_temporary_partial_and_excluded_files_are_skipped(tmp_path: Path) -> None:
    skipped = [".hidden.geojson", "a.tmp", "b.part", "old/c.bak", "archive/d.geojson"]
    ignored = [".staging/e.geojson"]

    async def scenario() -> None:
        h = Harness(tmp_path, patterns=("*",), excludes=("*.bak", "archive/*"))
        for name in [*skipped, *ignored, "keep.geojson"]:
            age(write(h.root / name))
        async with h:
            assert await h.settled() == ["keep.geojson"]
            assert h.sample("skipped_files_total", reason="excluded") == len(skipped)

            for name in [*skipped, *ignored]:
                write(h.root / name, "changed")
            write(h.root / "old" / "new.json")
            assert await h.settled() == ["keep.geojson", "old/new.json"]

    run(scenario)


def test_a_remembered_file_is_not_ingested_again_until_it_changes(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path)
        path = write(h.root / "kept.geojson")
        age(path)
        async with h:
            assert await h.settled() == ["kept.geojson"]
            assert await h.discovery.rescan() == 0
            assert await h.settled() == ["kept.geojson"]

            with path.open("a") as out:
                out.write(" ")
            assert await h.settled() == ["kept.geojson", "kept.geojson"]
            assert h.taken[-1].size == h.taken[0].size + 1

    run(scenario)


def test_a_file_changed_while_claimed_is_looked_at_again_on_release(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, consume=False)
        path = write(h.root / "busy.geojson")
        age(path)
        async with h:
            first = await asyncio.wait_for(h.queue.get(), 2)
            with path.open("a") as out:
                out.write(" ")
            await asyncio.sleep(QUIET_S)  # the event arrives while the file is claimed
            h.discovery.release(first, remember=True)
            second = await asyncio.wait_for(h.queue.get(), 2)
            assert (second.path, second.size) == (first.path, first.size + 1)
            assert second.via == "backfill"

    run(scenario)


def test_a_file_released_without_remembering_is_looked_at_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, consume=False)
        age(write(h.root / "again.geojson"))
        moved = write(h.root / "moved.geojson")
        age(moved)
        async with h:
            taken = [await asyncio.wait_for(h.queue.get(), 2) for _ in range(2)]
            moved.rename(tmp_path / "moved.geojson")
            for candidate in taken:
                h.discovery.release(candidate, remember=False)
            again = await asyncio.wait_for(h.queue.get(), 2)
            assert str(again.rel) == "again.geojson"
            await asyncio.sleep(QUIET_S)
            assert h.queue.empty()

    run(scenario)


def test_files_created_while_the_walk_runs_are_handed_on_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, queue_size=1, consume=False)
        for d in range(10):
            for i in range(5):
                age(write(h.root / f"d{d}" / f"f{i}.geojson"))
        async with h:
            # Armed, and the walk is held up by the one-slot queue: these files
            # are met by both the walk and their events.
            for d in range(10):
                write(h.root / f"d{d}" / "early.geojson")
            for _ in range(30):
                h.discovery.release(await h.queue.get(), remember=True)
            # The walk has passed some folders by now: only events can find these.
            for d in range(10):
                write(h.root / f"d{d}" / "late.geojson")
            h.start_consuming()
            await h.settled()
            assert len(h.taken) + 30 == 70
            assert set(h.counts().values()) == {1}
            assert h.sample("files_discovered_total", source="in", via="backfill") >= 50
            assert h.sample("watch_missed_files_total", reason="new_directory") == 0

    run(scenario)


class FlakyNotify:
    """Wraps the real watcher; can drop its batches or fail, as inotify sometimes does."""

    drop = False
    fail = False

    def __init__(self, *args: Any) -> None:
        self._inner = RealNotify(*args)

    def watch(self, *args: Any) -> object:
        result = self._inner.watch(*args)
        if FlakyNotify.fail:
            FlakyNotify.fail = False
            raise RuntimeError("watcher broke")
        return "timeout" if FlakyNotify.drop and isinstance(result, set) else result

    def close(self) -> None:
        self._inner.close()


RealNotify = RustNotify


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> type[FlakyNotify]:
    monkeypatch.setattr(discovery_module, "RustNotify", FlakyNotify)
    monkeypatch.setattr(discovery_module, "_CONFIRM_S", 0.2)
    monkeypatch.setattr(discovery_module, "_REARM_DELAY_S", 0.1)
    monkeypatch.setattr(FlakyNotify, "drop", False)
    monkeypatch.setattr(FlakyNotify, "fail", False)
    return FlakyNotify


def test_a_rescan_finds_and_counts_a_file_the_events_missed(
    tmp_path: Path, flaky: type[FlakyNotify]
) -> None:
    async def scenario() -> None:
        async with Harness(tmp_path) as h:
            await h.settled()
            flaky.drop = True
            write(h.root / "lost.geojson")
            await asyncio.sleep(QUIET_S)
            flaky.drop = False
            assert await h.settled() == []

            assert await h.discovery.rescan() == 1
            assert await h.settled() == ["lost.geojson"]
            assert h.taken[0].via == "rescan"
            await until(lambda: h.sample("watch_missed_files_total", reason="periodic") == 1)
            assert h.sample("watch_rescans_total", reason="periodic") == 1

    run(scenario)


def test_a_file_seen_by_its_event_is_not_counted_missed(
    tmp_path: Path, flaky: type[FlakyNotify]
) -> None:
    async def scenario() -> None:
        async with Harness(tmp_path, settle_s=0.5) as h:
            await h.settled()
            write(h.root / "young.geojson")
            assert await h.discovery.rescan() == 1  # the walk beats the event
            assert await h.settled() == ["young.geojson"]
            await asyncio.sleep(1.1)
            assert h.sample("watch_missed_files_total", reason="periodic") == 0

    run(scenario)


def test_a_failed_watcher_is_rebuilt_and_everything_walked_again(
    tmp_path: Path, flaky: type[FlakyNotify]
) -> None:
    async def scenario() -> None:
        async with Harness(tmp_path) as h:
            await h.settled()
            flaky.drop, flaky.fail = True, True
            write(h.root / "during.geojson")
            await until(lambda: h.sample("watch_rescans_total", reason="watcher_restart") == 1)
            flaky.drop = False
            assert await h.settled() == ["during.geojson"]
            await until(lambda: h.sample("watch_missed_files_total", reason="watcher_restart") == 1)
            write(h.root / "after.geojson")
            assert await h.settled() == ["after.geojson", "during.geojson"]

    run(scenario)


def test_an_input_folder_deleted_and_created_again_is_watched_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Harness(tmp_path) as h:
            await h.settled()
            shutil.rmtree(h.root)
            h.root.mkdir()
            await until(lambda: h.sample("watch_rescans_total", reason="watcher_restart") == 1)
            write(h.root / "back.geojson")
            assert await h.settled() == ["back.geojson"]
            assert h.taken[0].via == "watch"

    run(scenario)


def test_stop_ends_run_promptly_with_a_hand_on_waiting(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, queue_size=1, consume=False)
        for i in range(3):
            age(write(h.root / f"f{i}.geojson"))
        async with h:
            await until(h.queue.full)
            await asyncio.sleep(0.1)
        h.queue.get_nowait()
        await asyncio.sleep(0.1)
        assert h.queue.empty()

    run(scenario)


def test_once_mode_becomes_idle_after_the_backfill(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, watch=False)
        age(write(h.root / "old.geojson"))
        write(h.root / "young.geojson")
        async with h:
            await asyncio.wait_for(h.discovery.wait_idle(), 2)
            assert sorted(str(c.rel) for c in h.taken) == ["old.geojson", "young.geojson"]

    run(scenario)


def test_backlog_gauges_count_settling_and_claimed_files(tmp_path: Path) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, consume=False, settle_s=5.0)
        old = write(h.root / "old.geojson")
        age(old, 100)
        async with h:
            write(h.root / "young.geojson")
            await until(lambda: h.sample("backlog_files", source="in") == 2)
            oldest = h.sample("backlog_oldest_file_timestamp_seconds", source="in")
            assert oldest == pytest.approx(old.stat().st_mtime)
            h.discovery.release(h.queue.get_nowait(), remember=True)
            await until(lambda: h.sample("backlog_files", source="in") == 1)

    run(scenario)


def test_new_input_folders_from_a_reload_are_backfilled(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Harness(tmp_path) as h:
            await h.settled()
            extra = tmp_path / "extra"
            age(write(extra / "x.geojson"))
            roots = [InputRoot("in", h.root), InputRoot("extra", extra)]
            h.discovery.update_roots(roots, ["*.geojson"], [])
            await until(lambda: len(h.taken) == 1)
            assert (h.taken[0].root.name, h.taken[0].via) == ("extra", "backfill")
            write(extra / "y.geojson")
            await until(lambda: len(h.taken) == 2)
            assert h.taken[1].via == "watch"

    run(scenario)
