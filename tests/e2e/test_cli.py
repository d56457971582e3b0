"""The `process-api` command: validating files, refusing to start, flags, dotenv and environment."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests.conftest import EXAMPLES, Server, free_port

ServerFactory = Callable[..., Server]
COMMAND = [sys.executable, "-m", "process_api"]

BAD_ID = """\
info:
  id: not a valid id!
  version: '1.0.0'
host:
  type: subprocess
  command: [python3, echo.py]
"""

NO_COMMAND = """\
info:
  id: nocommand
  version: '1.0.0'
host:
  type: subprocess
outputs:
  - id: out
    schema: {type: string}
"""


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test's environment without the server's variables, with a data dir of the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("API_", "PLUGINS_DIR"))}
    env["DATA_DIR"] = str(tmp_path / "data")
    env.update(extra)
    return env


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 30):
    """Runs the command to its end, in a directory without a .env file."""
    return subprocess.run(
        [*COMMAND, *args],
        cwd=tmp_path,
        env=env or clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def broken_dir(tmp_path: Path) -> Path:
    """The echo example and two broken process files."""
    directory = tmp_path / "broken"
    directory.mkdir()
    shutil.copy(EXAMPLES / "examples" / "echo.yml", directory)
    shutil.copy(EXAMPLES / "examples" / "echo.py", directory)
    (directory / "bad_id.yml").write_text(BAD_ID)
    (directory / "no_command.yaml").write_text(NO_COMMAND)
    return directory


def assert_both_problems(output: str, directory: Path) -> None:
    lines = output.splitlines()
    bad_id = [line for line in lines if str(directory / "bad_id.yml") in line]
    no_command = [line for line in lines if str(directory / "no_command.yaml") in line]
    assert any("info.id" in line for line in bad_id), output
    assert any("host.command" in line for line in no_command), output
    # each with the line and column of the key
    assert any(f"{directory}/bad_id.yml:2:3: info.id: " in line for line in bad_id), output
    expected = f"{directory}/no_command.yaml:4:1: host.command: missing required key"
    assert any(line.endswith(expected) for line in no_command), output


# -- validate ---------------------------------------------------------------------------


def test_validate_the_examples(tmp_path: Path) -> None:
    result = run(tmp_path, "validate", str(EXAMPLES / "examples"))
    assert result.returncode == 0, result.stderr
    assert "4 valid process file(s), 0 error(s), 0 warning(s), 0 skipped" in result.stdout
    assert result.stderr == ""


def test_validate_reports_every_problem(tmp_path: Path, broken_dir: Path) -> None:
    result = run(tmp_path, "validate", str(broken_dir))
    assert result.returncode == 2
    assert "1 valid process file(s), 2 error(s), 0 warning(s), 0 skipped" in result.stdout
    assert_both_problems(result.stderr, broken_dir)


def test_validate_a_missing_directory(tmp_path: Path) -> None:
    result = run(tmp_path, "validate", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert str(tmp_path / "nowhere") in result.stderr
    assert "not found" in result.stderr


def test_validate_uses_plugins_dir_from_the_environment(tmp_path: Path) -> None:
    env = clean_env(tmp_path, PLUGINS_DIR=str(EXAMPLES))
    result = run(tmp_path, "validate", env=env)
    assert result.returncode == 0, result.stderr
    assert "4 valid process file(s)" in result.stdout


TYPO = """\
info:
  id: typo
  jobControlOption: [async-execute]
host:
  type: subprocess
  command: [python3, echo.py]
inputs:
  - id: a
    minOcurs: 1
"""

CONDA = "name: tools\ndependencies: [python=3.11, numpy]\n"
NOT_ON_PATH = "info: {id: missing}\nhost: {type: subprocess, command: [no-such-program-x]}\n"


def test_validate_a_single_file(tmp_path: Path) -> None:
    result = run(tmp_path, "validate", str(EXAMPLES / "examples" / "echo.yml"))
    assert result.returncode == 0, result.stderr
    assert "1 valid process file(s), 0 error(s), 0 warning(s), 0 skipped" in result.stdout


def test_validate_several_paths_prints_each_problem_on_its_line(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    (one / "typo.yml").write_text(TYPO)
    (one / "environment.yml").write_text(CONDA)
    (two / "bad.yaml").write_text("info:\n  id: [x\nhost: {type: subprocess}\n")
    (two / "other.yml").write_text(NOT_ON_PATH)
    result = run(tmp_path, "validate", "one", "two/bad.yaml")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "one/environment.yml: skipped: not a process file (no info or host section)",
        "one/typo.yml:3:3: info.jobControlOption: unknown key (did you mean 'jobControlOptions'?)",
        "one/typo.yml:9:5: inputs[0].minOcurs: unknown key (did you mean 'minOccurs'?)",
        "two/bad.yaml:3:5: invalid YAML: expected ',' or ']', but got ':'"
        " (while parsing a flow sequence that starts at line 2, column 7)",
    ]
    assert result.stdout == "0 valid process file(s), 3 error(s), 0 warning(s), 1 skipped\n"


def test_validate_shows_warnings_and_fails_on_them_only_when_strict(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text(NOT_ON_PATH)
    result = run(tmp_path, "validate", "p.yml")
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        "p.yml:2:26: warning: host.command: program 'no-such-program-x' is not on the PATH"
    ]
    assert "1 valid process file(s), 0 error(s), 1 warning(s), 0 skipped" in result.stdout
    assert run(tmp_path, "validate", "--strict", "p.yml").returncode == 2


def test_validate_leaves_out_what_the_ignore_file_lists(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    shutil.copytree(EXAMPLES, plugins)
    (plugins / ".processignore").write_text("# drafts\ndrafts/\n")
    (plugins / "drafts").mkdir()
    (plugins / "drafts" / "half.yml").write_text("info: [\n")
    result = run(tmp_path, "validate", env=clean_env(tmp_path, PLUGINS_DIR=str(plugins)))
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        f"{plugins}/drafts/half.yml: skipped: listed in {plugins}/.processignore\n"
    )
    assert "4 valid process file(s), 0 error(s), 0 warning(s), 1 skipped" in result.stdout


NEVER_PULLED = """\
info: {id: never}
host: {type: docker}
container: {image: process-api-test/not-built:never, pullPolicy: never}
"""


def test_validate_refuses_an_image_that_is_missing_and_never_pulled(
    tmp_path: Path, docker_engine: None
) -> None:
    (tmp_path / "p.yml").write_text(NEVER_PULLED)
    result = run(tmp_path, "validate", "p.yml")
    assert result.returncode == 2
    assert result.stderr == (
        "p.yml:3:13: container.image: image 'process-api-test/not-built:never' is not on the"
        " Docker Engine and the pull policy is never\n"
    )


def test_validate_with_the_docker_engine_down_does_not_fail_on_images(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text(NEVER_PULLED)
    env = clean_env(tmp_path, DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock")
    result = run(tmp_path, "validate", "p.yml", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


# -- starting the server --------------------------------------------------------------------


def test_server_starts_beside_a_non_process_file_and_logs_what_it_left_out(
    server_factory: ServerFactory, plugins_dir: Path
) -> None:
    (plugins_dir / "examples" / "environment.yml").write_text(CONDA)
    (plugins_dir / "missing.yml").write_text(NOT_ON_PATH)
    server = server_factory(plugins_dir)
    with server.client() as http:
        ids = [p["id"] for p in http.get("/processes").json()["processes"]]
        assert ids == ["echo", "fail", "missing", "rating", "stats"]
    output = server.output()
    assert (
        f"WARNING process_api: {plugins_dir}/examples/environment.yml: skipped: not a process"
        " file (no info or host section)"
    ) in output
    assert (
        f"WARNING process_api: process file: {plugins_dir}/missing.yml:2:26: warning:"
        " host.command: program 'no-such-program-x' is not on the PATH"
    ) in output


def test_server_refuses_to_start_with_an_invalid_file(tmp_path: Path, broken_dir: Path) -> None:
    port = free_port()
    result = run(tmp_path, "-d", str(broken_dir), "-p", str(port), timeout=20)
    assert result.returncode == 2
    assert_both_problems(result.stderr, broken_dir)
    assert "--skip-invalid" in result.stderr
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)


def test_skip_invalid_serves_the_valid_processes_only(
    server_factory: ServerFactory, broken_dir: Path
) -> None:
    server = server_factory(broken_dir, "--skip-invalid")
    with server.client() as http:
        document = http.get("/processes").json()
        assert [p["id"] for p in document["processes"]] == ["echo"]
        assert http.get("/processes/nocommand").status_code == 404
        response = http.post("/processes/echo/execution", json={"inputs": {"stringInput": "ok"}})
        assert response.status_code == 200
        assert response.json() == "ok"
    assert_both_problems(server.output(), broken_dir)


def test_a_missing_env_file_is_an_error(tmp_path: Path) -> None:
    result = run(tmp_path, "-e", "missing.env", "-d", str(EXAMPLES), "-p", str(free_port()))
    assert result.returncode != 0
    assert "missing.env" in result.stderr
    assert "Traceback" not in result.stderr


def test_env_file_sets_the_api_name(server_factory: ServerFactory, tmp_path: Path) -> None:
    env_file = tmp_path / "custom.env"
    env_file.write_text("API_NAME=xyz\n")
    server = server_factory(None, "-e", str(env_file))
    with server.client() as http:
        assert http.get("/", params={"f": "json"}).json()["title"] == "xyz"


def test_host_and_port_flags(server_factory: ServerFactory) -> None:
    server = server_factory(None, "--host", "127.0.0.1")
    with httpx.Client(timeout=10) as http:
        response = http.get(f"http://127.0.0.1:{server.port}/conformance")
        assert response.status_code == 200
    assert f"http://127.0.0.1:{server.port}" in server.output()


BareStart = Callable[..., tuple[subprocess.Popen[bytes], Path]]


@pytest.fixture
def bare_server(tmp_path: Path) -> Iterator[BareStart]:
    """Starts `process-api` with only the given environment and flags; returns (proc, log)."""
    started: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []

    def start(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[bytes], Path]:
        log_path = tmp_path / f"bare-{len(started)}.log"
        log = log_path.open("wb")
        proc = subprocess.Popen(
            [*COMMAND, *args], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        started.append((proc, log))
        return proc, log_path

    yield start
    for proc, log in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        log.close()


def wait_ready(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + 60  # a start on a machine busy with other tests
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            httpx.get(url + "/conformance", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"did not start:\n{log_path.read_text()}")


def test_plugins_dir_from_the_environment(tmp_path: Path, bare_server: BareStart) -> None:
    plugins = tmp_path / "only-stats"
    plugins.mkdir()
    shutil.copy(EXAMPLES / "examples" / "stats.yml", plugins)
    shutil.copy(EXAMPLES / "examples" / "stats.py", plugins)
    port = free_port()
    proc, log_path = bare_server(clean_env(tmp_path, PLUGINS_DIR=str(plugins)), "-p", str(port))
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, url, log_path)
    document = httpx.get(url + "/processes", timeout=10).json()
    assert [p["id"] for p in document["processes"]] == ["stats"]
    response = httpx.post(
        url + "/processes/stats/execution",
        json={"inputs": {"numbers": [1, 2, 3]}, "response": "document"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["sum"] == 6


def test_d_flag_wins_over_plugins_dir(tmp_path: Path, bare_server: BareStart) -> None:
    port = free_port()
    env = clean_env(tmp_path, PLUGINS_DIR=str(tmp_path / "nowhere"))
    proc, log_path = bare_server(env, "-d", str(EXAMPLES), "-p", str(port))
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, url, log_path)
    document = httpx.get(url + "/processes", timeout=10).json()
    assert {p["id"] for p in document["processes"]} == {"echo", "fail", "rating", "stats"}
