"""What a client gets for an execute request that is not quite right, and the examples
of the API document, which must run as they are."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import EXAMPLES, Server, wait_status
from tests.e2e.test_api import assert_exception


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(EXAMPLES, tmp_path_factory.mktemp("execute") / "data").start()
    yield server
    server.stop()


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.mark.parametrize(
    "media_type", ["application/xml", "text/plain", "multipart/form-data; boundary=x"]
)
def test_a_body_declared_as_another_type_is_a_415(http: httpx.Client, media_type: str) -> None:
    before = http.get("/jobs").json()["numberMatched"]
    response = http.post(
        "/processes/echo/execution",
        content=b"<execute><stringInput>x</stringInput></execute>",
        headers={"Content-Type": media_type},
    )
    body = assert_exception(response, 415, "unsupported-media-type")
    assert "application/json" in body["detail"] and media_type.split(";")[0] in body["detail"]
    assert http.get("/jobs").json()["numberMatched"] == before


@pytest.mark.parametrize(
    "media_type",
    [None, "application/json; charset=utf-8", "application/x-www-form-urlencoded"],
)
def test_json_bodies_are_accepted_as_curl_and_clients_send_them(
    server: Server, media_type: str | None
) -> None:
    headers = {"Content-Type": media_type} if media_type else {}
    request = httpx.Request(
        "POST",
        server.url + "/processes/echo/execution",
        content=b'{"inputs": {"stringInput": "x"}}',
        headers=headers,
    )
    assert ("content-type" in request.headers) == (media_type is not None)
    with httpx.Client() as client:
        response = client.send(request)
    assert response.status_code == 200, response.text
    assert response.json() == "x"


def test_inputs_outside_the_inputs_member_get_a_hint(http: httpx.Client) -> None:
    response = http.post("/processes/echo/execution", json={"stringInput": "x"})
    detail = assert_exception(response, 400, "invalid-parameter-value")["detail"]
    assert "'stringInput'" in detail
    assert '{"inputs": {"stringInput": "x"}}' in detail


def test_an_empty_body_says_it_has_no_inputs_member(http: httpx.Client) -> None:
    response = http.post("/processes/echo/execution", json={})
    detail = assert_exception(response, 400, "invalid-parameter-value")["detail"]
    assert "missing required input 'stringInput'" in detail
    assert 'no "inputs" member' in detail


def test_the_generic_execute_example_names_a_process_and_runs(http: httpx.Client) -> None:
    operation = http.get("/api").json()["paths"]["/processes/{processID}/execution"]["post"]
    (parameter,) = [p for p in operation["parameters"] if p["name"] == "processID"]
    example = operation["requestBody"]["content"]["application/json"]["example"]
    assert "outputs" not in example  # no invented outputs such as additionalProp1
    response = http.post(f"/processes/{parameter['example']}/execution", json=example)
    assert response.status_code == 200, response.text


def test_every_process_example_of_the_api_document_runs_as_it_is(http: httpx.Client) -> None:
    paths = http.get("/api").json()["paths"]
    examples = {
        path.split("/")[2]: item["post"]["requestBody"]["content"]["application/json"]["example"]
        for path, item in paths.items()
        if path.startswith("/processes/") and "{" not in path and path.endswith("/execution")
    }
    assert set(examples) == {p["id"] for p in http.get("/processes").json()["processes"]}
    jobs = {}
    for process_id, example in examples.items():
        response = http.post(
            f"/processes/{process_id}/execution",
            json=example,
            headers={"Prefer": "respond-async"},
        )
        assert response.status_code == 201, (process_id, response.text)
        jobs[process_id] = response.json()["jobID"]
    for process_id, job_id in jobs.items():
        status = wait_status(http, job_id, {"successful", "failed", "dismissed"}, timeout=60)
        # the `fail` example fails by design, with its own message and not for its inputs
        expected = "failed" if process_id == "fail" else "successful"
        assert status["status"] == expected, (process_id, status)


def test_a_400_lists_each_problem_with_the_input_it_is_about(http: httpx.Client) -> None:
    """So that a form shows each problem at its field, whatever the input's id holds."""
    body = {"inputs": {"doubleInput": "two", "surplus": 1}}
    response = http.post("/processes/echo/execution", json=body)
    document = assert_exception(response, 400, "invalid-parameter-value")
    problems = document["problems"]
    assert {p["input"] for p in problems} == {"surplus", "stringInput", "doubleInput"}
    assert all(p["detail"] in document["detail"] for p in problems)
    double = next(p for p in problems if p["input"] == "doubleInput")
    assert "'two' is not of type 'number'" in double["detail"]
