"""Inputs of any size: the inputs file (PROCESS_API_INPUTS_FILE), `inputsAs: file`, and the
size limits each host has, refused before a job is created, against the real server and
a real Docker Engine (AWS Batch's are in test_aws.py)."""

from __future__ import annotations

import json
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import Server, process_info, wait_until
from tests.e2e.test_api import assert_exception
from tests.images import BUSYBOX, busybox_image

#: this module's server takes bodies up to 2 MiB, so that 1 MB of inputs reach a process.
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_ARGUMENT = 131071
ONE_MB = 1_000_000
TEXT_INPUT = [{"id": "text", "schema": {"type": "string"}}]
ALL_STATUSES = "accepted,running,successful,failed,dismissed"

READS_PY = """\
import json, os, stat, sys
path = os.environ["PROCESS_API_INPUTS_FILE"]
with open(path) as file:
    text = file.read()
mode = oct(stat.S_IMODE(os.stat(path).st_mode))
print(json.dumps({"plugin_results": {
    "file": json.loads(text), "argument": json.loads(sys.argv[-1]), "path": path, "mode": mode,
}}))
"""
FILE_ONLY_PY = """\
import json, os, sys
with open(os.environ["PROCESS_API_INPUTS_FILE"]) as file:
    inputs = json.load(file)
print(json.dumps({"plugin_results": {"length": len(inputs["text"]), "arguments": sys.argv[1:]}}))
"""
#: what a container sees of its inputs file: its path, whether it is mounted read-only,
#: its size, the user reading it, and how many arguments followed the command.
CONTAINER_SCRIPT = """\
f="$PROCESS_API_INPUTS_FILE"
if grep -q " $f [^ ]* ro[, ]" /proc/mounts; then mount=ro; else mount=rw; fi
size=$(stat -c %s "$f")
if [ "$size" -lt 1000 ]; then inputs=$(cat "$f"); else inputs=null; fi
printf '{"plugin_results": {"path": "%s", "mount": "%s", "size": %s, "uid": %s, "arguments": %s, \
"inputs": %s}}\\n' "$f" "$mount" "$size" "$(id -u)" "$#" "$inputs"
"""


def document(process_id: str, host: dict[str, Any], **more: Any) -> str:
    return yaml.safe_dump(
        {
            "info": process_info(process_id),
            "host": host,
            "inputs": TEXT_INPUT,
            "outputs": [{"id": "result", "schema": {}}],
            **more,
        }
    )


def container_process(process_id: str, **more: Any) -> str:
    container = {
        "image": BUSYBOX,  # built before the tests that run it (never pulled)
        "user": "1234:1234",
        "command": ["sh", "-c", CONTAINER_SCRIPT, "sh"],
    }
    return document(process_id, {"type": "docker"}, container=container, **more)


FILES = {
    "reads.yml": document("reads", {"type": "subprocess", "command": ["python3", "reads.py"]}),
    "reads.py": READS_PY,
    "fileonly.yml": document(
        "fileonly",
        {"type": "subprocess", "command": ["python3", "fileonly.py"]},
        inputsAs="file",
    ),
    "fileonly.py": FILE_ONLY_PY,
    "boxed.yml": document(
        "boxed",
        {"type": "docker"},
        # a closed loopback port: nothing leaves the machine, even if a run got through
        container={"image": "127.0.0.1:9/process-api-test/never-pulled:1"},
    ),
    # The image is built only for the tests that run these (they need a Docker Engine).
    "dreads.yml": container_process("dreads"),
    "dfile.yml": container_process("dfile", inputsAs="file"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("inputs-file")
    plugins = root / "plugins"
    plugins.mkdir()
    for name, text in FILES.items():
        (plugins / name).write_text(text)
    env = {"MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES), "INSTANCE_ID": f"inputs-{uuid.uuid4()}"}
    server = Server(plugins, root / "data", env=env)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def with_containers(server: Server, docker_engine: None) -> Server:
    """The server, once the image of its docker processes is built."""
    busybox_image()
    return server


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def execute(http: httpx.Client, process_id: str, text: str) -> httpx.Response:
    return http.post(f"/processes/{process_id}/execution", json={"inputs": {"text": text}})


def job_of(response: httpx.Response) -> str:
    return response.headers["link"].split("/jobs/")[1].split(">")[0]


def job_count(http: httpx.Client) -> int:
    return int(http.get("/jobs", params={"status": ALL_STATUSES}).json()["numberMatched"])


def inputs_file(server: Server, job_id: str) -> Path:
    return server.data_dir / "inputs" / f"{job_id}.json"


def gone(path: Path) -> Callable[[], bool]:
    return lambda: not path.exists()


# -- subprocess ----------------------------------------------------------------------


def test_a_process_reads_its_inputs_from_a_private_file_removed_after_the_job(
    server: Server, http: httpx.Client
) -> None:
    response = execute(http, "reads", "héllo")
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["file"] == seen["argument"] == {"text": "héllo"}
    assert seen["mode"] == "0o600"  # inputs may be personal: the server's user alone reads them
    job_id = job_of(response)
    assert Path(seen["path"]) == inputs_file(server, job_id)
    wait_until(gone(inputs_file(server, job_id)), 10, "the inputs file to be removed")


def test_inputs_larger_than_one_argument_reach_a_process_taking_them_as_a_file(
    http: httpx.Client,
) -> None:
    response = execute(http, "fileonly", "a" * ONE_MB)
    assert response.status_code == 200, response.text
    # The whole megabyte came through the file; the command got no inputs argument.
    assert response.json() == {"length": ONE_MB, "arguments": []}


def test_inputs_longer_than_one_argument_are_refused_with_the_remedy_and_no_job(
    http: httpx.Client,
) -> None:
    before = job_count(http)
    for process_id, host in (("reads", "subprocess"), ("boxed", "docker")):
        # Just under the body limit: refused for the argument, never a server error.
        body = assert_exception(
            execute(http, process_id, "a" * (MAX_REQUEST_BYTES - 100)), 413, "payload-too-large"
        )
        assert f"{host} host" in body["detail"]
        assert str(MAX_ARGUMENT) in body["detail"]
        assert '{"href": …}' in body["detail"]
        assert "inputsAs: file" in body["detail"]
    assert job_count(http) == before


def test_a_body_over_the_configured_limit_is_refused_naming_it_and_the_setting(
    http: httpx.Client,
) -> None:
    before = job_count(http)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"inputs": {"text": "'
        for _ in range(3 * 16):
            yield b"a" * (64 * 1024)
        yield b'"}}'

    declared = http.post("/processes/fileonly/execution", content=b"a" * (MAX_REQUEST_BYTES + 1))
    chunked = http.post("/processes/fileonly/execution", content=chunks())
    assert chunked.request.headers["transfer-encoding"] == "chunked"
    for response in (declared, chunked):
        body = assert_exception(response, 413, "payload-too-large")
        assert str(MAX_REQUEST_BYTES) in body["detail"]
        assert "MAX_REQUEST_BYTES" in body["detail"]
    assert job_count(http) == before
    # Just under it, a process taking its inputs as a file runs.
    response = execute(http, "fileonly", "a" * (MAX_REQUEST_BYTES - 100))
    assert response.status_code == 200, response.text
    assert response.json()["length"] == MAX_REQUEST_BYTES - 100


def test_inputs_files_a_crashed_server_left_are_removed_at_start(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    leftover = tmp_path / "data" / "inputs" / f"{uuid.uuid4()}.json"
    leftover.parent.mkdir(parents=True)
    leftover.write_text('{"secret": "left behind"}')
    server_factory()
    wait_until(gone(leftover), 10, "the leftover inputs file to be removed")


# -- docker --------------------------------------------------------------------------


def test_a_container_reads_its_inputs_file_mounted_read_only_as_its_user(
    with_containers: Server,
) -> None:
    with with_containers.client() as http:
        response = execute(http, "dreads", "hi")
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["path"] == "/run/process-api/inputs.json"
    assert seen["mount"] == "ro"
    assert seen["uid"] == 1234  # not root: the file was handed to the container's user
    assert seen["inputs"] == {"text": "hi"}
    assert seen["arguments"] == 1  # the inputs argument, as before
    job_id = job_of(response)
    wait_until(gone(inputs_file(with_containers, job_id)), 10, "the inputs file to be removed")


def test_a_container_taking_its_inputs_as_a_file_gets_a_megabyte(
    with_containers: Server,
) -> None:
    with with_containers.client() as http:
        response = execute(http, "dfile", "a" * ONE_MB)
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["arguments"] == 0
    assert seen["size"] == len(json.dumps({"text": "a" * ONE_MB}))
    path = inputs_file(with_containers, job_of(response))
    wait_until(gone(path), 10, "the inputs file to be removed")
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_relative_data_dir_gives_processes_absolute_paths(
    tmp_path: Path, docker_engine: None
) -> None:
    """DATA_DIR is `.data` by default: relative to where the server starts. A process runs
    elsewhere (its file's directory, a container), so what it is given must be absolute."""
    busybox_image()
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    for name in ("reads.yml", "reads.py", "dreads.yml"):
        (plugins / name).write_text(FILES[name])
    server = Server(plugins, tmp_path / "cwd", env={"DATA_DIR": "relative-data"}).start()
    try:
        with server.client() as http:
            for process_id in ("reads", "dreads"):
                response = execute(http, process_id, "x")
                assert response.status_code == 200, response.text
                path = response.json()["path"]
                if process_id == "reads":
                    assert Path(path).is_absolute()
                    assert Path(path).parent == tmp_path / "cwd" / "relative-data" / "inputs"
    finally:
        server.stop()
