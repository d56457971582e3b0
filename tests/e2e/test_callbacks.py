"""Callbacks to the execute request's subscriber, received by a server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.conftest import free_port, wait_status
from tests.e2e.test_api import assert_exception
from tests.ogc import assert_valid


class Receiver:
    """Records what is POSTed to it; answers with the statuses queued in `answers`."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        self.answers: list[int] = []
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.delay)
                status = receiver.answers.pop(0) if receiver.answers else 200
                receiver.received.append((self.path, json.loads(body)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def at(self, path: str) -> list[dict]:
        return [body for where, body in self.received if where == path]

    def wait_for(self, path: str, count: int = 1, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.at(path)) >= count:
                return self.at(path)
            time.sleep(0.05)
        raise AssertionError(f"{path}: got {self.received}")


@pytest.fixture
def http(server_factory) -> Iterator[httpx.Client]:
    server = server_factory(env={"CALLBACK_ALLOW_PRIVATE": "true", "CALLBACK_TIMEOUT": "2"})
    with server.client() as client:
        yield client


def subscriber(receiver: Receiver) -> dict[str, str]:
    return {
        "successUri": receiver.url + "/success",
        "inProgressUri": receiver.url + "/progress",
        "failedUri": receiver.url + "/failed",
    }


def test_progress_then_results_on_success(http: httpx.Client, receiver: Receiver) -> None:
    body = {
        "inputs": {"stringInput": "called back", "pause": 2},
        "subscriber": subscriber(receiver),
    }
    job = http.post(
        "/processes/echo/execution", json=body, headers={"Prefer": "respond-async"}
    ).json()
    (results,) = receiver.wait_for("/success")
    assert results == {"stringInput": "called back"}
    progress = receiver.at("/progress")
    assert progress, "no progress callback"
    for status in progress:
        assert_valid("statusInfo", status)
        assert status["jobID"] == job["jobID"] and status["status"] == "running"
    assert receiver.at("/failed") == []
    # the success came last
    assert receiver.received[-1][0] == "/success"


def test_results_document_follows_the_requested_forms(
    http: httpx.Client, receiver: Receiver
) -> None:
    body = {
        "inputs": {"stringInput": "x"},
        "outputs": {"stringInput": {"transmissionMode": "reference"}},
        "subscriber": {"successUri": receiver.url + "/success"},
    }
    http.post("/processes/echo/execution", json=body, headers={"Prefer": "respond-async"})
    (document,) = receiver.wait_for("/success")
    assert_valid("results", document)
    assert http.get(document["stringInput"]["href"]).json() == "x"


def test_status_on_failure(http: httpx.Client, receiver: Receiver) -> None:
    body = {"inputs": {"message": "boom", "code": 4}, "subscriber": subscriber(receiver)}
    job = http.post(
        "/processes/fail/execution", json=body, headers={"Prefer": "respond-async"}
    ).json()
    (status,) = receiver.wait_for("/failed")
    assert_valid("statusInfo", status)
    assert status["jobID"] == job["jobID"] and status["status"] == "failed"
    assert "boom" in status["message"]
    assert receiver.at("/success") == []


def test_a_failing_receiver_is_retried(http: httpx.Client, receiver: Receiver) -> None:
    receiver.answers = [500, 503]
    body = {"inputs": {"stringInput": "again"}, "subscriber": {"successUri": receiver.url + "/s"}}
    http.post("/processes/echo/execution", json=body, headers={"Prefer": "respond-async"})
    received = receiver.wait_for("/s", count=3)
    assert received == [{"stringInput": "again"}] * 3  # two refusals, then delivered
    time.sleep(1.5)
    assert len(receiver.at("/s")) == 3  # and not sent again once delivered


def test_a_slow_receiver_never_holds_the_job(http: httpx.Client, receiver: Receiver) -> None:
    receiver.delay = 5.0
    body = {"inputs": {"stringInput": "quick"}, "subscriber": subscriber(receiver)}
    started = time.monotonic()
    response = http.post("/processes/echo/execution", json=body)  # synchronous
    assert response.status_code == 200 and response.json() == "quick"
    assert time.monotonic() - started < 3


def test_internal_addresses_are_refused_by_default(server_factory, receiver: Receiver) -> None:
    server = server_factory()
    with server.client() as http:
        for uri in (
            receiver.url + "/x",
            "http://10.1.2.3/x",
            "http://[::1]:9/x",
            "http://169.254.169.254/",
        ):
            body = {"inputs": {"stringInput": "x"}, "subscriber": {"successUri": uri}}
            response = http.post("/processes/echo/execution", json=body)
            detail = assert_exception(response, 400, "invalid-parameter-value")["detail"]
            assert "subscriber.successUri" in detail
        bad_scheme = {
            "inputs": {"stringInput": "x"},
            "subscriber": {"failedUri": "file:///etc/passwd"},
        }
        detail = assert_exception(
            http.post("/processes/echo/execution", json=bad_scheme), 400, "invalid-parameter-value"
        )
        assert "subscriber.failedUri" in detail["detail"]
        assert http.get("/jobs").json()["numberMatched"] == 0
    time.sleep(0.5)
    assert receiver.received == []


def test_conformance_declares_callbacks(http: httpx.Client) -> None:
    classes = http.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/callback" in classes


def test_jobs_without_subscriber_send_nothing(http: httpx.Client, receiver: Receiver) -> None:
    job = http.post(
        "/processes/echo/execution",
        json={"inputs": {"stringInput": "x"}},
        headers={"Prefer": "respond-async"},
    ).json()
    wait_status(http, job["jobID"], {"successful"})
    time.sleep(0.3)
    assert receiver.received == []
