"""Clients that try to hurt the server or its other users, against the real server.

Outputs that a browser would run as a page (finding 8), bodies too large to hold or to pass
to a process (finding 10), forged Host headers (finding 13), and a keep-alive connection
that must survive an unexpected error (finding 17).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import Server, process_info, serve_files
from tests.e2e.test_api import assert_exception

SCRIPT = "<script>alert(document.cookie)</script>"
MAX_REQUEST_BYTES = 1024 * 1024
MAX_ARGUMENT = 131071

PAGE_YML = yaml.safe_dump(
    {
        "info": {**process_info("page"), "outputTransmission": ["value", "reference"]},
        "host": {"type": "subprocess", "command": ["python3", "page.py"]},
        "inputs": [{"id": "text", "schema": {"type": "string"}}],
        "outputs": [
            {"id": "page", "schema": {"type": "string", "contentMediaType": "text/html"}},
            {"id": "drawing", "schema": {"type": "string", "contentMediaType": "image/svg+xml"}},
            {"id": "length", "schema": {"type": "integer"}},
        ],
    }
)
PAGE_PY = """\
import json, sys
text = json.loads(sys.argv[-1])["text"]
page = f"<html><body>{text}</body></html>"
drawing = f"<svg xmlns='http://www.w3.org/2000/svg'>{text}</svg>"
print(json.dumps({"plugin_results": {"page": page, "drawing": drawing, "length": len(text)}}))
"""
#: a docker process whose image is never needed: its runs are refused before they start.
BOXED_YML = yaml.safe_dump(
    {
        "info": process_info("boxed"),
        "host": {"type": "docker"},
        "container": {
            # a closed loopback port: nothing leaves the machine, even if a run got through
            "image": "127.0.0.1:9/process-api-test/never-pulled:1",
            "pullPolicy": "if-not-present",
            "command": ["sh", "-c", ":"],
        },
        "inputs": [{"id": "text", "schema": {"type": "string"}}],
        "outputs": [{"id": "result", "schema": {}}],
    }
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    files = {"page.yml": PAGE_YML, "page.py": PAGE_PY, "boxed.yml": BOXED_YML}
    yield from serve_files(tmp_path_factory.mktemp("hostile"), files)


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def run_page(http: httpx.Client, text: str = SCRIPT, **body: object) -> httpx.Response:
    return http.post("/processes/page/execution", json={"inputs": {"text": text}, **body})


def job_of(response: httpx.Response) -> str:
    return response.headers["link"].split("/jobs/")[1].split(">")[0]


def assert_download(response: httpx.Response) -> None:
    """Served so that no browser runs it as a page of the API's origin."""
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.headers["content-security-policy"] == "sandbox"
    assert response.headers["x-content-type-options"] == "nosniff"


def job_count(http: httpx.Client) -> int:
    return int(http.get("/jobs", params={"limit": 1000}).json()["numberMatched"])


def peak_rss_kib(server: Server) -> int:
    assert server.proc is not None
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1])


# -- finding 8: outputs a browser would run ---------------------------------------------


def test_finding_8_html_output_of_a_sync_execution_is_a_sandboxed_download(
    http: httpx.Client,
) -> None:
    response = run_page(http, outputs={"page": {}})
    assert_download(response)
    assert response.headers["content-type"].startswith("text/html")
    assert SCRIPT in response.text  # the value itself is unchanged


def test_finding_8_html_and_svg_outputs_by_id_are_sandboxed_downloads(http: httpx.Client) -> None:
    job = job_of(run_page(http, outputs={"page": {}}))
    page = http.get(f"/jobs/{job}/results/page")
    assert_download(page)
    assert page.headers["content-disposition"] == 'attachment; filename="page"'
    assert SCRIPT in page.text
    drawing = http.get(f"/jobs/{job}/results/drawing")
    assert_download(drawing)
    assert drawing.headers["content-type"].startswith("image/svg+xml")


def test_finding_8_multipart_results_are_sandboxed_downloads(http: httpx.Client) -> None:
    response = run_page(http)
    assert response.headers["content-type"].startswith("multipart/related")
    assert_download(response)
    assert_download(http.get(f"/jobs/{job_of(response)}/results"))


def test_finding_8_json_output_stays_inline(http: httpx.Client) -> None:
    job = job_of(run_page(http, outputs={"page": {}}))
    length = http.get(f"/jobs/{job}/results/length")
    assert length.json() == len(SCRIPT)
    assert "content-disposition" not in length.headers
    assert length.headers["x-content-type-options"] == "nosniff"


def test_finding_8_every_response_says_nosniff(http: httpx.Client) -> None:
    responses = [
        http.get("/conformance"),
        http.get("/processes", params={"f": "html"}),
        http.get("/jobs/no-such-job"),
        http.get("/no/such/route"),
        http.post("/processes/page/execution", content=b"{not json"),
    ]
    assert [r.status_code for r in responses] == [200, 200, 404, 404, 400]
    assert responses[1].headers["content-type"].startswith("text/html")
    for response in responses:
        assert response.headers["x-content-type-options"] == "nosniff", response.request.url


# -- finding 10: bodies too large or not what the standard defines ----------------------


def test_finding_10_a_60_mb_body_is_refused_unread(server: Server, http: httpx.Client) -> None:
    before_jobs, before_rss = job_count(http), peak_rss_kib(server)
    body = b'{"inputs": {"text": "' + b"a" * (60 * 1024 * 1024) + b'"}}'
    started = time.monotonic()
    response = http.post("/processes/page/execution", content=body)
    elapsed = time.monotonic() - started
    document = assert_exception(response, 413, "payload-too-large")
    assert str(MAX_REQUEST_BYTES) in document["detail"]
    assert "MAX_REQUEST_BYTES" in document["detail"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert elapsed < 30, elapsed  # refused on its Content-Length, not after parsing it
    growth_mib = (peak_rss_kib(server) - before_rss) / 1024
    assert growth_mib < 30, f"the server's peak memory grew by {growth_mib:.0f} MiB"
    assert job_count(http) == before_jobs
    # The connection and the server are still fine for the next request.
    assert http.get("/conformance").status_code == 200


def test_finding_10_a_chunked_body_over_the_limit_is_refused(http: httpx.Client) -> None:
    before = job_count(http)

    def chunks() -> Iterator[bytes]:
        yield b'{"inputs": {"text": "'
        for _ in range(3 * 16):  # 3 MiB, with no Content-Length
            yield b"a" * (64 * 1024)
        yield b'"}}'

    response = http.post("/processes/page/execution", content=chunks())
    assert response.request.headers["transfer-encoding"] == "chunked"
    document = assert_exception(response, 413, "payload-too-large")
    assert str(MAX_REQUEST_BYTES) in document["detail"]
    assert job_count(http) == before


def test_finding_10_an_unknown_execute_member_is_refused_by_name(http: httpx.Client) -> None:
    before = job_count(http)
    response = run_page(http, text="hi", stash="x" * 1000)
    document = assert_exception(response, 400, "invalid-parameter-value")
    assert "'stash'" in document["detail"]
    assert job_count(http) == before


def test_finding_10_mode_of_the_drafts_is_still_accepted(http: httpx.Client) -> None:
    response = run_page(http, text="hi", mode="sync", response="document")
    assert response.status_code == 200, response.text
    assert response.json()["length"] == 2


def test_finding_10_a_deeply_nested_body_is_a_400(http: httpx.Client) -> None:
    for depth in (150, 100_000):
        nested = "[" * depth + "]" * depth
        body = '{"inputs": {"text": "x", "extra": ' + nested + "}}"
        response = http.post("/processes/page/execution", content=body)
        document = assert_exception(response, 400, "invalid-parameter-value")
        assert "100 levels" in document["detail"]


def test_finding_10_inputs_longer_than_one_argument_are_413_on_subprocess(
    http: httpx.Client,
) -> None:
    before = job_count(http)
    response = run_page(http, text="a" * 200_000)
    document = assert_exception(response, 413, "payload-too-large")
    assert str(MAX_ARGUMENT) in document["detail"]
    assert "by reference" in document["detail"]
    assert job_count(http) == before
    # Just under the limit still runs.
    fits = run_page(http, text="a" * 100_000, outputs={"length": {}})
    assert fits.status_code == 200, fits.text
    assert fits.json() == 100_000


def test_finding_10_inputs_longer_than_one_argument_are_413_on_docker(
    docker_engine: None, http: httpx.Client
) -> None:
    response = http.post("/processes/boxed/execution", json={"inputs": {"text": "a" * 200_000}})
    document = assert_exception(response, 413, "payload-too-large")
    assert "docker host" in document["detail"]
    assert str(MAX_ARGUMENT) in document["detail"]


# -- finding 13: links poisoned through the Host header ---------------------------------


def test_finding_13_trusted_hosts_refuse_a_forged_host(server_factory, tmp_path: Path) -> None:
    plugins = tmp_path / "trusted-plugins"
    plugins.mkdir()
    (plugins / "page.yml").write_text(PAGE_YML)
    (plugins / "page.py").write_text(PAGE_PY)
    server: Server = server_factory(plugins, start=False)
    server.extra_env["TRUSTED_HOSTS"] = f"127.0.0.1:{server.port}, api.example.org"
    server.start()
    with server.client() as http:
        assert http.get("/conformance").status_code == 200
        forged = http.get("/processes", headers={"Host": "evil.example"})
        document = assert_exception(forged, 400, "invalid-parameter-value")
        assert "evil.example" in document["detail"]
        assert "TRUSTED_HOSTS" in document["detail"]
        assert forged.headers["x-content-type-options"] == "nosniff"
        wrong_port = http.get("/conformance", headers={"Host": "127.0.0.1:1"})
        assert wrong_port.status_code == 400
        named = http.get("/processes", headers={"Host": "api.example.org:8443"})
        assert named.status_code == 200
        assert named.json()["links"][0]["href"].startswith("http://api.example.org:8443/")


# -- finding 17: an unexpected error on a keep-alive connection -------------------------


def local_port(response: httpx.Response) -> int:
    """The client's port of the connection the response came on."""
    return int(response.extensions["network_stream"].get_extra_info("client_addr")[1])


def test_finding_17_an_unexpected_error_keeps_the_connection(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    plugins = tmp_path / "damaged-plugins"
    plugins.mkdir()
    (plugins / "page.yml").write_text(PAGE_YML)
    (plugins / "page.py").write_text(PAGE_PY)
    # On an SQLite file: the record is damaged in it.
    database = tmp_path / "data" / "jobs.sqlite"
    server = server_factory(plugins, env={"DB_PATH": str(database)})
    with server.client() as http:
        job = job_of(run_page(http, text="hi", outputs={"length": {}}))
        # A record the server cannot read (a damaged database): a real unexpected error.
        with contextlib.closing(sqlite3.connect(database)) as db, db:
            db.execute("UPDATE jobs SET results = '{damaged' WHERE id = ?", (job,))
        broken = http.get(f"/jobs/{job}/results")
        document = assert_exception(broken, 500, "server-error")
        assert document["detail"] == "an unexpected error occurred"
        assert "damaged" not in broken.text
        assert broken.headers["x-content-type-options"] == "nosniff"
        after = http.get("/conformance")
        assert after.status_code == 200
        assert local_port(after) == local_port(broken), "the connection was not kept"
        page = http.get(f"/jobs/{job}/results", headers={"Accept": "text/html"})
        assert page.status_code == 500
        assert page.headers["content-type"].startswith("text/html")
        assert http.get("/conformance").status_code == 200
        assert "JSONDecodeError" in server.output()  # logged with its traceback
