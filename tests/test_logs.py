"""Logs stay one line per event, whatever bytes the file names hold."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from geoingest import logs


@settings(max_examples=300, deadline=None)
@given(name=st.binary(min_size=1, max_size=40))
def test_any_file_name_prints_on_one_line_as_valid_text(name: bytes) -> None:
    shown = logs.printable(Path(os.fsdecode(name)))
    assert shown.encode("utf-8").decode("utf-8") == shown
    assert not any(ord(char) < 0x20 or ord(char) == 0x7F for char in shown)


def test_names_that_differ_are_shown_differently() -> None:
    names = [b"a\nb", b"a\\nb", b"a\xffb", b"a\\xffb", b"a\tb"]
    shown = {logs.printable(os.fsdecode(name)) for name in names}
    assert len(shown) >= 3  # control bytes and their escapes may look alike, never vanish


@pytest.mark.parametrize("style", ["json", "console"])
def test_an_event_with_hostile_names_anywhere_is_one_line(
    capsys: pytest.CaptureFixture[str], style: str
) -> None:
    logs.configure("debug", style)
    try:
        bad = os.fsdecode(b"drop/x\xff\ny\r\x1b[31m.geojson")
        structlog.get_logger().info(
            "file_quarantined", path=Path(bad), inputs=[bad], extra={bad: (bad,)}
        )
    finally:
        structlog.reset_defaults()
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "\x1b" not in out
    if style == "json":
        event = json.loads(out)
        assert event["path"] == event["inputs"][0] == "drop/x\\xff\\ny\\r\\x1b[31m.geojson"
