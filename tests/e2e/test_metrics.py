"""/metrics: what Prometheus scrapes, checked against the jobs the test ran."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import EXAMPLES, Server, wait_status, wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(EXAMPLES, tmp_path_factory.mktemp("metrics") / "data").start()
    yield server
    server.stop()


def samples(http: httpx.Client) -> dict[tuple[str, frozenset], float]:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def test_job_and_request_counters_follow_the_jobs_run(server: Server) -> None:
    with server.client() as http:
        for text in ("a", "b"):
            echo = http.post("/processes/echo/execution", json={"inputs": {"stringInput": text}})
            assert echo.status_code == 200, echo.text
        failed = http.post("/processes/fail/execution", json={"inputs": {}})
        assert failed.status_code == 500
        slow = http.post(
            "/processes/echo/execution",
            json={"inputs": {"stringInput": "x", "pause": 60}},
            headers={"Prefer": "respond-async"},
        ).json()["jobID"]
        wait_status(http, slow, {"running"})

        def running() -> dict:
            found = samples(http)
            active = value(found, "process_api_jobs_running", host="subprocess")
            return found if active == 1 else {}

        wait_until(running, what="the running job in process_api_jobs_running")
        assert http.delete(f"/jobs/{slow}").status_code == 200
        found = samples(http)

    submitted = "process_api_jobs_submitted_total"
    assert value(found, submitted, process="echo", host="subprocess") == 3
    assert value(found, submitted, process="fail", host="subprocess") == 1
    finished = "process_api_jobs_finished_total"
    echo = {"process": "echo", "host": "subprocess"}
    assert value(found, finished, **echo, status="successful") == 2
    assert value(found, finished, **echo, status="dismissed") == 1
    assert value(found, finished, process="fail", host="subprocess", status="failed") == 1
    duration = "process_api_job_duration_seconds_count"
    assert value(found, duration, **echo, status="successful") == 2
    assert value(found, "process_api_jobs_running", host="subprocess") == 0
    requests = "process_api_http_requests_total"
    route = "/processes/{processID}/execution"
    assert value(found, requests, method="POST", route=route, code="200") == 2
    assert value(found, requests, method="POST", route=route, code="500") == 1
    assert value(found, requests, method="DELETE", route="/jobs/{jobID}", code="200") == 1
    latency = "process_api_http_request_duration_seconds_count"
    assert value(found, latency, method="POST", route=route) == 4
    # one label per route, never per job
    assert not [key for key in found if any(slow in v for _, v in key[1])]


def test_metrics_are_in_the_api_document_but_not_the_landing_links(server: Server) -> None:
    with server.client() as http:
        assert "/metrics" in http.get("/api").json()["paths"]
        landing = http.get("/").json()
        assert not [link for link in landing["links"] if "/metrics" in link["href"]]


def test_the_queue_length_counts_the_jobs_waiting_for_room(tmp_path: Path) -> None:
    server = Server(EXAMPLES, tmp_path / "data", env={"SUBPROCESS_MAX_JOBS": "1"}).start()
    try:
        with server.client() as http:
            jobs = [echo_async(http, 60) for _ in range(4)]
            wait_until(
                lambda: value(samples(http), "process_api_jobs_queued", host="subprocess") == 3,
                what="three jobs counted in the queue",
            )
            assert value(samples(http), "process_api_jobs_running", host="subprocess") == 1
            for job_id in jobs:
                assert http.delete(f"/jobs/{job_id}").status_code == 200
            wait_until(
                lambda: value(samples(http), "process_api_jobs_queued", host="subprocess") == 0,
                what="the queue to be counted empty",
            )
    finally:
        server.stop()


def echo_async(http: httpx.Client, pause: int) -> str:
    response = http.post(
        "/processes/echo/execution",
        json={"inputs": {"stringInput": "x", "pause": pause}},
        headers={"Prefer": "respond-async"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["jobID"])
