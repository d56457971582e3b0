"""The job-list conformance class: filters, stable paging and their links."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, wait_status
from tests.e2e.test_api import assert_exception, rels
from tests.ogc import assert_valid


def run_echo(http: httpx.Client, text: str) -> str:
    response = http.post("/processes/echo/execution", json={"inputs": {"stringInput": text}})
    assert response.status_code == 200
    return response.headers["link"].split("/jobs/")[1].split(">")[0]


def ids(document: dict) -> list[str]:
    return [job["jobID"] for job in document["jobs"]]


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def test_paging_neither_repeats_nor_skips_while_jobs_are_added(http: httpx.Client) -> None:
    older = [run_echo(http, f"old {i}") for i in range(5)]
    first = http.get("/jobs", params={"limit": 2}).json()
    assert_valid("jobList", first)
    assert ids(first) == older[:2:-1]
    # new jobs arrive between two page requests
    newer = [run_echo(http, f"new {i}") for i in range(3)]
    seen = ids(first)
    page = first
    while "next" in rels(page):
        page = http.get(rels(page)["next"]["href"]).json()
        assert_valid("jobList", page)
        seen += ids(page)
    assert seen == older[::-1]
    # back from the second page: the first page as it was
    second = http.get(rels(first)["next"]["href"]).json()
    assert ids(http.get(rels(second)["prev"]["href"]).json()) == ids(first)
    # and before the first page: the jobs added since
    newest = http.get("/jobs", params={"limit": 2, "before": ids(first)[0]}).json()
    assert ids(newest) == newer[1::-1]  # the two just after it, newest first


def test_links_keep_the_filters(http: httpx.Client) -> None:
    for i in range(3):
        run_echo(http, str(i))
    http.post("/processes/stats/execution", json={"inputs": {"numbers": [1]}})
    page = http.get("/jobs", params={"processID": "echo", "limit": 1}).json()
    links = rels(page)
    for rel in ("self", "alternate", "next"):
        assert "processID=echo" in links[rel]["href"], links[rel]
    assert links["alternate"]["type"] == "text/html"
    following = http.get(links["next"]["href"]).json()
    assert [j["processID"] for j in following["jobs"]] == ["echo"]


def test_datetime_filter(http: httpx.Client) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    job_id = run_echo(http, "x")
    status = http.get(f"/jobs/{job_id}").json()
    after = datetime.now(UTC) + timedelta(seconds=1)

    def matched(value: str) -> list[str]:
        response = http.get("/jobs", params={"datetime": value})
        assert response.status_code == 200, response.text
        return ids(response.json())

    iso = lambda moment: moment.isoformat().replace("+00:00", "Z")  # noqa: E731
    assert matched(f"{iso(before)}/{iso(after)}") == [job_id]
    assert matched(f"{iso(before)}/..") == [job_id]
    assert matched(f"../{iso(after)}") == [job_id]
    assert matched(f"/{iso(before)}") == []
    assert matched(f"{iso(after)}/..") == []
    assert matched(status["created"]) == [job_id]  # the instant as the server wrote it
    assert matched("") == [job_id]  # a form's blank field filters nothing (the jobs page's)
    for bad in ("yesterday", "2026-13-01T00:00:00Z", "../..", "2026-01-02T00:00:00Z/2026-01-01"):
        body = assert_exception(
            http.get("/jobs", params={"datetime": bad}), 400, "invalid-parameter-value"
        )
        assert "datetime" in body["detail"]


def test_duration_filters(http: httpx.Client) -> None:
    quick = run_echo(http, "quick")
    slow = http.post(
        "/processes/echo/execution",
        json={"inputs": {"stringInput": "slow", "pause": 2}},
        headers={"Prefer": "respond-async"},
    ).json()["jobID"]
    wait_status(http, slow, {"successful"})
    assert ids(http.get("/jobs", params={"minDuration": 2}).json()) == [slow]
    assert ids(http.get("/jobs", params={"maxDuration": 1}).json()) == [quick]
    assert ids(http.get("/jobs", params={"minDuration": 0, "maxDuration": 60}).json()) == [
        slow,
        quick,
    ]
    for name in ("minDuration", "maxDuration"):
        body = assert_exception(
            http.get("/jobs", params={name: "soon"}), 400, "invalid-parameter-value"
        )
        assert name in body["detail"]


def test_accepted_jobs_are_listed_only_when_asked_for(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    # On an SQLite file: the waiting job is written into it.
    database = tmp_path / "data" / "jobs.sqlite"
    server = server_factory(env={"DB_PATH": str(database)})
    with server.client() as http:
        finished = run_echo(http, "done")
        # A job waiting for its turn, as a queue under a resource budget leaves it.
        waiting = str(uuid.uuid4())
        with sqlite3.connect(database) as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (finished,)).fetchone()
            names = [d[0] for d in db.execute("SELECT * FROM jobs LIMIT 0").description]
            values = dict(zip(names, row, strict=True))
            values.update(id=waiting, status="accepted", started=None, finished=None, results=None)
            values["created"] = values["updated"]
            marks = ",".join("?" * len(names))
            db.execute(
                f"INSERT INTO jobs ({','.join(names)}) VALUES ({marks})", list(values.values())
            )
        assert ids(http.get("/jobs").json()) == [finished]
        assert ids(http.get("/jobs", params={"status": "accepted"}).json()) == [waiting]
        both = http.get("/jobs", params=[("status", "accepted"), ("status", "successful")]).json()
        assert set(ids(both)) == {finished, waiting}


def test_page_positions_must_be_jobs(http: httpx.Client) -> None:
    body = assert_exception(
        http.get("/jobs", params={"after": "nope"}), 400, "invalid-parameter-value"
    )
    assert "after" in body["detail"]
    assert http.get("/jobs", params={"limit": 5000}).status_code == 200  # lowered to the maximum
    assert_exception(http.get("/jobs", params={"limit": 0}), 400, "invalid-parameter-value")


def test_number_matched_is_counted_up_to_its_bound(
    server_factory: Callable[..., Server],
) -> None:
    # Past JOB_LIST_COUNT_MAX matches the count stops, and numberMatched is left out (the
    # standard lets it be): a count of every match would read them all.
    server = server_factory(env={"JOB_LIST_COUNT_MAX": "2"})
    with server.client() as http:
        for i in range(3):
            run_echo(http, str(i))
        http.post("/processes/stats/execution", json={"inputs": {"numbers": [1]}})
        stats = http.get("/jobs", params={"processID": "stats"}).json()
        assert stats["numberMatched"] == 1
        page = http.get("/jobs", params={"processID": "echo", "limit": 1}).json()
        assert_valid("jobList", page)
        assert "numberMatched" not in page
        assert page["numberReturned"] == 1 and "next" in rels(page)
        assert "numberMatched" not in http.get("/jobs").json()
        shown = http.get("/jobs", params={"f": "html"}).text
        assert "4 of more than 2 job(s)" in shown
        shown = http.get("/jobs", params={"f": "html", "processID": "stats"}).text
        assert "1 of 1 job(s)" in shown
