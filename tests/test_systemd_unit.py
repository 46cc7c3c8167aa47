"""Checks on the shipped systemd unit and its example configuration."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from geoingest import config

SYSTEMD_DIR = Path(__file__).resolve().parent.parent / "systemd"
UNIT = SYSTEMD_DIR / "geoingest.service"
EXAMPLE_CONFIG = SYSTEMD_DIR / "geoingest.toml"
BINARY = "/opt/geoingest/bin/geoingest"
CONFIG_PATH = "/etc/geoingest/geoingest.toml"
MAX_EXPOSURE = 2.0

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed"
)


def unit_settings(text: str) -> list[tuple[str, str]]:
    """Reads a unit file's (key, value) rows in order, repeated keys included."""
    rows = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            rows.append((key.strip(), value.strip()))
    return rows


def values(key: str) -> list[str]:
    """Every value the unit gives ``key``, in order."""
    return [value for name, value in unit_settings(UNIT.read_text()) if name == key]


def value(key: str) -> str:
    """The one value the unit gives ``key``."""
    [only] = values(key)
    return only


def seconds(span: str) -> float:
    """Converts a systemd time span such as ``90s`` or ``10min`` to seconds."""
    match = re.fullmatch(r"(\d+)(s|min)", span)
    assert match is not None, f"unexpected time span {span!r}"
    return float(match[1]) * (60 if match[2] == "min" else 1)


def analyze(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Runs systemd-analyze and returns what it printed, both streams together."""
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.fixture
def verifiable_unit(tmp_path: Path) -> Path:
    """A copy of the unit whose geoingest commands point at a real executable.

    `systemd-analyze verify` rejects a unit whose commands do not exist, and
    geoingest is not installed at its production path here. The copy differs
    from the shipped unit only in that path, which now names a stub the test
    creates, so every other line is verified as shipped.
    """
    stub = tmp_path / "bin" / "geoingest"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text = UNIT.read_text()
    assert text.count(BINARY) == 3, "ExecStartPre, ExecStart and ExecReload run geoingest"
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(BINARY, str(stub)))
    return copy


@needs_systemd_analyze
def test_unit_passes_systemd_analyze_verify(verifiable_unit: Path) -> None:
    result = analyze("verify", verifiable_unit)

    # verify exits 0 on unknown keys and bad values, so silence is the pass mark.
    assert result.stdout == ""
    assert result.returncode == 0


@needs_systemd_analyze
def test_verify_speaks_up_about_an_unknown_key(verifiable_unit: Path) -> None:
    # Shows that an empty output above means something.
    text = verifiable_unit.read_text().replace("[Service]\n", "[Service]\nWatchdogSecs=30s\n")
    verifiable_unit.write_text(text)

    result = analyze("verify", verifiable_unit)

    assert "Unknown key 'WatchdogSecs'" in result.stdout


@needs_systemd_analyze
def test_unit_security_exposure_is_at_most_two() -> None:
    result = analyze("security", "--offline=true", UNIT)

    match = re.search(r"Overall exposure level for geoingest\.service: (\d+\.\d+)", result.stdout)
    assert match is not None, result.stdout
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_unit_waits_for_readiness_and_pings_the_watchdog() -> None:
    assert value("Type") == "notify"
    assert value("NotifyAccess") == "main"
    assert seconds(value("WatchdogSec")) > 0


def test_unit_checks_the_configuration_before_start_and_reload() -> None:
    check = f"{BINARY} check-config --config {CONFIG_PATH}"

    assert value("ExecStartPre") == check
    assert value("ExecStart") == f"{BINARY} run --config {CONFIG_PATH}"
    assert values("ExecReload") == [check, "/bin/kill -HUP $MAINPID"]


def test_unit_gives_the_drain_time_to_finish() -> None:
    drain_timeout_s = _default("drain_timeout_s")

    assert seconds(value("TimeoutStopSec")) > drain_timeout_s
    assert value("KillMode") == "mixed"
    assert value("Restart") == "on-failure"


def test_unit_allows_open_files_well_beyond_max_concurrency() -> None:
    assert int(value("LimitNOFILE")) >= 4 * _default("max_concurrency")


def test_unit_keeps_the_sockets_the_daemon_uses() -> None:
    # AF_UNIX carries sd_notify and the forkserver; AF_INET* the metrics server.
    assert value("RestrictAddressFamilies").split() == ["AF_UNIX", "AF_INET", "AF_INET6"]


def test_example_config_names_every_setting() -> None:
    text = EXAMPLE_CONFIG.read_text()

    # A setting may be shown commented out when its default depends on the machine.
    shown = set(re.findall(r"(?m)^#? ?([a-z_]+) = ", text))

    assert shown == set(config.OPTIONS_BY_KEY)


def test_example_config_loads() -> None:
    settings = config.load({}, {}, EXAMPLE_CONFIG)

    assert [root.path for root in settings.inputs] == [Path("/srv/geoingest/drop")]
    assert settings.output == Path("/srv/geoingest/out")
    assert settings.state_dir == Path("/var/lib") / value("StateDirectory")


def test_unit_lets_the_daemon_write_every_folder_of_the_example_config() -> None:
    settings = config.load({}, {}, EXAMPLE_CONFIG)
    writable = [Path(path) for path in value("ReadWritePaths").split()]
    writable.append(Path("/var/lib") / value("StateDirectory"))
    folders = [root.path for root in settings.inputs]
    folders += [settings.output, settings.state_dir, settings.quarantine_dir]
    folders += [settings.done_dir] if settings.done_dir else []

    unreachable = [f for f in folders if not any(f.is_relative_to(w) for w in writable)]

    assert unreachable == []


def _default(key: str) -> int | float:
    field = next(f for f in dataclasses.fields(config.Settings) if f.name == key)
    default = field.default
    assert isinstance(default, int | float)
    return default
