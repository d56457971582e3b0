"""The OGC API - Processes 1.0 endpoints, against the real server and the official schemas."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import DATA, EXAMPLES, Server, wait_status
from tests.ogc import assert_valid

OGC_EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests of this module that do not depend on the job list."""
    server = Server(EXAMPLES, tmp_path_factory.mktemp("api") / "data").start()
    yield server
    server.stop()


@pytest.fixture
def client(shared_server: Server) -> Iterator[httpx.Client]:
    with shared_server.client() as http:
        yield http


def assert_exception(response: httpx.Response, status: int, type_suffix: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert_valid("exception", body)
    assert body["type"].endswith(type_suffix), body
    assert body["status"] == status
    assert body["detail"]
    return body


def rels(document: dict) -> dict[str, dict]:
    return {link["rel"]: link for link in document["links"]}


def test_landing_page_links_everything(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    document = response.json()
    assert_valid("landingPage", document)
    links = rels(document)
    assert links["service-desc"]["href"].endswith("/api")
    assert links["service-desc"]["type"] == "application/vnd.oai.openapi+json;version=3.0"
    assert links["service-doc"]["href"].endswith("/swagger/")
    for rel in ("conformance", "processes", "job-list"):
        href = links[f"http://www.opengis.net/def/rel/ogc/1.0/{rel}"]["href"]
        assert client.get(href).status_code == 200


def test_conformance_declares_the_implemented_classes(client: httpx.Client) -> None:
    document = client.get("/conformance").json()
    assert_valid("confClasses", document)
    for name in ("core", "ogc-process-description", "json", "html", "oas30", "job-list", "dismiss"):
        assert CONF + name in document["conformsTo"]


def test_api_document_is_openapi_30(client: httpx.Client) -> None:
    from openapi_spec_validator import validate

    response = client.get("/api")
    assert response.headers["content-type"] == "application/vnd.oai.openapi+json;version=3.0"
    document = response.json()
    assert document["openapi"].startswith("3.0")
    validate(document)
    assert "/processes/{processID}/execution" in document["paths"]
    # in the order of the standard's sections (not the order the server tries its routes)
    assert list(document["paths"])[:4] == ["/", "/conformance", "/api", "/processes"]
    # each process has its execute request body spelt out from its input schemas
    echo = document["paths"]["/processes/echo/execution"]["post"]
    body = echo["requestBody"]["content"]["application/json"]["schema"]
    inputs = body["properties"]["inputs"]
    assert inputs["required"] == ["stringInput"]
    assert {"type": "string"} in inputs["properties"]["stringInput"]["anyOf"]
    assert set(inputs["properties"]) == {
        "stringInput",
        "pause",
        "doubleInput",
        "arrayInput",
        "choiceInput",
    }


def test_swagger_ui_is_served_without_internet(client: httpx.Client) -> None:
    page = client.get("/swagger/")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert "http" not in page.text.split("<body>")[1].split("</body>")[0]  # no CDN
    assert client.get("/swagger/static/swagger-ui-bundle.js").status_code == 200
    assert client.get("/swagger/static/swagger-ui.css").status_code == 200


def test_process_list_and_paging(client: httpx.Client) -> None:
    document = client.get("/processes").json()
    assert_valid("processList", document)
    assert [p["id"] for p in document["processes"]] == ["echo", "fail", "rating", "stats"]
    for summary in document["processes"]:
        assert_valid("processSummary", summary)
    first = client.get("/processes", params={"limit": 2}).json()
    assert [p["id"] for p in first["processes"]] == ["echo", "fail"]
    second = client.get(rels(first)["next"]["href"]).json()
    assert [p["id"] for p in second["processes"]] == ["rating", "stats"]
    assert "next" not in rels(second)
    back = client.get(rels(second)["prev"]["href"]).json()
    assert [p["id"] for p in back["processes"]] == ["echo", "fail"]
    assert_exception(client.get("/processes", params={"limit": 0}), 400, "invalid-parameter-value")


def test_process_description(client: httpx.Client) -> None:
    document = client.get("/processes/echo").json()
    assert_valid("process", document)
    assert document["inputs"]["stringInput"]["schema"] == {"type": "string"}
    assert document["inputs"]["pause"]["minOccurs"] == 0
    assert document["inputs"]["arrayInput"]["maxOccurs"] == 10
    # literalDataDomain is published as the equivalent schema
    assert document["inputs"]["choiceInput"]["schema"] == {
        "type": "string",
        "enum": ["red", "green", "blue"],
    }
    assert document["outputs"]["stringInput"]["schema"] == {"type": "string"}
    execute = rels(document)["http://www.opengis.net/def/rel/ogc/1.0/execute"]
    assert execute["href"].endswith("/processes/echo/execution")


def test_unknown_process_and_job(client: httpx.Client) -> None:
    assert_exception(client.get("/processes/nope"), 404, "no-such-process")
    assert_exception(client.post("/processes/nope/execution", json={}), 404, "no-such-process")
    assert_exception(client.get("/jobs/nope"), 404, "no-such-job")
    assert_exception(client.get("/jobs/nope/results"), 404, "no-such-job")
    assert_exception(client.get("/jobs/nope/logs"), 404, "no-such-job")


def test_sync_execution_raw_single_output(client: httpx.Client) -> None:
    response = client.post("/processes/echo/execution", json={"inputs": {"stringInput": "héllo"}})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == "héllo"
    assert "preference-applied" not in response.headers
    # the job exists, and is recorded as successful
    job_url = response.headers["link"].split(">")[0].lstrip("<")
    status = client.get(job_url).json()
    assert_valid("statusInfo", status)
    assert status["status"] == "successful" and status["progress"] == 100


def test_sync_execution_document(client: httpx.Client) -> None:
    body = {"inputs": {"numbers": [1, 2, 3.5]}, "response": "document"}
    response = client.post("/processes/stats/execution", json=body)
    assert response.status_code == 200
    document = response.json()
    assert_valid("results", document)
    assert document == {"count": 3, "sum": 6.5, "min": 1, "max": 3.5, "mean": 2.167}


def test_sync_execution_selected_output(client: httpx.Client) -> None:
    body = {"inputs": {"numbers": [2, 4]}, "outputs": {"mean": {}}}
    response = client.post("/processes/stats/execution", json=body)
    assert response.status_code == 200 and response.json() == 3


def test_sync_execution_several_raw_outputs_are_multipart(client: httpx.Client) -> None:
    response = client.post(
        "/processes/echo/execution", json={"inputs": {"stringInput": "a", "doubleInput": 2.5}}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("multipart/related")
    boundary = response.headers["content-type"].split('boundary="')[1].split('"')[0]
    parts = [p for p in response.text.split(f"--{boundary}") if p.strip() not in ("", "--")]
    contents = {
        p.split("Content-ID: <")[1].split(">")[0]: p.split("\r\n\r\n")[1].strip() for p in parts
    }
    assert contents == {"stringInput": '"a"', "doubleInput": "2.5"}


def test_body_without_json_content_type_is_read_as_json(shared_server: Server) -> None:
    # curl -d sends application/x-www-form-urlencoded
    response = httpx.post(
        shared_server.url + "/processes/echo/execution",
        content='{"inputs": {"stringInput": "x"}}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200 and response.json() == "x"


def test_async_execution(client: httpx.Client) -> None:
    response = client.post(
        "/processes/echo/execution",
        json={"inputs": {"stringInput": "later"}},
        headers={"Prefer": "respond-async"},
    )
    assert response.status_code == 201
    assert response.headers["preference-applied"] == "respond-async"
    status = response.json()
    assert_valid("statusInfo", status)
    assert response.headers["location"].endswith(f"/jobs/{status['jobID']}")
    final = wait_status(client, status["jobID"], {"successful"})
    assert_valid("statusInfo", final)
    results_link = rels(final)["http://www.opengis.net/def/rel/ogc/1.0/results"]["href"]
    results = client.get(results_link)
    assert results.status_code == 200
    assert results.json() == "later"  # raw, as the execute request asked (by default)


def test_prefer_wait_answers_sync_or_async(client: httpx.Client) -> None:
    quick = client.post(
        "/processes/echo/execution",
        json={"inputs": {"stringInput": "q"}},
        headers={"Prefer": "wait=10"},
    )
    assert quick.status_code == 200 and quick.json() == "q"
    assert quick.headers["preference-applied"] == "wait=10"
    started = time.monotonic()
    slow = client.post(
        "/processes/echo/execution",
        json={"inputs": {"stringInput": "s", "pause": 5}},
        headers={"Prefer": "wait=1, handling=lenient"},
    )
    assert slow.status_code == 201
    assert time.monotonic() - started < 4
    assert slow.json()["status"] in ("accepted", "running")
    client.delete(f"/jobs/{slow.json()['jobID']}")


def test_results_before_the_job_ends(client: httpx.Client) -> None:
    job = client.post(
        "/processes/echo/execution",
        json={"inputs": {"stringInput": "x", "pause": 10}},
        headers={"Prefer": "respond-async"},
    ).json()
    assert_exception(client.get(f"/jobs/{job['jobID']}/results"), 404, "result-not-ready")
    assert client.delete(f"/jobs/{job['jobID']}").json()["status"] == "dismissed"


@pytest.mark.parametrize(
    ("inputs", "named"),
    [
        ({}, "missing required input 'stringInput'"),
        ({"stringInput": "a", "colour": 1}, "unknown input 'colour'"),
        ({"stringInput": 5}, "input 'stringInput' is not valid"),
        ({"stringInput": "a", "pause": -1}, "input 'pause' is not valid"),
        ({"stringInput": "a", "arrayInput": list(range(11))}, "at most 10 values"),
        ({"stringInput": "a", "choiceInput": "pink"}, "input 'choiceInput' is not valid"),
    ],
)
def test_invalid_execute_requests_name_the_input(
    client: httpx.Client, inputs: dict, named: str
) -> None:
    before = client.get("/jobs").json()["numberMatched"]
    response = client.post("/processes/echo/execution", json={"inputs": inputs})
    body = assert_exception(response, 400, "invalid-parameter-value")
    assert named in body["detail"]
    assert client.get("/jobs").json()["numberMatched"] == before  # nothing was started


def test_malformed_bodies(client: httpx.Client) -> None:
    broken = client.post("/processes/echo/execution", content=b"{not json")
    assert "not valid JSON" in assert_exception(broken, 400, "invalid-parameter-value")["detail"]
    wrong = client.post("/processes/echo/execution", json={"inputs": [1, 2]})
    assert "inputs" in assert_exception(wrong, 400, "invalid-parameter-value")["detail"]
    bad_output = client.post(
        "/processes/echo/execution", json={"inputs": {"stringInput": "a"}, "outputs": {"zzz": {}}}
    )
    assert "zzz" in assert_exception(bad_output, 400, "invalid-parameter-value")["detail"]


def test_job_list(server_factory) -> None:
    with server_factory().client() as client:
        check_job_list(client)


def check_job_list(client: httpx.Client) -> None:
    ids = []
    for text in ("one", "two", "three"):
        response = client.post("/processes/echo/execution", json={"inputs": {"stringInput": text}})
        ids.append(response.headers["link"].split("/jobs/")[1].split(">")[0])
    client.post("/processes/stats/execution", json={"inputs": {"numbers": [1]}})
    document = client.get("/jobs").json()
    assert_valid("jobList", document)
    echo = client.get("/jobs", params={"processID": "echo"}).json()
    assert [j["jobID"] for j in echo["jobs"]] == ids[::-1]  # newest first
    page = client.get("/jobs", params={"processID": "echo", "limit": 2}).json()
    assert [j["jobID"] for j in page["jobs"]] == ids[:0:-1]
    rest = client.get(rels(page)["next"]["href"]).json()
    assert [j["jobID"] for j in rest["jobs"]] == ids[:1]
    both = client.get("/jobs", params={"processID": "echo,stats", "status": "successful"}).json()
    assert both["numberMatched"] == 4
    assert client.get("/jobs", params={"status": "failed"}).json()["jobs"] == []
    assert_exception(
        client.get("/jobs", params={"status": "finished"}), 400, "invalid-parameter-value"
    )
    assert_exception(
        client.get("/jobs", params={"type": "service"}), 400, "invalid-parameter-value"
    )


@pytest.mark.parametrize(
    "path",
    ["/", "/conformance", "/processes", "/processes/echo", "/jobs"],
)
def test_html_for_browsers_and_f_html(client: httpx.Client, path: str) -> None:
    by_accept = client.get(path, headers={"Accept": BROWSER_ACCEPT})
    assert by_accept.status_code == 200
    assert by_accept.headers["content-type"].startswith("text/html")
    by_f = client.get(path, params={"f": "html"})
    assert by_f.headers["content-type"].startswith("text/html")
    as_json = client.get(path, params={"f": "json"}, headers={"Accept": BROWSER_ACCEPT})
    assert as_json.headers["content-type"] == "application/json"
    assert_exception(client.get(path, params={"f": "xml"}), 400, "invalid-parameter-value")


def test_job_pages_in_html_are_escaped(client: httpx.Client) -> None:
    evil = "<script>alert(1)</script>"
    response = client.post(
        "/processes/echo/execution",
        json={"inputs": {"stringInput": evil}},
        headers={"Prefer": "respond-async"},
    )
    job_id = response.json()["jobID"]
    wait_status(client, job_id, {"successful"})
    for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/results", f"/jobs/{job_id}/logs", "/jobs"):
        page = client.get(path, params={"f": "html"})
        assert page.status_code == 200, path
        assert "<script>" not in page.text, path
    results_page = client.get(f"/jobs/{job_id}/results", params={"f": "html"}).text
    assert "&lt;script&gt;" in results_page or "\\u003cscript\\u003e" in results_page
    error_page = client.get("/jobs/nope", headers={"Accept": BROWSER_ACCEPT})
    assert error_page.status_code == 404 and "text/html" in error_page.headers["content-type"]


def test_aws_batch_processes_need_aws(tmp_path: Path, server_factory) -> None:
    plugins = tmp_path / "compat"
    shutil.copytree(DATA / "dewberry-plugins", plugins)
    server = server_factory(plugins)
    with server.client() as http:
        listed = [p["id"] for p in http.get("/processes").json()["processes"]]
        assert "pyecho" in listed and "dfc" in listed
        inputs = {"tile": "t1", "epoch": "2020", "points": [1, 2]}
        response = http.post("/processes/dfc/execution", json={"inputs": inputs})
        body = assert_exception(response, 503, "service-unavailable")
        assert "AWS Batch is not configured" in body["detail"]
        assert http.get("/jobs").json()["numberMatched"] == 0


def test_unknown_route_is_an_ogc_exception(client: httpx.Client) -> None:
    assert_exception(client.get("/nothing-here"), 404, "not-found")
