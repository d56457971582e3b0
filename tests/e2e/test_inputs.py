"""Inputs in every 1.0 form: literals, arrays, qualified values, bounding boxes, base64
binary and links, each checked against the input's schema and handed to the process."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Server, serve_files
from tests.e2e.test_api import assert_exception

INPUTS_YML = """\
info:
  id: inputs
  version: '1'
host:
  type: subprocess
  command: [python3, inputs.py]
inputs:
  - id: area
    schema:
      type: object
      required: [bbox]
      properties:
        bbox: {type: array, items: {type: number}, minItems: 4, maxItems: 6}
        crs: {type: string, enum: ['http://www.opengis.net/def/crs/OGC/1.3/CRS84']}
    minOccurs: 0
  - id: blob
    schema: {type: string, contentEncoding: base64, contentMediaType: application/octet-stream}
    minOccurs: 0
  - id: level
    schema: {type: integer, minimum: 0}
    minOccurs: 0
    maxOccurs: 3
  - id: raster
    schema: {type: string, contentMediaType: image/tiff}
    minOccurs: 0
outputs:
  - id: received
    schema: {type: object}
"""

INPUTS_PY = """\
import json, os, sys
formats = json.loads(os.environ.get("PROCESS_API_INPUT_FORMATS", "{}"))
print(json.dumps({"plugin_results": {"inputs": json.loads(sys.argv[-1]), "formats": formats}}))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_files(
        tmp_path_factory.mktemp("inputs"), {"inputs.yml": INPUTS_YML, "inputs.py": INPUTS_PY}
    )


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def run(http: httpx.Client, inputs: dict) -> httpx.Response:
    return http.post("/processes/inputs/execution", json={"inputs": inputs})


BLOB = base64.b64encode(b"abc").decode()


@pytest.mark.parametrize(
    "inputs",
    [
        {"area": {"bbox": [-10.5, 40, 3, 45.25]}},
        {
            "area": {
                "bbox": [0, 0, 0, 1, 1, 100],
                "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
            }
        },
        {"blob": base64.b64encode(b"\x00\x01binary\xff").decode()},
        {"level": 2},
        {"level": [0, 1, 2]},
        {"raster": {"href": "https://example.org/dem.tif", "type": "image/tiff"}},
        {"raster": {"href": "s3://bucket/key/dem.tif"}},
    ],
)
def test_valid_inputs_reach_the_process_as_sent(http: httpx.Client, inputs: dict) -> None:
    response = run(http, inputs)
    assert response.status_code == 200, response.text
    # links are passed on, not fetched; no format is given beside plain values
    assert response.json() == {"inputs": inputs, "formats": {}}


@pytest.mark.parametrize(
    ("inputs", "plain", "formats"),
    [
        (
            {
                "blob": {
                    "value": BLOB,
                    "mediaType": "application/octet-stream",
                    "encoding": "base64",
                }
            },
            {"blob": BLOB},
            {"blob": {"mediaType": "application/octet-stream", "encoding": "base64"}},
        ),
        (
            {"level": {"value": 5, "mediaType": "application/json"}},
            {"level": 5},
            {"level": {"mediaType": "application/json"}},
        ),
        (
            {"level": [{"value": 1}, 2, {"value": 3, "mediaType": "application/json"}]},
            {"level": [1, 2, 3]},
            {"level": [{}, None, {"mediaType": "application/json"}]},
        ),
    ],
)
def test_a_qualified_value_reaches_the_process_as_its_plain_value(
    http: httpx.Client, inputs: dict, plain: dict, formats: dict
) -> None:
    """A process written for the Go server expects `5`, not `{"value": 5}`; the media type
    and encoding are given beside, in PROCESS_API_INPUT_FORMATS."""
    response = run(http, inputs)
    assert response.status_code == 200, response.text
    assert response.json() == {"inputs": plain, "formats": formats}


@pytest.mark.parametrize(
    ("inputs", "named"),
    [
        ({"area": {"bbox": [1, 2, 3]}}, "input 'area'"),
        ({"area": {"bbox": [1, 2, 3, 4], "crs": "EPSG:4326"}}, "input 'area'"),
        ({"blob": "not base64!"}, "input 'blob' is not valid base64"),
        ({"level": [1, 2, 3, 4]}, "at most 3 values"),
        ({"level": [1, -1]}, "input 'level'[1]"),
        ({"level": {"value": "high"}}, "input 'level'"),
        ({"raster": {"href": "file:///etc/passwd"}}, "input 'raster' is a link"),
        ({"raster": {"href": 5}}, "input 'raster' is a link"),
    ],
)
def test_invalid_inputs_are_named(http: httpx.Client, inputs: dict, named: str) -> None:
    body = assert_exception(run(http, inputs), 400, "invalid-parameter-value")
    assert named in body["detail"]
