"""The server driven by OWSLib's OGC API - Processes client, as a notebook user would drive it.

OWSLib 0.35 (`owslib.ogcapi.processes.Processes`) covers the landing page, conformance, the API
document, the process list, process descriptions and execution (sync, or async through
`Prefer: respond-async`). It has no methods for jobs: their status, results, list and dismissal
go through its generic `_request(method, path, kwargs=...)`, the code path of every other method,
with the same URL building, headers and error handling.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from owslib import ogcapi
from owslib.ogcapi.processes import Processes

from tests.conftest import EXAMPLES, Server

CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"
OGC_EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
REL_RESULTS = "http://www.opengis.net/def/rel/ogc/1.0/results"
ENDED = {"successful", "failed", "dismissed"}


@pytest.fixture(scope="module")
def owslib_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(EXAMPLES, tmp_path_factory.mktemp("owslib") / "data").start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _owslib_headers() -> Iterator[None]:
    """OWSLib keeps its request headers in a module-level dict and writes `Prefer` into it."""
    saved = dict(ogcapi.REQUEST_HEADERS)
    yield
    ogcapi.REQUEST_HEADERS.clear()
    ogcapi.REQUEST_HEADERS.update(saved)


@pytest.fixture
def api(owslib_server: Server) -> Processes:
    return Processes(owslib_server.url)


def job_status(api: Processes, job_id: str) -> dict:
    return api._request(path=f"jobs/{job_id}")


def wait_for(api: Processes, job_id: str, statuses: set[str], timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = job_status(api, job_id)
        if status["status"] in statuses or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def error_of(excinfo: pytest.ExceptionInfo[RuntimeError]) -> dict:
    """OWSLib raises RuntimeError(response.text): the OGC exception document."""
    return json.loads(str(excinfo.value))


def submit(api: Processes, process_id: str, inputs: dict) -> dict:
    status = api.execute(process_id, inputs, async_=True)
    assert api.response_headers["Preference-Applied"] == "respond-async"
    assert api.response_headers["Location"].endswith(f"/jobs/{status['jobID']}")
    return status


def test_landing_page_conformance_and_api_document(api: Processes, owslib_server: Server) -> None:
    assert api.url == owslib_server.url + "/"
    assert api.response["title"]
    conforms = api.conformance()["conformsTo"]
    for name in ("core", "ogc-process-description", "json", "job-list", "dismiss"):
        assert CONF + name in conforms
    # api() follows the service-desc link of type application/vnd.oai.openapi+json;version=3.0
    document = api.api()
    assert document["openapi"].startswith("3.0")
    assert "/processes/{processID}/execution" in document["paths"]


def test_list_processes(api: Processes) -> None:
    processes = {p["id"]: p for p in api.processes()}
    assert {"echo", "fail", "stats"} <= set(processes)
    assert processes["echo"]["title"] == "Echo"
    assert processes["stats"]["title"] == "Statistics"
    assert processes["fail"]["title"] == "Failing process"
    assert processes["echo"]["version"] == "1.0.0"
    assert {"sync-execute", "async-execute"} <= set(processes["echo"]["jobControlOptions"])


def test_describe_echo(api: Processes) -> None:
    echo = api.process("echo")
    assert echo["id"] == "echo" and echo["title"] == "Echo"
    inputs = echo["inputs"]
    assert list(inputs) == ["stringInput", "pause", "doubleInput", "arrayInput", "choiceInput"]
    assert inputs["stringInput"]["title"] == "A text"
    assert inputs["stringInput"]["schema"] == {"type": "string"}
    assert inputs["stringInput"]["minOccurs"] == 1
    assert inputs["pause"]["minOccurs"] == 0
    assert inputs["arrayInput"]["maxOccurs"] == 10
    assert inputs["choiceInput"]["schema"]["enum"] == ["red", "green", "blue"]
    assert set(echo["outputs"]) == {"stringInput", "doubleInput", "arrayInput", "choiceInput"}
    execute = [link for link in echo["links"] if link["href"].endswith("/processes/echo/execution")]
    assert execute, echo["links"]


def test_execute_sync_returns_the_results_document(api: Processes) -> None:
    inputs = {"stringInput": "héllo", "doubleInput": 2.5, "arrayInput": [1, 2, 3]}
    results = api.execute("echo", {**inputs, "choiceInput": "green"})
    assert results == {**inputs, "choiceInput": "green"}
    assert 'rel="monitor"' in api.response_headers["Link"]
    stats = api.execute("stats", {"numbers": [1, 2, 3.5]})
    assert stats == {"count": 3, "sum": 6.5, "min": 1, "max": 3.5, "mean": 2.167}


def test_execute_sync_raw_and_selected_outputs(api: Processes) -> None:
    assert api.execute("echo", {"stringInput": "plain"}, response="raw") == "plain"
    assert api.execute("stats", {"numbers": [2, 4]}, outputs={"mean": {}}) == {"mean": 3}


def test_execute_errors_reach_the_user(api: Processes) -> None:
    with pytest.raises(RuntimeError) as invalid:
        api.execute("echo", {"stringInput": 5})
    error = error_of(invalid)
    assert error["status"] == 400 and error["type"] == OGC_EXC + "invalid-parameter-value"
    assert "stringInput" in error["detail"]
    with pytest.raises(RuntimeError) as unknown:
        api.process("nope")
    assert error_of(unknown)["type"] == OGC_EXC + "no-such-process"
    with pytest.raises(RuntimeError) as failed:
        api.execute("fail", {"message": "disk full", "code": 3})
    assert "disk full" in error_of(failed)["detail"]


def test_execute_async_poll_and_results(api: Processes) -> None:
    job = submit(api, "echo", {"stringInput": "later", "arrayInput": [4]})
    assert job["processID"] == "echo" and job["status"] in ("accepted", "running")
    final = wait_for(api, job["jobID"], ENDED)
    assert final["status"] == "successful" and final["progress"] == 100
    results_href = next(link["href"] for link in final["links"] if link["rel"] == REL_RESULTS)
    assert results_href.endswith(f"/jobs/{job['jobID']}/results")
    results = api._request(path=f"jobs/{job['jobID']}/results")
    assert results == {"stringInput": "later", "arrayInput": [4]}


def test_failed_async_job(api: Processes) -> None:
    job = submit(api, "fail", {"message": "no luck"})
    final = wait_for(api, job["jobID"], ENDED)
    assert final["status"] == "failed"
    assert "no luck" in final["message"]
    with pytest.raises(RuntimeError) as results:
        api._request(path=f"jobs/{job['jobID']}/results")
    assert "no luck" in error_of(results)["detail"]


def test_list_jobs(api: Processes) -> None:
    ids = [submit(api, "echo", {"stringInput": text})["jobID"] for text in ("a", "b")]
    for job_id in ids:
        assert wait_for(api, job_id, ENDED)["status"] == "successful"
    listed = api._request(path="jobs", kwargs={"processID": "echo", "limit": 100})
    jobs = {job["jobID"]: job for job in listed["jobs"]}
    assert set(ids) <= set(jobs)
    assert all(job["processID"] == "echo" for job in listed["jobs"])
    assert all(jobs[job_id]["status"] == "successful" for job_id in ids)
    assert listed["numberReturned"] == len(listed["jobs"])
    successful = api._request(path="jobs", kwargs={"status": "successful", "limit": 100})
    assert set(ids) <= {job["jobID"] for job in successful["jobs"]}


def test_dismiss_a_running_job(api: Processes) -> None:
    job = submit(api, "echo", {"stringInput": "slow", "pause": 20})
    assert wait_for(api, job["jobID"], {"running", *ENDED})["status"] == "running"
    started = time.monotonic()
    dismissed = api._request(method="DELETE", path=f"jobs/{job['jobID']}")
    assert dismissed["jobID"] == job["jobID"] and dismissed["status"] == "dismissed"
    assert time.monotonic() - started < 10
    assert job_status(api, job["jobID"])["status"] == "dismissed"
    with pytest.raises(RuntimeError) as results:
        api._request(path=f"jobs/{job['jobID']}/results")
    assert error_of(results)["type"] == OGC_EXC + "job-dismissed"


def test_dismiss_a_finished_job(api: Processes) -> None:
    # A final status never changes: dismissing a finished job is refused, clearly (409),
    # and its results stay.
    job = submit(api, "echo", {"stringInput": "done"})
    assert wait_for(api, job["jobID"], ENDED)["status"] == "successful"
    with pytest.raises(RuntimeError) as refused:
        api._request(method="DELETE", path=f"jobs/{job['jobID']}")
    error = error_of(refused)
    assert error["type"] == OGC_EXC + "job-not-dismissable"
    assert "successful" in error["detail"]
    assert job_status(api, job["jobID"])["status"] == "successful"
