"""Results in every 1.0 form: raw or document, by value or by reference, selected outputs,
media types, the same forms afterwards at /jobs/{jobID}/results, and one output at
/jobs/{jobID}/results/{outputID}."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, serve_files, wait_status
from tests.e2e.test_api import assert_exception
from tests.ogc import assert_valid

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n binary \x00\xff").decode()

FORMS_YML = """\
info:
  id: forms
  version: '1'
  outputTransmission: [value, reference]
host:
  type: subprocess
  command: [python3, forms.py]
inputs:
  - id: text
    schema: {type: string}
outputs:
  - id: text
    schema: {type: string, contentMediaType: text/plain}
  - id: picture
    schema: {type: string, contentMediaType: image/png, contentEncoding: base64}
  - id: numbers
    schema: {type: array, items: {type: integer}}
  - id: record
    schema: {type: object}
  - id: inline
    output:
      transmissionMode: [value]
    schema: {type: integer}
"""

FORMS_PY = f"""\
import json, sys
text = json.loads(sys.argv[-1])["text"]
results = {{"text": text, "picture": "{PNG}", "numbers": [1, 2, 3],
           "record": {{"a": 1}}, "inline": 7}}
print(json.dumps({{"plugin_results": results}}))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_files(
        tmp_path_factory.mktemp("results"), {"forms.yml": FORMS_YML, "forms.py": FORMS_PY}
    )


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def execute(http: httpx.Client, body: dict, **headers: str) -> httpx.Response:
    return http.post(
        "/processes/forms/execution", json={"inputs": {"text": "héllo"}, **body}, headers=headers
    )


def job_id(response: httpx.Response) -> str:
    return response.headers["link"].split("/jobs/")[1].split(">")[0]


def parts(response: httpx.Response) -> dict[str, tuple[dict[str, str], bytes]]:
    boundary = response.headers["content-type"].split('boundary="')[1].split('"')[0].encode()
    found = {}
    for chunk in response.content.split(b"--" + boundary)[1:-1]:
        head, _, body = chunk.strip(b"\r\n").partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        found[headers["Content-ID"].strip("<>")] = (headers, body)
    return found


def test_raw_value_keeps_the_media_type(http: httpx.Client) -> None:
    text = execute(http, {"outputs": {"text": {}}})
    assert text.status_code == 200
    assert text.headers["content-type"].startswith("text/plain")
    assert text.text == "héllo"
    picture = execute(http, {"outputs": {"picture": {"format": {"mediaType": "image/png"}}}})
    assert picture.headers["content-type"] == "image/png"
    assert picture.content == base64.b64decode(PNG)
    numbers = execute(http, {"outputs": {"numbers": {}}})
    assert numbers.headers["content-type"] == "application/json" and numbers.json() == [1, 2, 3]


def test_raw_several_values_are_multipart(http: httpx.Client) -> None:
    response = execute(http, {"outputs": {"text": {}, "numbers": {}, "picture": {}}})
    assert response.headers["content-type"].startswith("multipart/related")
    found = parts(response)
    assert found["text"] == (
        {"Content-ID": "<text>", "Content-Type": "text/plain"},
        "héllo".encode(),
    )
    assert found["numbers"][1] == b"[1, 2, 3]"
    assert found["picture"][1] == base64.b64decode(PNG)


def test_raw_references_are_link_headers(http: httpx.Client) -> None:
    response = execute(
        http,
        {
            "outputs": {
                "text": {"transmissionMode": "reference"},
                "numbers": {"transmissionMode": "reference"},
            }
        },
    )
    assert response.status_code == 204 and response.content == b""
    links = {
        part.split("title=")[1].strip('" '): part
        for part in response.headers["link"].split(", <")
        if "title=" in part
    }
    for output_id, media, expected in (
        ("text", "text/plain", "héllo"),
        ("numbers", "application/json", "[1, 2, 3]"),
    ):
        href = links[output_id].split(">")[0].lstrip("<")
        assert f'type="{media}"' in links[output_id]
        fetched = http.get(href)
        assert fetched.headers["content-type"].startswith(media) and fetched.text == expected
    assert 'rel="monitor"' in response.headers["link"]


def test_raw_mixed_references_and_values(http: httpx.Client) -> None:
    response = execute(http, {"outputs": {"text": {"transmissionMode": "reference"}, "inline": {}}})
    found = parts(response)
    assert found["inline"][1] == b"7"
    assert found["text"][1] == b""
    assert http.get(found["text"][0]["Content-Location"]).text == "héllo"


def test_document_with_values_and_references(http: httpx.Client) -> None:
    outputs = {
        "text": {},
        "picture": {},
        "record": {},
        "numbers": {"transmissionMode": "reference"},
    }
    response = execute(http, {"response": "document", "outputs": outputs})
    assert response.status_code == 200
    document = response.json()
    assert_valid("results", document)
    assert document["text"] == {"value": "héllo", "mediaType": "text/plain"}
    assert document["picture"] == {"value": PNG, "mediaType": "image/png", "encoding": "base64"}
    assert document["record"] == {"value": {"a": 1}, "mediaType": "application/json"}
    assert document["numbers"]["type"] == "application/json"
    assert http.get(document["numbers"]["href"]).json() == [1, 2, 3]
    assert set(document) == set(outputs)  # only the selected outputs


def test_all_outputs_when_none_is_selected(http: httpx.Client) -> None:
    document = execute(http, {"response": "document"}).json()
    assert set(document) == {"text", "picture", "numbers", "record", "inline"}


def test_the_same_forms_afterwards(http: httpx.Client) -> None:
    body = {
        "response": "document",
        "outputs": {"text": {}, "numbers": {"transmissionMode": "reference"}},
    }
    started = execute(http, body, Prefer="respond-async")
    assert started.status_code == 201
    job = started.json()["jobID"]
    wait_status(http, job, {"successful"})
    document = http.get(f"/jobs/{job}/results").json()
    assert document["text"] == {"value": "héllo", "mediaType": "text/plain"}
    assert document["numbers"]["href"].endswith(f"/jobs/{job}/results/numbers")
    raw = execute(http, {"outputs": {"text": {}}}, Prefer="respond-async").json()["jobID"]
    wait_status(http, raw, {"successful"})
    again = http.get(f"/jobs/{raw}/results")
    assert again.headers["content-type"].startswith("text/plain") and again.text == "héllo"
    page = http.get(f"/jobs/{job}/results", params={"f": "html"})
    assert page.status_code == 200 and "héllo" in page.text


def test_one_output_of_a_job(http: httpx.Client) -> None:
    job = job_id(execute(http, {"outputs": {"text": {}}}))
    # every output of the job, whichever were selected, can be fetched on its own
    assert http.get(f"/jobs/{job}/results/record").json() == {"a": 1}
    assert http.get(f"/jobs/{job}/results/picture").content == base64.b64decode(PNG)
    body = assert_exception(http.get(f"/jobs/{job}/results/nope"), 404, "no-such-output")
    assert "nope" in body["detail"]


@pytest.mark.parametrize(
    ("outputs", "named"),
    [
        ({"nope": {}}, "nope"),
        ({"inline": {"transmissionMode": "reference"}}, "inline"),
        ({"text": {"format": {"mediaType": "application/pdf"}}}, "application/pdf"),
        ({"text": {"transmissionMode": "carrier-pigeon"}}, "transmissionMode"),
    ],
)
def test_output_requests_the_process_cannot_serve(
    http: httpx.Client, outputs: dict, named: str
) -> None:
    body = assert_exception(execute(http, {"outputs": outputs}), 400, "invalid-parameter-value")
    assert named in body["detail"]


def test_echo_offers_references(tmp_path: Path, server_factory) -> None:
    server = server_factory()
    with server.client() as client:
        response = client.post(
            "/processes/echo/execution",
            json={
                "inputs": {"stringInput": "x"},
                "outputs": {"stringInput": {"transmissionMode": "reference"}},
            },
        )
        assert response.status_code == 204
        href = response.headers["link"].split(">")[0].lstrip("<")
        assert client.get(href).json() == "x"
