"""The completeness check, fed stats by hand."""

from __future__ import annotations

from geoingest.settle import Settler

S = 1_000_000_000  # nanoseconds per second


def test_a_file_older_than_the_quiet_period_is_ready_on_its_first_stat() -> None:
    settler = Settler[str](settle_s=1.0)
    assert settler.observe("a", "tag", size=5, mtime_ns=100 * S, now=101.0) == "tag"
    assert len(settler) == 0


def test_a_young_file_is_ready_once_unchanged_for_the_quiet_period() -> None:
    settler = Settler[str](settle_s=1.0)
    assert settler.observe("a", "tag", size=5, mtime_ns=100 * S, now=100.1) is None
    assert settler.due(now=100.9) == []
    assert settler.due(now=101.0) == ["a"]
    assert settler.observe("a", "other", size=5, mtime_ns=100 * S, now=101.0) == "tag"
    assert "a" not in settler


def test_each_change_restarts_the_quiet_period() -> None:
    settler = Settler[str](settle_s=1.0)
    settler.observe("a", "tag", size=5, mtime_ns=100 * S, now=100.0)
    assert settler.observe("a", "tag", size=9, mtime_ns=int(100.8 * S), now=101.0) is None
    assert settler.due(now=101.0) == []
    assert settler.due(now=101.8) == ["a"]
    assert settler.observe("a", "tag", size=9, mtime_ns=int(100.8 * S), now=101.8) == "tag"


def test_a_size_change_under_a_fixed_mtime_is_not_judged_by_the_mtime() -> None:
    settler = Settler[str](settle_s=1.0)
    settler.observe("a", "tag", size=5, mtime_ns=100 * S, now=100.5)
    # The mtime is old, but the file grew: only a full quiet period will do.
    assert settler.observe("a", "tag", size=9, mtime_ns=100 * S, now=102.0) is None
    assert settler.observe("a", "tag", size=9, mtime_ns=100 * S, now=102.9) is None
    assert settler.observe("a", "tag", size=9, mtime_ns=100 * S, now=103.0) == "tag"


def test_a_future_mtime_waits_a_quiet_period_from_the_first_stat() -> None:
    settler = Settler[str](settle_s=1.0)
    assert settler.observe("a", "tag", size=5, mtime_ns=500 * S, now=100.0) is None
    assert settler.due(now=100.99) == []
    assert settler.due(now=101.0) == ["a"]
    assert settler.observe("a", "tag", size=5, mtime_ns=500 * S, now=101.0) == "tag"


def test_an_unanswered_due_file_is_offered_again_after_the_quiet_period() -> None:
    settler = Settler[str](settle_s=1.0)
    settler.observe("a", "tag", size=5, mtime_ns=100 * S, now=100.0)
    assert settler.due(now=101.0) == ["a"]
    assert settler.due(now=101.5) == []
    assert settler.due(now=102.0) == ["a"]


def test_forgotten_files_are_not_due() -> None:
    settler = Settler[str](settle_s=1.0)
    settler.observe("a", "tag", size=5, mtime_ns=100 * S, now=100.0)
    assert settler.forget("a") == "tag"
    assert settler.forget("a") is None
    assert settler.due(now=200.0) == []


def test_items_and_tags_describe_the_settling_files() -> None:
    settler = Settler[str](settle_s=1.0)
    settler.observe("a", "first", size=5, mtime_ns=100 * S, now=100.0)
    settler.observe("b", "second", size=5, mtime_ns=99 * S, now=99.5)
    assert sorted(settler.items()) == [("a", "first", 100 * S), ("b", "second", 99 * S)]
    assert settler.tag("b") == "second"
    assert settler.tag("c") is None


def test_the_schedule_stays_small_while_one_file_keeps_changing() -> None:
    settler = Settler[str](settle_s=1.0)
    for step in range(10_000):
        now = 100.0 + step / 1000
        settler.observe("a", "tag", size=step, mtime_ns=int(now * S), now=now)
    assert len(settler._schedule) <= 4 * len(settler) + 65
