"""Checks on the Dockerfile's instructions, read with dockerfile-parse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from geoingest import config

DOCKERFILE = Path(__file__).resolve().parent.parent / "Dockerfile"

# The README's install step. The image must be built with the same command, so
# that a host install and the container hold the same thing.
INSTALL_COMMAND = "python3 -m venv /opt/geoingest && /opt/geoingest/bin/pip install ."

BASE_IMAGE = "python:3.11-slim"
BINARY = "/opt/geoingest/bin/geoingest"
VOLUMES = ["/data/drop", "/data/out", "/data/state"]

Instruction = dict[str, str]


def stages() -> list[list[Instruction]]:
    """The Dockerfile's instructions, one list per stage, each opening with its FROM."""
    found: list[list[Instruction]] = []
    for instruction in DockerfileParser(path=str(DOCKERFILE)).structure:
        if instruction["instruction"] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def values(stage: list[Instruction], name: str) -> list[str]:
    """The values of every ``name`` instruction in a stage, in order."""
    return [i["value"] for i in stage if i["instruction"] == name]


def final(name: str) -> str:
    """The value of the last ``name`` instruction in the final stage."""
    return values(stages()[-1], name)[-1]


def final_env() -> dict[str, str]:
    """The variables the final stage sets."""
    parser = DockerfileParser(path=str(DOCKERFILE))
    return dict(parser.envs)


def healthcheck_argv() -> list[str]:
    """The exec-form command of the HEALTHCHECK."""
    _, _, command = final("HEALTHCHECK").partition("CMD")
    argv = json.loads(command)
    assert isinstance(argv, list)
    return [str(arg) for arg in argv]


def test_image_is_built_in_two_stages_on_python_slim() -> None:
    bases = [stage[0]["value"].split()[0] for stage in stages()]

    assert bases == [BASE_IMAGE, BASE_IMAGE]


def test_build_stage_installs_with_the_readme_command() -> None:
    build = stages()[0]

    assert INSTALL_COMMAND in values(build, "RUN")


def test_build_stage_has_a_c_compiler_before_it_installs() -> None:
    runs = values(stages()[0], "RUN")
    compiler = next(i for i, run in enumerate(runs) if "apt-get install" in run and "gcc" in run)

    # Without one, pip would quietly install the slower pure-Python coordinate pass.
    assert compiler < runs.index(INSTALL_COMMAND)


def test_final_stage_copies_only_the_venv_from_the_build_stage() -> None:
    copies = values(stages()[-1], "COPY")

    assert copies == ["--from=build /opt/geoingest /opt/geoingest"]


def test_final_stage_runs_as_a_user_other_than_root() -> None:
    user, _, group = final("USER").partition(":")

    assert user not in {"", "root", "0"}
    assert group not in {"root", "0"}


def test_entrypoint_runs_geoingest_in_exec_form() -> None:
    # Exec form (a JSON list) makes geoingest PID 1, so docker stop's SIGTERM
    # reaches its handlers rather than a shell.
    assert json.loads(final("ENTRYPOINT")) == [BINARY]
    assert json.loads(final("CMD")) == ["run"]
    assert final("STOPSIGNAL") == "SIGTERM"


def test_volumes_hold_input_output_and_state() -> None:
    env = final_env()

    assert json.loads(final("VOLUME")) == VOLUMES
    assert [env["GEOINGEST_INPUT"], env["GEOINGEST_OUTPUT"], env["GEOINGEST_STATE_DIR"]] == VOLUMES


def test_metrics_listen_on_every_interface_of_the_container() -> None:
    assert final_env()["GEOINGEST_METRICS_ADDRESS"] == "0.0.0.0:9611"
    assert final("EXPOSE") == "9611"


def test_container_environment_names_only_real_settings() -> None:
    known = {option.env for option in config.OPTIONS}

    named = {name for name in final_env() if name.startswith("GEOINGEST_")}

    assert named <= known


def test_container_environment_alone_is_a_usable_configuration() -> None:
    settings = config.load({}, final_env())

    assert [root.path for root in settings.inputs] == [Path("/data/drop")]
    assert (settings.output, settings.state_dir) == (Path("/data/out"), Path("/data/state"))
    assert settings.metrics_address == ("0.0.0.0", 9611)


def test_healthcheck_asks_healthz_with_the_standard_library() -> None:
    argv = healthcheck_argv()

    assert argv[:2] == ["python3", "-c"]
    assert "import os, urllib.request" in argv[2]
    assert "/healthz" in argv[2]


class _HealthServer(ThreadingHTTPServer):
    """A local server whose /healthz answers with ``status``."""

    status = 200


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        assert isinstance(self.server, _HealthServer)
        self.send_response(self.server.status if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Keeps the test output quiet."""


@pytest.fixture
def health_server() -> Iterator[_HealthServer]:
    """A health server on a free local port, serving from a thread."""
    server = _HealthServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_command_follows_the_healthz_status(
    health_server: _HealthServer, status: int, healthy: bool
) -> None:
    health_server.status = status
    port = health_server.server_address[1]
    # A proxy that does not exist: the check must go to the daemon directly.
    env = {
        **os.environ,
        "GEOINGEST_METRICS_ADDRESS": f"0.0.0.0:{port}",
        "http_proxy": "http://127.0.0.1:9",
    }

    # The image's python3 is replaced by this interpreter; the code runs as written.
    result = subprocess.run(
        [sys.executable, *healthcheck_argv()[1:]],
        env=env,
        capture_output=True,
        check=False,
        timeout=30,
    )

    assert (result.returncode == 0) is healthy


def test_the_readme_installs_with_the_same_command() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert INSTALL_COMMAND in readme
