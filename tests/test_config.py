"""Settings from the command line, the environment and a TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from geoingest.config import OPTIONS, ConfigError, load


def _load(cli: dict[str, object], env: dict[str, str] | None = None, path: Path | None = None):
    return load({"input": ["drop"], "output": "out", **cli}, env or {}, path)


def test_defaults_follow_the_output_folder() -> None:
    settings = _load({})
    assert settings.state_dir == Path("out/.geoingest")
    assert settings.quarantine_dir == Path("out/.geoingest/quarantine")
    assert (settings.settle_s, settings.max_concurrency, settings.batch_max_features) == (
        1.0,
        256,
        10_000,
    )
    assert settings.metrics_address == ("127.0.0.1", 9611)


def test_command_line_beats_environment_beats_file(tmp_path: Path) -> None:
    config = tmp_path / "geoingest.toml"
    config.write_text("settle_s = 3.0\nqueue_size = 7\nprecision = 4\n")
    env = {"GEOINGEST_SETTLE_S": "2.0", "GEOINGEST_QUEUE_SIZE": "8"}
    settings = _load({"settle_s": "1.5"}, env, config)
    assert (settings.settle_s, settings.queue_size, settings.precision) == (1.5, 8, 4)


def test_bad_value_names_its_key() -> None:
    with pytest.raises(ConfigError) as caught:
        _load({}, {"GEOINGEST_BATCH_MAX_FEATURES": "many"})
    assert caught.value.key == "batch_max_features"


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "geoingest.toml"
    config.write_text("settle_seconds = 3\n")
    with pytest.raises(ConfigError) as caught:
        _load({}, {}, config)
    assert caught.value.key == "settle_seconds"


def test_move_requires_a_done_folder() -> None:
    with pytest.raises(ConfigError) as caught:
        _load({"on_success": "move"})
    assert caught.value.key == "done_dir"


def test_output_inside_an_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load({"input": [str(tmp_path)], "output": str(tmp_path / "out")}, {})
    assert caught.value.key == "output"


def test_input_names_come_from_folders_or_name_equals_dir() -> None:
    settings = load({"input": ["/srv/a/drop", "west=/srv/b/drop"], "output": "/srv/out"}, {})
    assert [(root.name, str(root.path)) for root in settings.inputs] == [
        ("drop", "/srv/a/drop"),
        ("west", "/srv/b/drop"),
    ]


def test_lists_from_the_environment_are_comma_separated() -> None:
    settings = _load({}, {"GEOINGEST_PATTERN": "*.geojson, *.json"})
    assert settings.patterns == ("*.geojson", "*.json")


def test_every_option_has_a_sentence_of_help_and_a_default() -> None:
    for option in OPTIONS:
        assert option.help.endswith("."), option.key
        assert option.default, option.key
        assert option.env == "GEOINGEST_" + option.key.upper()
