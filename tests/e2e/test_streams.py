"""Live job status and logs for every client: Server-Sent Events and followed JSON lines,
read while the process prints, from the instance that runs the job or another one."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, script_process, wait_status, wait_until

ASYNC = {"Prefer": "respond-async"}
EVENTS = {"Accept": "text/event-stream"}

#: prints a line, waits, prints another, waits, and answers.
TICKS = (
    "echo first; sleep 1.5; echo second >&2; sleep 1.5; "
    """echo '{"plugin_results": "done"}'"""
)


#: says how far it is, prints 30 lines, waits, prints one more and answers.
COUNTER = (
    """echo '{"progress": 40, "message": "counted"}'; seq 1 30; sleep 3; echo after; """
    """echo '{"plugin_results": "done"}'"""
)


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "ticks.yml").write_text(script_process("ticks", TICKS))
    (folder / "long.yml").write_text(script_process("long", "echo started; sleep 60"))
    (folder / "counter.yml").write_text(script_process("counter", COUNTER))
    return folder


@pytest.fixture
def server(server_factory: Callable[..., Server], plugins: Path) -> Server:
    return server_factory(plugins, env={"MAX_STREAMS": "2"})


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def submit(http: httpx.Client, process_id: str) -> str:
    response = http.post(f"/processes/{process_id}/execution", json={"inputs": {}}, headers=ASYNC)
    assert response.status_code == 201, response.text
    return str(response.json()["jobID"])


def events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The events of a Server-Sent Events stream, as they come."""
    fields: dict[str, Any] = {}
    for line in lines:
        if not line:
            if "event" in fields:
                yield fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = json.loads(value) if name == "data" else value


def test_a_followed_log_gives_each_line_as_it_is_printed_and_ends_with_the_job(
    http: httpx.Client,
) -> None:
    job_id = submit(http, "ticks")
    with http.stream("GET", f"/jobs/{job_id}/logs", params={"follow": "true"}) as stream:
        assert stream.headers["content-type"].startswith("application/x-ndjson")
        lines = stream.iter_lines()
        first = json.loads(next(lines))
        assert first["text"] == "first" and first["stream"] == "stdout"
        # read before the job printed the rest: the line came as it was printed
        assert http.get(f"/jobs/{job_id}").json()["status"] == "running"
        rest = [json.loads(line) for line in lines]
    assert [line["text"] for line in rest] == ["second", '{"plugin_results": "done"}']
    assert rest[0]["stream"] == "stderr"
    assert http.get(f"/jobs/{job_id}").json()["status"] == "successful"  # the stream ended with it
    whole = http.get(f"/jobs/{job_id}/logs").json()["logs"]
    assert [first, *rest] == whole


def test_log_events_resume_after_the_last_event_id_and_end_with_the_job(
    http: httpx.Client,
) -> None:
    job_id = submit(http, "ticks")
    with http.stream("GET", f"/jobs/{job_id}/logs", headers=EVENTS) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        received = events(stream.iter_lines())
        first = next(received)
    assert (first["event"], first["id"], first["data"]["text"]) == ("log", "1", "first")
    again = {**EVENTS, "Last-Event-ID": "1"}  # as an EventSource reconnects
    with http.stream("GET", f"/jobs/{job_id}/logs", headers=again) as stream:
        rest = list(events(stream.iter_lines()))
    assert [(e["event"], e.get("id")) for e in rest] == [("log", "2"), ("log", "3"), ("end", "end")]
    assert rest[0]["data"]["text"] == "second" and rest[-1]["data"] == {"status": "successful"}
    # an EventSource reconnecting after the end is told there is nothing more
    over = http.get(f"/jobs/{job_id}/logs", headers={**EVENTS, "Last-Event-ID": "end"})
    assert over.status_code == 204


def test_status_events_follow_the_job_until_it_ends(http: httpx.Client) -> None:
    job_id = submit(http, "ticks")
    with http.stream("GET", f"/jobs/{job_id}", headers=EVENTS) as stream:
        received = list(events(stream.iter_lines()))
    seen = [e["data"] for e in received]
    assert received[-1]["id"] == "end" and all("id" not in e for e in received[:-1])
    over = http.get(f"/jobs/{job_id}", headers={**EVENTS, "Last-Event-ID": "end"})
    assert over.status_code == 204
    superscript = "²".encode("latin-1")  # a digit to str.isdigit, not to int()
    odd = http.get(f"/jobs/{job_id}/logs", headers={**EVENTS, "Last-Event-ID": superscript})
    assert odd.status_code == 200  # not a number: from the start (it was a 500)
    assert all(e["jobID"] == job_id for e in seen)
    statuses = [e["status"] for e in seen]
    assert statuses[-1] == "successful" and "running" in statuses, statuses
    assert len(seen) == len({json.dumps(e, sort_keys=True) for e in seen})  # changes only
    # a browser's plain request still gets the page, a script's the JSON
    assert http.get(f"/jobs/{job_id}").json()["status"] == "successful"


def test_dropped_stream_clients_cost_nothing_and_streams_are_bounded(
    server: Server, http: httpx.Client
) -> None:
    job_id = submit(http, "long")
    wait_status(http, job_id, {"running"})
    for _ in range(3):  # MAX_STREAMS=2, opened and dropped three times over
        with server.client() as one, server.client() as two:
            with one.stream("GET", f"/jobs/{job_id}", headers=EVENTS) as a:
                with two.stream("GET", f"/jobs/{job_id}/logs?follow=true") as b:
                    # kept: an iterator let go of closes its connection (a dropped client)
                    status_events, lines = events(a.iter_lines()), b.iter_lines()
                    assert next(status_events)["event"] == "status"
                    assert json.loads(next(lines))["text"] == "started"
                    third = http.get(f"/jobs/{job_id}", headers=EVENTS)
                    assert third.status_code == 503 and "MAX_STREAMS" in third.text
                    assert third.headers["Retry-After"] == "5"
        time.sleep(0.5)  # the server sees the clients go at its next look
    assert http.get("/processes").status_code == 200
    assert http.delete(f"/jobs/{job_id}").json()["status"] == "dismissed"


def test_a_job_run_by_another_instance_is_streamed_and_a_stop_ends_the_streams(
    server_factory: Callable[..., Server], plugins: Path
) -> None:
    runner = server_factory(plugins)
    with runner.client() as http:
        job_id = submit(http, "ticks")
        wait_status(http, job_id, {"running"})
    other = server_factory(plugins)  # the same data directory and job database
    with other.client() as http:
        with http.stream("GET", f"/jobs/{job_id}/logs", params={"follow": "true"}) as stream:
            texts = [json.loads(line)["text"] for line in stream.iter_lines()]
        assert texts == ["first", "second", '{"plugin_results": "done"}']
        long_job = submit(http, "long")
        wait_status(http, long_job, {"running"})
        with http.stream("GET", f"/jobs/{long_job}", headers=EVENTS) as stream:
            lines = stream.iter_lines()
            wait_until(lambda: next(lines) == "event: status", 5, "a status event")
            started = time.monotonic()
            runner.stop(signal.SIGTERM)
            other.stop(signal.SIGTERM)
            list(lines)  # ends: the server stops, not only once the job does
        assert time.monotonic() - started < 20


def log_length(http: httpx.Client, job_id: str) -> int:
    return len(http.get(f"/jobs/{job_id}/logs").json()["logs"])


def test_one_stream_gives_the_last_lines_then_new_ones_and_the_status_as_it_changes(
    http: httpx.Client,
) -> None:
    job_id = submit(http, "counter")
    wait_until(lambda: log_length(http, job_id) >= 30, 10, "the first 30 lines")
    printed = http.get(f"/jobs/{job_id}/logs").json()["logs"]
    params = {"tail": "5", "withStatus": "true"}
    with http.stream("GET", f"/jobs/{job_id}/logs", params=params, headers=EVENTS) as stream:
        received = list(events(stream.iter_lines()))
    logged = [e for e in received if e["event"] == "log"]
    whole = http.get(f"/jobs/{job_id}/logs").json()["logs"]
    # the last five lines printed when it opened, numbered as in the whole log, then the rest
    first = len(printed) - 4
    assert [e["id"] for e in logged] == [str(n) for n in range(first, len(whole) + 1)]
    assert [e["data"] for e in logged] == whole[first - 1 :]
    assert logged[0]["data"]["text"] == "26" and logged[5]["data"]["text"] == "after"
    statuses = [e["data"] for e in received if e["event"] == "status"]
    assert statuses[0]["status"] == "running" and statuses[0]["message"] == "counted"
    assert statuses[-1]["status"] == "successful" and statuses[-1]["jobID"] == job_id
    assert [e["event"] for e in received[-2:]] == ["status", "end"]
    assert received[-1]["id"] == "end"
    # a page of the last lines, for scripts
    page = http.get(f"/jobs/{job_id}/logs", params={"tail": "2"}).json()
    assert page["logs"] == whole[-2:]
    assert http.get(f"/jobs/{job_id}/logs", params={"tail": "0"}).status_code == 400
    # without withStatus, the log stream stays log lines and its end
    with http.stream("GET", f"/jobs/{job_id}/logs", params={"tail": "1"}, headers=EVENTS) as stream:
        plain = [e["event"] for e in events(stream.iter_lines())]
    assert plain == ["log", "end"]


def test_a_job_page_refused_a_stream_polls_instead(server: Server, browser: Any) -> None:
    """MAX_STREAMS=2, both held: the page follows the job by polling."""
    from selenium.webdriver.common.by import By

    with server.client() as http:
        held = submit(http, "long")
        wait_status(http, held, {"running"})
        with server.client() as one, server.client() as two:
            with one.stream("GET", f"/jobs/{held}", headers=EVENTS) as a:
                with two.stream("GET", f"/jobs/{held}", headers=EVENTS) as b:
                    kept = events(a.iter_lines()), events(b.iter_lines())
                    assert [next(found)["event"] for found in kept] == ["status", "status"]
                    job_id = submit(http, "ticks")
                    wait_status(http, job_id, {"running"})
                    browser.get(f"{server.url}/jobs/{job_id}?f=html")

                    def shown(element_id: str) -> Any:
                        return browser.find_element(By.ID, element_id)  # also after a reload

                    polling = lambda: shown("log-note").get_attribute("data-polling")  # noqa: E731
                    wait_until(polling, 10, "polling")
                    wait_until(lambda: "second" in shown("log").text, 10, "a line printed later")
                    ended = lambda: shown("status").text == "successful"  # noqa: E731
                    wait_until(ended, 15, "the job's end")
        http.delete(f"/jobs/{held}")
