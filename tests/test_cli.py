"""The command line: help text, option names, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from geoingest.cli import build_parser, main
from geoingest.config import OPTIONS, OPTIONS_BY_KEY, read_environment
from geoingest.geojson import ERROR_RULES, WARNING_RULES
from geoingest.metrics import REJECTION_RULES

HELP_FILE = Path(__file__).parent / "data" / "run_help.txt"


def _help(command: str) -> str:
    env = {**os.environ, "COLUMNS": "100"}
    proc = subprocess.run(
        [sys.executable, "-m", "geoingest", command, "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=30,
    )
    return proc.stdout


def test_run_help_is_pinned() -> None:
    # Regenerate with: COLUMNS=100 geoingest run --help > tests/data/run_help.txt
    assert _help("run") == HELP_FILE.read_text()


def test_command_line_file_and_environment_offer_the_same_names() -> None:
    parser = build_parser()
    run = parser._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    flags = {a.dest for a in run._actions if a.option_strings} - {"help", "config"}
    assert flags == set(OPTIONS_BY_KEY)
    env = read_environment({f"GEOINGEST_{key.upper()}": "x" for key in OPTIONS_BY_KEY})
    assert set(env) == set(OPTIONS_BY_KEY)
    for option in OPTIONS:
        assert option.flag == "--" + option.key.replace("_", "-")


def test_every_option_is_in_the_readme() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for option in OPTIONS:
        assert f"| `{option.flag}` | `{option.env}` |" in readme, option.key


def test_check_config_accepts_a_usable_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "drop").mkdir()
    code = main(
        ["check-config", "--input", str(tmp_path / "drop"), "--output", str(tmp_path / "out")]
    )
    assert code == 0
    assert capsys.readouterr().out == "configuration ok\n"


def test_check_config_names_a_missing_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["check-config", "--input", str(tmp_path / "nope"), "--output", str(tmp_path / "out")]
    )
    assert code == 2
    assert capsys.readouterr().err.startswith("geoingest: configuration error: input: ")


def test_config_file_error_names_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "geoingest.toml"
    config.write_text('input = ["drop"]\noutput = "out"\nbatch_max_age_s = "soon"\n')
    assert main(["check-config", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "batch_max_age_s" in err


def test_validate_prints_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.geojson"
    bad.write_text('{"type": "LineString", "coordinates": [[0, 0]]}')
    good = tmp_path / "good.geojson"
    good.write_text('{"type": "Point", "coordinates": [1.5, 2.5]}')
    assert main(["validate", str(good), str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    path, rule_at_pointer, message = lines[0].split(": ", 2)
    assert path == str(bad)
    assert rule_at_pointer.split(" at ")[1] == "#/coordinates"
    assert message


def test_validate_exits_0_on_a_valid_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.geojson"
    good.write_text('{"type": "Feature", "properties": null, "geometry": null}')
    assert main(["validate", str(good)]) == 0
    assert capsys.readouterr().out == ""


def test_every_rejection_rule_and_warning_is_in_the_readme() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for rule in (*ERROR_RULES, *WARNING_RULES, *REJECTION_RULES):
        assert f"| `{rule}` |" in readme, rule
