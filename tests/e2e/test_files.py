"""Files a process writes to its results location, served as results (subprocess host,
local storage): the bundled rating example, downloads with ranges and validators, the
listing of a job's files, and what a hostile process cannot make the server serve."""

from __future__ import annotations

import csv
import io
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import yaml

from process_api.api.files import MAX_LISTED
from tests.conftest import EXAMPLES, Server, wait_status, wait_until
from tests.e2e.test_api import assert_exception

RATING = {"width": 10, "slope": 0.001, "roughness": 0.035, "maxDepth": 1, "step": 0.25}

#: writes the files and symbolic links its inputs name (and `many` empty files), then
#: returns `returns`, with $RESULTS_DIR in it replaced by its results directory.
WRITER_PY = """\
import json, os, sys
inputs = json.loads(sys.argv[-1])
folder = os.environ["PROCESS_API_RESULTS_DIR"]
for number in range(inputs.get("many", 0)):
    open(os.path.join(folder, f"many-{number:05d}.txt"), "w").close()
for name, text in inputs.get("files", {}).items():
    path = os.path.join(folder, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as file:
        file.write(text)
for name, target in inputs.get("links", {}).items():
    os.symlink(target, os.path.join(folder, name))
returns = json.dumps(inputs["returns"]).replace("$RESULTS_DIR", json.dumps(folder)[1:-1])
print(json.dumps({"plugin_results": json.loads(returns)}))
"""

WRITER = {
    "info": {
        "id": "writer",
        "version": "1",
        "jobControlOptions": ["sync-execute", "async-execute"],
        "outputTransmission": ["value", "reference"],
    },
    "host": {"type": "subprocess", "command": ["python3", "writer.py"]},
    "inputs": [
        {"id": "files", "schema": {"type": "object"}, "minOccurs": 0},
        {"id": "links", "schema": {"type": "object"}, "minOccurs": 0},
        {"id": "many", "schema": {"type": "integer"}, "minOccurs": 0},
        {"id": "returns", "schema": {"type": "object"}},
    ],
    "outputs": [
        {"id": "doc", "schema": {"type": "string", "contentMediaType": "text/csv"}},
        {"id": "picture", "schema": {"type": "string", "contentMediaType": "image/png"}},
        {"id": "linked", "schema": {}},
        {"id": "record", "schema": {"type": "object"}},
        {"id": "text", "schema": {"type": "string"}},
        {"id": "config", "schema": {"type": "string", "contentMediaType": "application/yaml"}},
    ],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("files")
    plugins = root / "plugins"
    shutil.copytree(EXAMPLES, plugins)
    (plugins / "writer.yml").write_text(yaml.safe_dump(WRITER))
    (plugins / "writer.py").write_text(WRITER_PY)
    server = Server(plugins, root / "data").start()
    yield server
    server.stop()


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def job_id(response: httpx.Response) -> str:
    """The job of a synchronous answer, from its `rel="monitor"` link."""
    (monitor,) = [part for part in response.headers["link"].split(",") if "monitor" in part]
    return monitor.split("/jobs/")[1].split(">")[0]


def rating_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def run_rating(http: httpx.Client, **body: Any) -> httpx.Response:
    response = http.post("/processes/rating/execution", json={"inputs": RATING, **body})
    assert response.status_code in (200, 204), response.text
    return response


def write(http: httpx.Client, returns: dict[str, Any], **inputs: Any) -> httpx.Response:
    body = {"inputs": {"returns": returns, **inputs}, "response": "document"}
    return http.post("/processes/writer/execution", json=body)


# -- the rating example ------------------------------------------------------------


def test_the_rating_example_serves_its_csv_table_as_a_download(http: httpx.Client) -> None:
    response = run_rating(http, outputs={"table": {}})
    assert response.headers["content-type"] == "text/csv"
    assert int(response.headers["content-length"]) == len(response.content)
    rows = rating_rows(response.text)
    assert rows[0] == ["depth_m", "area_m2", "velocity_ms", "discharge_m3s"]
    assert [r[0] for r in rows[1:]] == ["0", "0.25", "0.5", "0.75", "1"]
    # Manning: Q = A R^(2/3) S^(1/2) / n, for a 10 m wide channel 1 m deep.
    assert abs(float(rows[-1][3]) - 10 * (10 / 12) ** (2 / 3) * 0.001**0.5 / 0.035) < 1e-3
    again = http.get(f"/jobs/{job_id(response)}/results/table")
    assert again.status_code == 200
    assert again.content == response.content
    assert again.headers["content-type"] == "text/csv"
    assert again.headers["accept-ranges"] == "bytes"
    assert again.headers["etag"].startswith('"') and again.headers["last-modified"]
    assert again.headers["content-security-policy"] == "sandbox"
    assert http.get(f"/jobs/{job_id(response)}/results/rows").json() == 5


def test_a_file_output_answers_ranges_conditions_and_head(http: httpx.Client) -> None:
    path = f"/jobs/{job_id(run_rating(http, outputs={'table': {}}))}/results/table"
    whole = http.get(path)
    size, etag = len(whole.content), whole.headers["etag"]
    first = http.get(path, headers={"Range": "bytes=0-6"})
    assert first.status_code == 206
    assert first.content == b"depth_m"
    assert first.headers["content-range"] == f"bytes 0-6/{size}"
    assert first.headers["content-length"] == "7"
    last = http.get(path, headers={"Range": "bytes=-10"})
    assert last.status_code == 206 and last.content == whole.content[-10:]
    beyond = http.get(path, headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{size}"
    several = http.get(path, headers={"Range": "bytes=0-1,4-5"})
    assert several.status_code == 200 and several.content == whole.content
    unchanged = http.get(path, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged.headers["etag"] == etag
    assert http.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    same = http.get(path, headers={"Range": "bytes=0-6", "If-Range": etag})
    assert same.status_code == 206
    changed = http.get(path, headers={"Range": "bytes=0-6", "If-Range": '"other"'})
    assert changed.status_code == 200 and changed.content == whole.content
    head = http.head(path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(size)
    assert head.headers["etag"] == etag


def test_a_file_output_by_value_in_a_document_is_a_link_to_the_file(http: httpx.Client) -> None:
    response = run_rating(http, response="document")
    document = response.json()
    assert document["rows"] == 5
    link = document["table"]
    assert link["type"] == "text/csv" and link["title"] == "table"
    assert link["href"].endswith(f"/jobs/{job_id(response)}/results/table")
    assert rating_rows(http.get(link["href"]).text)[1][0] == "0"
    later = http.get(f"/jobs/{job_id(response)}/results").json()
    assert later == document


def test_a_file_output_by_reference_is_a_link_header_and_a_multipart_location(
    http: httpx.Client, server: Server
) -> None:
    by_reference = run_rating(http, outputs={"table": {"transmissionMode": "reference"}})
    assert by_reference.status_code == 204
    header = by_reference.headers["link"]
    href = f"/jobs/{job_id(by_reference)}/results/table"
    assert href in header and 'type="text/csv"' in header
    both = run_rating(http)
    assert both.headers["content-type"].startswith("multipart/related")
    body = both.content.decode()
    table_part = body.split("Content-ID: <table>")[1].split("--")[0]
    assert "Content-Type: text/csv" in table_part
    assert f"Content-Location: {server.url}/jobs/{job_id(both)}/results/table" in table_part
    assert "depth_m" not in body  # the file is referenced, not inlined


def test_an_async_rating_job_gives_its_file_at_its_results(http: httpx.Client) -> None:
    response = http.post(
        "/processes/rating/execution",
        json={"inputs": RATING, "outputs": {"table": {}}},
        headers={"Prefer": "respond-async"},
    )
    assert response.status_code == 201, response.text
    job = response.json()["jobID"]
    assert wait_status(http, job, {"successful", "failed"})["status"] == "successful"
    results = http.get(f"/jobs/{job}/results")
    assert results.headers["content-type"] == "text/csv"
    assert rating_rows(results.text)[0][0] == "depth_m"


# -- the files of a job ------------------------------------------------------------


def test_the_files_a_job_wrote_are_listed_and_each_served(http: httpx.Client) -> None:
    files = {"a.txt": "alpha", "sub/deeper/b.json": '{"b": 1}', "table.csv": "x,y\n1,2\n"}
    response = write(http, {"text": "done"}, files=files)
    assert response.status_code == 200, response.text
    job = job_id(response)
    listing = http.get(f"/jobs/{job}/files")
    assert listing.status_code == 200, listing.text
    found = {item["name"]: item for item in listing.json()["files"]}
    assert set(found) == set(files)
    assert found["sub/deeper/b.json"]["size"] == len('{"b": 1}')
    assert found["sub/deeper/b.json"]["type"] == "application/json"
    assert found["table.csv"]["type"] == "text/csv"
    for name, text in files.items():
        served = http.get(found[name]["href"])
        assert served.status_code == 200, served.text
        assert served.text == text
        assert served.headers["content-length"] == str(len(text))
    assert http.head(found["a.txt"]["href"]).headers["content-length"] == "5"
    assert_exception(http.get(f"/jobs/{job}/files/nothere.txt"), 404, "no-such-file")


def test_links_and_traversal_out_of_the_results_location_are_refused(
    http: httpx.Client, server: Server
) -> None:
    secret = server.data_dir / "secret.txt"
    secret.write_text("not for clients")
    links = {"escape": str(secret), "folder": str(server.data_dir)}
    response = write(http, {"text": "ok"}, files={"in.txt": "in"}, links=links)
    assert response.status_code == 200, response.text
    job = job_id(response)
    listed = [item["name"] for item in http.get(f"/jobs/{job}/files").json()["files"]]
    assert listed == ["in.txt"]
    for path in (
        "escape",
        "folder/secret.txt",
        "%2e%2e/%2e%2e/secret.txt",
        "..%2F..%2Fsecret.txt",
        "%2Fetc%2Fpasswd",
        "sub//../in.txt",
    ):
        answer = http.get(f"/jobs/{job}/files/{path}")
        assert answer.status_code in (403, 404), (path, answer.status_code)
        assert "not for clients" not in answer.text
        assert http.head(f"/jobs/{job}/files/{path}").status_code in (403, 404)


def test_a_process_cannot_make_a_link_or_a_path_outside_an_output_file(
    http: httpx.Client, server: Server
) -> None:
    secret = server.data_dir / "secret.txt"
    secret.write_text("not for clients")
    # A name of a CSV output that is not a file of the job stays the string it is.
    plain = write(http, {"doc": "escape"}, links={"escape": str(secret)})
    assert plain.status_code == 200, plain.text
    assert plain.json()["doc"] == {"value": "escape", "mediaType": "text/csv"}
    # A link must name a file the job wrote: the job fails, naming the output and the file.
    for returns in (
        {"linked": {"href": "escape"}},
        {"linked": {"href": "../../secret.txt"}},
        {"picture": str(secret)},
    ):
        failed = write(http, returns, links={"escape": str(secret)})
        assert failed.status_code == 500, failed.text
        detail = failed.json()["detail"]
        (output,) = returns
        assert repr(output) in detail and "did not write" in detail
        assert "not for clients" not in failed.text


def test_a_missing_file_fails_the_job_only_when_the_output_must_be_a_file(
    http: httpx.Client,
) -> None:
    failed = write(http, {"picture": "plot.png"})
    assert failed.status_code == 500
    body = assert_exception(failed, 500, "job-failed")
    assert "'picture'" in body["detail"] and "plot.png" in body["detail"]
    job = job_id(failed)
    status = http.get(f"/jobs/{job}").json()
    assert status["status"] == "failed" and "plot.png" in status["message"]
    assert_exception(http.get(f"/jobs/{job}/results/picture"), 500, "job-failed")
    text = write(http, {"doc": "plot.csv", "text": "rating.csv"})
    assert text.status_code == 200, text.text
    assert text.json()["doc"] == {"value": "plot.csv", "mediaType": "text/csv"}
    assert text.json()["text"] == "rating.csv"


def test_a_written_png_and_a_linked_file_are_served_with_their_types(http: httpx.Client) -> None:
    files = {"plot.png": "PNG fake", "data/page.html": "<script>alert(1)</script>"}
    returns = {"picture": "plot.png", "linked": {"href": "data/page.html", "title": "page"}}
    response = write(http, returns, files=files)
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["picture"]["type"] == "image/png"
    assert document["linked"]["type"] == "text/html"
    picture = http.get(document["picture"]["href"])
    assert picture.headers["content-type"] == "image/png"
    assert picture.content == files["plot.png"].encode()
    assert "content-disposition" not in picture.headers
    page = http.get(document["linked"]["href"])
    assert page.text == files["data/page.html"]
    # a type a browser could run is a sandboxed download, not a page of the API's origin
    assert page.headers["content-disposition"] == 'attachment; filename="page.html"'
    assert page.headers["content-security-policy"] == "sandbox"
    listed = http.get(f"/jobs/{job_id(response)}/files/data/page.html")
    assert listed.headers["content-disposition"].startswith("attachment")


@pytest.mark.parametrize(
    "chosen",
    [
        "text/csv\r\nSet-Cookie: taken=1",
        "tëxt/csv",
        'text/csv"; rel="evil',
        'text/csv; x="a b"',
        "csv",
    ],
)
def test_a_link_type_that_is_no_plain_media_type_gives_way_to_the_files_own(
    http: httpx.Client, chosen: str
) -> None:
    returns = {"linked": {"href": "t.csv", "type": chosen}, "text": "done"}
    inputs = {"returns": returns, "files": {"t.csv": "a,b\n"}}
    outputs = {"linked": {"transmissionMode": "reference"}}
    by_reference = http.post(
        "/processes/writer/execution", json={"inputs": inputs, "outputs": outputs}
    )
    assert by_reference.status_code == 204, by_reference.text
    job = job_id(by_reference)
    (results_link,) = [p for p in by_reference.headers["link"].split(", <") if "/results/" in p]
    assert results_link.endswith('; type="text/csv"; title="linked"'), results_link
    assert "set-cookie" not in by_reference.headers
    served = http.get(f"/jobs/{job}/results/linked")
    assert served.status_code == 200 and served.text == "a,b\n"
    assert served.headers["content-type"] == "text/csv"
    both = http.post("/processes/writer/execution", json={"inputs": inputs})
    assert both.status_code == 200, both.text
    part = both.content.split(b"Content-ID: <linked>\r\n")[1].split(b"\r\n\r\n")[0]
    assert part.startswith(b"Content-Type: text/csv\r\nContent-Location: "), part


def test_a_plain_media_type_a_link_chooses_is_kept(http: httpx.Client) -> None:
    chosen = "text/plain; charset=utf-8"
    returns = {"linked": {"href": "notes", "type": chosen}}
    response = write(http, returns, files={"notes": "n"})
    assert response.json()["linked"]["type"] == chosen
    assert http.get(response.json()["linked"]["href"]).headers["content-type"] == chosen


def test_a_yaml_output_returned_inline_is_its_text(http: httpx.Client) -> None:
    response = write(http, {"config": "depth: 1\nslope: 0.001\n"})
    assert response.status_code == 200, response.text
    assert response.json()["config"] == {
        "value": "depth: 1\nslope: 0.001\n",
        "mediaType": "application/yaml",
    }


def test_a_file_named_by_its_absolute_path_in_the_results_directory_is_served(
    http: httpx.Client, server: Server
) -> None:
    returns = {
        "doc": "$RESULTS_DIR/rating.csv",
        "linked": {"href": "$RESULTS_DIR/sub/notes.txt"},
    }
    files = {"rating.csv": "depth\n1\n", "sub/notes.txt": "notes"}
    response = write(http, returns, files=files)
    assert response.status_code == 200, response.text
    document = response.json()
    assert http.get(document["doc"]["href"]).text == "depth\n1\n"
    assert http.get(document["linked"]["href"]).text == "notes"
    assert str(server.data_dir) not in response.text
    # the path must stay inside the results directory
    secret = server.data_dir / "secret.txt"
    secret.write_text("not for clients")
    for returned in ("$RESULTS_DIR/../../secret.txt", "$RESULTS_DIR/../other-job/x.png"):
        failed = write(http, {"picture": returned})
        assert failed.status_code == 500, failed.text
        assert "'picture'" in failed.json()["detail"]
        assert "not for clients" not in failed.text


def test_a_files_listing_cut_at_its_limit_says_so_and_holds_the_first_names(
    http: httpx.Client,
) -> None:
    files = {"a.txt": "a", "zz/last.txt": "z"}
    response = write(http, {"text": "many"}, files=files, many=MAX_LISTED)
    assert response.status_code == 200, response.text
    listing = http.get(f"/jobs/{job_id(response)}/files").json()
    names = [item["name"] for item in listing["files"]]
    assert listing["truncated"] is True
    assert listing["numberReturned"] == len(names) == MAX_LISTED
    assert names == sorted(names) and names[0] == "a.txt" and "zz/last.txt" not in names
    small = write(http, {"text": "few"}, files=files)
    assert "truncated" not in http.get(f"/jobs/{job_id(small)}/files").json()


def test_a_file_output_is_listed_and_served_with_its_outputs_type(http: httpx.Client) -> None:
    response = write(http, {"doc": "table.dat"}, files={"table.dat": "x,y\n"})
    assert response.status_code == 200, response.text
    job = job_id(response)
    assert response.json()["doc"]["type"] == "text/csv"
    served = http.get(f"/jobs/{job}/files/table.dat")
    assert served.headers["content-type"] == "text/csv"
    listed = http.get(f"/jobs/{job}/files").json()["files"]
    assert [(f["name"], f["type"]) for f in listed] == [("table.dat", "text/csv")]


def test_a_value_shaped_like_a_stored_file_stays_a_value_beside_a_real_file(
    http: httpx.Client,
) -> None:
    lookalike = {"$process-api:file": {"name": "../../jobs.sqlite", "size": 1, "type": "x/y"}}
    response = write(http, {"record": lookalike, "doc": "t.csv"}, files={"t.csv": "a\n"})
    assert response.status_code == 200, response.text
    assert response.json()["record"] == {"value": lookalike, "mediaType": "application/json"}
    job = job_id(response)
    assert http.get(f"/jobs/{job}/results/record").json() == lookalike
    assert http.get(response.json()["doc"]["href"]).text == "a\n"


def test_files_of_a_running_job_are_not_served_yet(http: httpx.Client) -> None:
    response = http.post(
        "/processes/echo/execution",
        json={"inputs": {"stringInput": "x", "pause": 3}},
        headers={"Prefer": "respond-async"},
    )
    job = response.json()["jobID"]
    assert_exception(http.get(f"/jobs/{job}/files"), 404, "result-not-ready")
    http.delete(f"/jobs/{job}")


# -- retention ---------------------------------------------------------------------


def test_expired_files_are_removed_and_their_routes_answer_410(
    server_factory: Callable[..., Server],
) -> None:
    server = server_factory(env={"EXPIRY_DAYS": "0.00003"})  # about 2.6 s
    with server.client() as http:
        response = run_rating(http, outputs={"table": {}})
        job = job_id(response)
        folder = server.data_dir / "storage" / "results" / job
        assert (folder / "rating.csv").is_file()
        assert http.get(f"/jobs/{job}/files/rating.csv").status_code == 200
        started = time.monotonic()
        wait_until(lambda: not folder.exists(), 20, "the job's files to be removed")
        assert time.monotonic() - started < 20
        for path in ("results/table", "files", "files/rating.csv", "results"):
            assert_exception(http.get(f"/jobs/{job}/{path}"), 410, "results-expired")
        assert http.head(f"/jobs/{job}/results/table").status_code == 410
        # the job's page stays, and says why its results are gone rather than that it had none
        page = http.get(f"/jobs/{job}?f=html")
        assert page.status_code == 200
        assert "expired" in page.text and "produced no outputs" not in page.text
