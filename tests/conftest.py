"""Fixtures shared by every test: the real server, started as a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "plugins"
DATA = Path(__file__).parent / "data"


#: settings of the machine the tests must not inherit: each test says what it wants.
SCRUBBED = (
    "API_PORT",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "S3_BUCKET",
    "EXPIRY_DAYS",
    "DB_URL",
    "DB_PATH",
)


#: TEST_SERVER_WORKERS=N: every test server runs with `--workers N` unless its test says
#: how many. TEST_SERVER_STORE=postgres: every test server whose environment names no job
#: store (DB_URL, DB_PATH) uses a database of its own on the session's PostgreSQL, one per
#: data directory (a server started again on the same directory finds its jobs). Either
#: runs the whole suite in that configuration.
SERVER_WORKERS = os.environ.get("TEST_SERVER_WORKERS", "")
SERVER_STORE = os.environ.get("TEST_SERVER_STORE", "sqlite")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children(pid: int) -> list[int]:
    """The processes the process started and that still run."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


class Server:
    """A `process-api` process on a free loopback port, with its own data directory."""

    #: the session's PostgreSQL, when TEST_SERVER_STORE=postgres; and the database of
    #: each data directory on it.
    postgres: Any = None
    databases: dict[Path, str] = {}

    def __init__(
        self, plugins: Path, data_dir: Path, *args: str, env: dict[str, str] | None = None
    ):
        self.plugins = plugins
        self.data_dir = data_dir
        self.args = args
        self.extra_env = env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        #: what the server's command runs under (e.g. `unshare` for another machine's name).
        self.prefix: list[str] = []

    def start(self, wait: bool = True) -> Server:
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        env.update({"DATA_DIR": str(self.data_dir), "AWS_EC2_METADATA_DISABLED": "true"})
        env.update(self.extra_env)
        env.update(self._switched_store(env))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "process_api",
            "-d",
            str(self.plugins),
            "-p",
            str(self.port),
        ]
        self.log_file = self.log_path.open("ab")
        arguments = [*self.args, *self._switched_workers()]
        self.several_workers = "--workers" in arguments or "WORKERS" in env
        self.proc = subprocess.Popen(
            [*self.prefix, *command, *arguments],
            env=env,
            cwd=self.data_dir,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        if wait:
            self.wait_ready()
        return self

    def _switched_workers(self) -> list[str]:
        if not SERVER_WORKERS or "--workers" in self.args or "WORKERS" in self.extra_env:
            return []
        return ["--workers", SERVER_WORKERS]

    def _switched_store(self, env: dict[str, str]) -> dict[str, str]:
        if SERVER_STORE != "postgres" or "DB_URL" in env or "DB_PATH" in env:
            return {}
        assert Server.postgres is not None, "TEST_SERVER_STORE=postgres without PostgreSQL"
        key = self.data_dir.resolve()
        if key not in Server.databases:
            Server.databases[key] = Server.postgres.new_database()
        return {"DB_URL": Server.databases[key]}

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                httpx.get(self.url + "/conformance", timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"server did not start:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0, **kwargs)  # type: ignore[arg-type]

    def pause(self, sig: int = signal.SIGSTOP) -> None:
        """Stalls the server (SIGSTOP) or lets it go on (SIGCONT): its workers too."""
        assert self.proc is not None
        workers = children(self.proc.pid) if self.several_workers else []
        for pid in [self.proc.pid, *workers]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            # A server of several workers crashes whole: killed alone, its supervisor would
            # leave workers that stop their jobs as in a graceful shutdown.
            several = self.several_workers and sig == signal.SIGKILL
            workers = children(self.proc.pid) if several else []
            self.proc.send_signal(sig)
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        code = self.proc.wait(timeout)
        self.log_file.close()
        return code


@pytest.fixture
def plugins_dir(tmp_path: Path) -> Path:
    """A copy of the bundled examples that a test may add files to."""
    target = tmp_path / "plugins"
    shutil.copytree(EXAMPLES, target)
    return target


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[object]:
    servers: list[Server] = []

    def make(
        plugins: Path | None = None,
        *args: str,
        env: dict[str, str] | None = None,
        start: bool = True,
    ) -> Server:
        server = Server(plugins or EXAMPLES, tmp_path / "data", *args, env=env)
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in servers:
        if server.proc is not None and server.proc.poll() is None:
            server.stop(signal.SIGKILL)


@pytest.fixture
def server(server_factory: object) -> Server:
    """The server with the bundled examples."""
    return server_factory()  # type: ignore[operator]


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


def wait_status(http: httpx.Client, job_id: str, statuses: set[str], timeout: float = 20.0) -> dict:
    """Polls a job until its status is one of `statuses`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        document = http.get(f"/jobs/{job_id}").json()
        if document["status"] in statuses:
            return document
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {statuses}: {document}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    # A zombie has ended; only its parent has not collected it yet.
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def _docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A running Docker Engine: a failure in CI, a skip elsewhere, when there is none."""
    if _docker_answers():
        return
    message = (
        "no Docker Engine answers: install Debian's docker.io and run ./scripts/test as root "
        "(it starts `dockerd --bridge=none --iptables=false`), or set DOCKER_HOST"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def serve_files(root: Path, files: dict[str, str]) -> Iterator[Server]:
    """A server of the process files (and scripts) given as name -> text, for a module's tests."""
    plugins = root / "plugins"
    plugins.mkdir()
    for name, text in files.items():
        (plugins / name).write_text(text)
    server = Server(plugins, root / "data").start()
    yield server
    server.stop()


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Polls until the condition gives something true, and returns it."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.05)


def raw_post(server: Server, path: str, body: dict[str, Any]) -> socket.socket:
    """Sends a POST on a socket of its own and leaves it open, unread (a client that may go)."""
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(head.encode() + payload)
    return sock


def script_process(process_id: str, script: str) -> str:
    """A process file (JSON, which YAML reads) running `sh -c script`, with one text output."""
    document = {
        "info": process_info(process_id),
        "host": {"type": "subprocess", "command": ["sh", "-c", script]},
        "outputs": [{"id": "result", "schema": {"type": "string"}}],
    }
    return json.dumps(document)


def process_info(process_id: str) -> dict[str, Any]:
    """The `info:` section of a test process that runs sync and async."""
    return {
        "id": process_id,
        "version": "1.0.0",
        "title": process_id,
        "jobControlOptions": ["sync-execute", "async-execute"],
        "outputTransmission": ["value"],
    }


@pytest.fixture(scope="session", autouse=True)
def switched_store(request: pytest.FixtureRequest) -> Iterator[None]:
    """The PostgreSQL of TEST_SERVER_STORE=postgres; its databases are dropped at the end."""
    if SERVER_STORE != "postgres":
        yield
        return
    Server.postgres = request.getfixturevalue("postgres")
    yield
    for url in Server.databases.values():
        Server.postgres.drop_database(url)
    Server.databases.clear()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A PostgreSQL server for the session (TEST_DB_URL's, or a throwaway cluster): a
    failure in CI, a skip elsewhere, when there is none. Tests make databases on it."""
    from tests.postgres import session_postgres

    yield from session_postgres()
