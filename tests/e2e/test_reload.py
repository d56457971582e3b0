"""Process files read again without a restart: when they change (watched), and on SIGHUP; the
running jobs untouched."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Server, process_info, wait_status, wait_until

ASYNC = {"Prefer": "respond-async"}
ENDED = {"successful", "failed", "dismissed"}


def answering(process_id: str, text: str, version: str = "1.0.0", pause: float = 0) -> str:
    script = f"sleep {pause}; echo '{json.dumps({'plugin_results': text})}'"
    document = {
        "info": {**process_info(process_id), "version": version},
        "host": {"type": "subprocess", "command": ["sh", "-c", script]},
        "outputs": [{"id": "result", "schema": {"type": "string"}}],
    }
    return json.dumps(document)  # YAML reads JSON


def run(http: httpx.Client, process_id: str) -> Any:
    response = http.post(f"/processes/{process_id}/execution", json={"inputs": {}})
    assert response.status_code == 200, response.text
    return response.json()


def submit(http: httpx.Client, process_id: str) -> str:
    response = http.post(f"/processes/{process_id}/execution", json={"inputs": {}}, headers=ASYNC)
    assert response.status_code == 201, response.text
    return str(response.json()["jobID"])


def version(http: httpx.Client, process_id: str) -> str | None:
    response = http.get(f"/processes/{process_id}")
    return str(response.json()["version"]) if response.status_code == 200 else None


def plugins_with(tmp_path: Path, files: dict[str, str]) -> Path:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    for name, text in files.items():
        (plugins / name).write_text(text)
    return plugins


def test_file_edits_take_effect_without_a_restart_and_running_jobs_go_on(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    plugins = plugins_with(
        tmp_path,
        {"echo.yml": answering("echo", "one"), "slow.yml": answering("slow", "slept", pause=3)},
    )
    server = server_factory(plugins)
    assert server.proc is not None
    with server.client() as http:
        running = submit(http, "slow")
        wait_status(http, running, {"running"})

        (plugins / "echo.yml").write_text(answering("echo", "two", "1.1.0"))
        wait_until(lambda: version(http, "echo") == "1.1.0", 10, "the edit to be served")
        assert run(http, "echo") == "two"

        broken = answering("echo", "three", "1.2.0").replace('"outputs"', '"outputz"')
        (plugins / "echo.yml").write_text(broken)
        wait_until(lambda: "last valid version is served" in server.output(), 10, "the log")
        assert "echo.yml:1:" in server.output() and "outputz" in server.output()
        assert version(http, "echo") == "1.1.0" and run(http, "echo") == "two"

        (plugins / "added.yml").write_text(answering("added", "new"))
        (plugins / "slow.yml").unlink()
        wait_until(lambda: version(http, "added") == "1.0.0", 10, "the new file to be served")
        wait_until(lambda: version(http, "slow") is None, 10, "the removed file to go")
        listed = {p["id"] for p in http.get("/processes").json()["processes"]}
        assert listed == {"echo", "added"}
        api = http.get("/api").json()["paths"]
        assert "/processes/added/execution" in api and "/processes/slow/execution" not in api

        # a folder moved in: only directories change (so does a ConfigMap's symlink swap)
        folder = tmp_path / "more"
        folder.mkdir()
        (folder / "moved.yml").write_text(answering("moved", "in"))
        folder.rename(plugins / "more")
        wait_until(lambda: version(http, "moved") == "1.0.0", 10, "the moved folder's process")

        job = wait_status(http, running, ENDED)
        assert job["status"] == "successful", job
        assert http.get(f"/jobs/{running}/results/result").json() == "slept"
    assert server.proc.poll() is None  # never restarted


def test_sighup_reads_the_files_again_when_they_are_not_watched(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    plugins = plugins_with(tmp_path, {"echo.yml": answering("echo", "one")})
    server = server_factory(plugins, env={"WATCH_PROCESSES": "false"})
    assert server.proc is not None
    with server.client() as http:
        (plugins / "echo.yml").write_text(answering("echo", "two", "2.0.0"))
        time.sleep(1.5)  # what a watcher would have needed
        assert version(http, "echo") == "1.0.0"
        server.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: version(http, "echo") == "2.0.0", 10, "the reload")
        assert run(http, "echo") == "two"
    assert server.proc.poll() is None


def test_sighup_reaches_every_worker(server_factory: Callable[..., Server], tmp_path: Path) -> None:
    plugins = plugins_with(tmp_path, {"echo.yml": answering("echo", "one")})
    server = server_factory(plugins, "--workers", "2", env={"WATCH_PROCESSES": "false"})
    assert server.proc is not None
    wait_until(lambda: server.output().count("startup complete") == 2, 30, "both workers")
    with server.client() as http:
        (plugins / "echo.yml").write_text(answering("echo", "two", "2.0.0"))
        server.proc.send_signal(signal.SIGHUP)
        wait_until(
            lambda: server.output().count("(SIGHUP): 0 added [], 1 changed") == 2,
            15,
            "both workers to read the files again",
        )
        # new connections each time: they go to either worker
        for _ in range(10):
            with server.client() as fresh:
                assert version(fresh, "echo") == "2.0.0"
        assert "ended (exit code" not in server.output()
        assert version(http, "echo") == "2.0.0"
    assert server.proc.poll() is None


def test_queued_jobs_of_a_removed_file_end_saying_why(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    plugins = plugins_with(
        tmp_path,
        {"slow.yml": answering("slow", "slept", pause=3), "later.yml": answering("later", "x")},
    )
    server = server_factory(plugins, env={"SUBPROCESS_MAX_JOBS": "1"})
    with server.client() as http:
        running = submit(http, "slow")
        wait_status(http, running, {"running"})
        waiting = submit(http, "later")  # waits: one subprocess job at a time
        assert http.get(f"/jobs/{waiting}").json()["status"] == "accepted"
        (plugins / "later.yml").unlink()
        job = wait_status(http, waiting, ENDED, timeout=10)
        assert job["status"] == "failed" and "'later' is gone" in job["message"], job
        assert wait_status(http, running, ENDED)["status"] == "successful"
