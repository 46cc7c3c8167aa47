"""The limit on files in flight, fixed or adaptive."""

from __future__ import annotations

import asyncio

from geoingest.concurrency import AdaptiveLimit, Limiter, Window, fd_ceiling


def test_a_raised_limit_lets_waiters_in() -> None:
    async def scenario() -> list[int]:
        limiter = Limiter(1)
        await limiter.acquire()
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0.01)
        seen = [limiter.in_flight]
        limiter.limit = 2
        await asyncio.wait_for(waiter, 1)
        seen.append(limiter.in_flight)
        return seen

    assert asyncio.run(scenario()) == [1, 2]


def test_a_lowered_limit_holds_new_files_back_until_enough_finish() -> None:
    async def scenario() -> bool:
        limiter = Limiter(3)
        for _ in range(3):
            await limiter.acquire()
        limiter.limit = 1
        limiter.release()
        limiter.release()
        await asyncio.sleep(0.01)
        return limiter.locked()

    assert asyncio.run(scenario()) is True


def _control(in_flight: int) -> AdaptiveLimit:
    limiter = Limiter(16)
    limiter.in_flight = in_flight
    return AdaptiveLimit(limiter, ceiling=40, floor=4)


def test_doubles_while_more_in_flight_brings_more_throughput() -> None:
    assert _control(16).next_limit(16, Window(100, 1.0), Window(130, 1.4)) == 32


def test_shrinks_when_latency_climbs_without_gain() -> None:
    assert _control(16).next_limit(16, Window(100, 1.0), Window(99, 2.0)) == 12


def test_grows_by_a_step_once_it_has_had_to_shrink() -> None:
    control = _control(16)
    assert control.next_limit(16, Window(100, 1.0), Window(99, 2.0)) == 12
    assert control.next_limit(12, Window(99, 2.0), Window(130, 2.1)) == 16


def test_stays_within_floor_and_ceiling() -> None:
    control = _control(40)
    assert control.next_limit(40, Window(100, 1.0), Window(200, 2.0)) == 40
    assert control.next_limit(5, Window(100, 1.0), Window(50, 5.0)) == 4


def test_an_unused_limit_is_left_alone() -> None:
    assert _control(3).next_limit(16, Window(100, 1.0), Window(100, 1.0)) == 16


def test_ceiling_leaves_room_below_the_descriptor_limit() -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert 4 <= fd_ceiling() <= min(256, soft)


def test_a_cancelled_wait_neither_takes_nor_loses_a_place() -> None:
    async def scenario() -> tuple[int, int]:
        limiter = Limiter(1)
        await limiter.acquire()
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        limiter.release()  # the place may be handed to the waiter as it is cancelled
        await asyncio.gather(waiter, return_exceptions=True)
        after_cancel = limiter.in_flight
        await asyncio.wait_for(limiter.acquire(), timeout=1)
        return after_cancel, limiter.in_flight

    assert asyncio.run(scenario()) == (0, 1)
