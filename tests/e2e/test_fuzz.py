"""Property-based fuzzing of the real server with schemathesis, against its own OpenAPI document.

1. Every operation of `<server>/api` gets generated requests, valid ones and invalid ones. No
   answer may be an unexpected 5xx; each must have a status code and a content type that the
   document lists for the operation, and a body that matches the documented schema.
2. The document gives no schema for results (a 200's schema is `{}`), so each bundled process
   is also executed with valid inputs generated from its own description: every results
   document must match the output schemas that the process declares.
3. Generated ids reach no real job, so the answers about real jobs (finished, failed, running,
   dismissed; results in each form) are checked against the document with the same checks.

schemathesis's pytest integration (`schemathesis.pytest.from_fixture`) fails on pytest 9.2 (it
reads the removed `Node._nodeid`), so operations are driven with its Python API instead:
`APIOperation.as_strategy()` under a Hypothesis `@given`, one bounded, derandomized run per
operation. Every request goes to the test server on 127.0.0.1, and generated callback URLs are
pointed at the loopback, which the server refuses to call (no DNS look-up, no request).
"""

from __future__ import annotations

import json
import time
import traceback
import unittest
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, strategies
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import EXAMPLES, Server

OGC_EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
EXECUTION = "/processes/{processID}/execution"
#: besides generated (unknown) ids, the execute operation runs the bundled processes.
PROCESS_IDS = ["echo", "stats", "fail"]
SEED = 20240611
SETTINGS = hypothesis.settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    print_blob=False,
)
#: generated arrays of a repeatable input stay this short.
MAX_ITEMS = 20
#: inputs that generated values must leave out (or set to 0): a `pause` can last an hour.
LEFT_OUT = {"pause"}
#: where generated callback URLs are pointed: refused by the server, never called.
LOOPBACK_CALLBACK = "http://127.0.0.1:9/callback"


def not_an_unexpected_server_error(ctx: Any, response: Any, case: schemathesis.Case) -> None:
    """No 5xx, but for the documented 500 job-failed: the results of a job that failed, and the
    execution of `fail` (failing is what it does)."""
    if response.status_code == 500:
        try:
            job_failed = response.json().get("type") == OGC_EXC + "job-failed"
        except ValueError:
            job_failed = False
        _, collection, name, *_ = case.formatted_path.split("/") + ["", ""]
        expected = collection == "jobs" or name == "fail"
        if job_failed and expected:
            return
    not_a_server_error(ctx, response, case)


CHECKS = [
    not_an_unexpected_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(EXAMPLES, tmp_path_factory.mktemp("fuzz") / "data").start()
    yield server
    server.stop()


def config(server: Server) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": server.url,
            "request-timeout": 20,
            "cache": {"enabled": False},
            "generation": {"deterministic": True, "database": "none"},
        }
    )


@pytest.fixture(scope="module")
def api_schema(fuzz_server: Server) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(
        fuzz_server.url + "/api", config=config(fuzz_server), timeout=10
    )
    assert schema.get_base_url() == fuzz_server.url
    return schema


def confine(case: schemathesis.Case) -> None:
    """Keeps a generated execute request local and short.

    Callback URLs point at the loopback, which the server refuses (400) without a DNS look-up;
    echo's `pause` (documented up to 3600 s) becomes 0.
    """
    body = case.body if isinstance(case.body, dict) else {}
    subscriber, inputs = body.get("subscriber"), body.get("inputs")
    if isinstance(subscriber, dict):
        for name in ("successUri", "inProgressUri", "failedUri"):
            if isinstance(subscriber.get(name), str):
                subscriber[name] = LOOPBACK_CALLBACK
    if isinstance(inputs, dict):
        for name in LEFT_OUT & inputs.keys():
            qualified = isinstance(inputs[name], dict) and "value" in inputs[name]
            value = inputs[name]["value"] if qualified else inputs[name]
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                inputs[name] = {**inputs[name], "value": 0} if qualified else 0


def fuzz(strategy: strategies.SearchStrategy, base_url: str) -> str | None:
    """Runs the generated cases; the report of the failures, if any (None when all pass)."""

    @hypothesis.seed(SEED)
    @SETTINGS
    @hypothesis.given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        confine(case)
        case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=20)

    try:
        run()
    except (Unsatisfiable, unittest.SkipTest):
        raise  # no case of this kind exists for the operation
    except (Exception, BaseExceptionGroup) as exc:
        return "".join(traceback.format_exception_only(exc))
    return None


def cases(operation: schemathesis.APIOperation, mode: GenerationMode) -> strategies.SearchStrategy:
    strategy = operation.as_strategy(generation_mode=mode)
    if operation.path != EXECUTION:
        return strategy
    known = [
        operation.as_strategy(generation_mode=mode, path_parameters={"processID": name})
        for name in PROCESS_IDS
    ]
    return strategies.one_of(strategy, *known)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_every_answer_is_documented(
    api_schema: schemathesis.BaseSchema, fuzz_server: Server, mode: GenerationMode
) -> None:
    tested, not_negatable, failures = [], [], {}
    for result in api_schema.get_all_operations():
        operation = result.ok()
        try:
            report = fuzz(cases(operation, mode), fuzz_server.url)
        except (Unsatisfiable, unittest.SkipTest):
            # GET /conformance has no parameter, a string path parameter no invalid value
            not_negatable.append(operation.label)
            continue
        tested.append(operation.label)
        if report is not None:
            failures[operation.label] = report
    assert f"POST {EXECUTION}" in tested and "GET /jobs" in tested, (tested, not_negatable)
    assert not failures, "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())
    assert fuzz_server.proc is not None and fuzz_server.proc.poll() is None


def occurrences(description: dict[str, Any]) -> dict[str, Any]:
    """An input's schema as the execute request takes it: one value, or up to maxOccurs."""
    schema = description["schema"]
    most = description.get("maxOccurs", 1)
    if most == "unbounded" or most > 1:
        items = MAX_ITEMS if most == "unbounded" else min(MAX_ITEMS, most)
        many = {"type": "array", "items": schema, "minItems": 1, "maxItems": items}
        return {"anyOf": [schema, many]} if description.get("minOccurs", 1) <= 1 else many
    return schema


def execution_document(process: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI document for executing one process, built from the process's description.

    Its body takes only valid inputs and asks for a results document; its only answer is 200,
    with every output matching the schema that the description declares for it.
    """
    inputs = {k: v for k, v in process["inputs"].items() if k not in LEFT_OUT}
    outputs = {k: v["schema"] for k, v in process["outputs"].items()}
    no_options = {"type": "object", "additionalProperties": False}
    body = {
        "type": "object",
        "required": ["inputs", "response"],
        "additionalProperties": False,
        "properties": {
            "inputs": {
                "type": "object",
                "required": [k for k, v in inputs.items() if v.get("minOccurs", 1) > 0],
                "additionalProperties": False,
                "properties": {k: occurrences(v) for k, v in inputs.items()},
            },
            "outputs": {
                "type": "object",
                "additionalProperties": False,
                "properties": {k: no_options for k in outputs},
            },
            "response": {"type": "string", "enum": ["document"]},
        },
    }
    results = {"type": "object", "additionalProperties": False, "properties": outputs}
    operation = {
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {
            "200": {
                "description": "The results document",
                "content": {"application/json": {"schema": results}},
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": f"execute {process['id']}", "version": process["version"]},
        "paths": {f"/processes/{process['id']}/execution": {"post": operation}},
    }


@pytest.mark.parametrize("process_id", ["echo", "stats"])
def test_valid_inputs_give_results_of_the_declared_schemas(
    fuzz_server: Server, process_id: str
) -> None:
    with fuzz_server.client() as http:
        process = http.get(f"/processes/{process_id}").json()
        failed_before = http.get("/jobs", params={"status": "failed"}).json()["numberMatched"]
    schema = schemathesis.openapi.from_dict(execution_document(process), config=config(fuzz_server))
    operation = schema[f"/processes/{process_id}/execution"]["POST"]
    report = fuzz(operation.as_strategy(GenerationMode.POSITIVE), fuzz_server.url)
    assert report is None, report
    # valid inputs never make the process fail
    failed = httpx.get(fuzz_server.url + "/jobs", params={"status": "failed"}).json()
    assert failed["numberMatched"] == failed_before


def strict_json(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("response", ["document", "raw"])
def test_results_out_of_json_range(fuzz_server: Server, response: str) -> None:
    body = {"inputs": {"numbers": [1e308, 1e308]}, "outputs": {"sum": {}}, "response": response}
    with fuzz_server.client() as http:
        answer = http.post("/processes/stats/execution", json=body)
    document = strict_json(answer.text)
    # a job that fails says so (job-failed); an unexpected error is a server bug
    assert answer.status_code < 500 or document["type"] != OGC_EXC + "server-error", document


@pytest.mark.parametrize(
    ("process_id", "inputs", "expected"),
    [
        ("stats", {"numbers": {"value": 2}}, {"count": 1, "sum": 2, "min": 2, "max": 2, "mean": 2}),
        ("stats", {"numbers": [{"value": 1}, 3]}, {"count": 2, "sum": 4, "min": 1, "max": 3}),
        ("stats", {"numbers": [1, 2], "precision": {"value": 1}}, {"mean": 1.5}),
        ("echo", {"stringInput": "a", "arrayInput": [{"value": 1}, 2]}, {"arrayInput": [1, 2]}),
    ],
    ids=["stats-value", "stats-item", "stats-precision", "echo-item"],
)
def test_qualified_values_reach_the_process_as_values(
    fuzz_server: Server, process_id: str, inputs: dict[str, Any], expected: dict[str, Any]
) -> None:
    body = {"inputs": inputs, "response": "document"}
    with fuzz_server.client() as http:
        answer = http.post(f"/processes/{process_id}/execution", json=body)
    assert answer.status_code == 200, answer.text
    results = answer.json()
    assert {k: results.get(k) for k in expected} == expected


# -- answers about real jobs ----------------------------------------------------------------------


def sync_job(http: httpx.Client, process_id: str, body: dict[str, Any]) -> str:
    response = http.post(f"/processes/{process_id}/execution", json=body)
    assert response.status_code < 300 or process_id == "fail", response.text
    return response.headers["link"].split("/jobs/")[1].split(">")[0]


def async_job(http: httpx.Client, process_id: str, inputs: dict[str, Any], until: set[str]) -> str:
    response = http.post(
        f"/processes/{process_id}/execution",
        json={"inputs": inputs},
        headers={"Prefer": "respond-async"},
    )
    job_id: str = response.json()["jobID"]
    deadline = time.monotonic() + 20
    while http.get(f"/jobs/{job_id}").json()["status"] not in until:
        assert time.monotonic() < deadline, f"job {job_id} never reached {until}"
        time.sleep(0.05)
    return job_id


def finished(http: httpx.Client, **body: Any) -> str:
    return sync_job(http, "echo", {"inputs": {"stringInput": "x"}, **body})


def running(http: httpx.Client) -> str:
    return async_job(http, "echo", {"stringInput": "x", "pause": 30}, {"running"})


def dismissed(http: httpx.Client) -> str:
    job_id = running(http)
    assert http.delete(f"/jobs/{job_id}").status_code == 200
    return job_id


def no_parameters(*_: str) -> dict[str, str]:
    return {}


def failed(http: httpx.Client) -> str:
    return async_job(http, "fail", {"message": "no luck"}, {"failed"})


TWO_OUTPUTS = {"inputs": {"stringInput": "x", "doubleInput": 1.5}}
REFERENCE = {"outputs": {"stringInput": {"transmissionMode": "reference"}}}
#: what a request is about: (method, path template, setup giving the path parameters, request).
Scenario = tuple[str, str, Callable[[httpx.Client], dict[str, str]], dict[str, Any]]
SCENARIOS: dict[str, Scenario] = {
    "status": ("GET", "/jobs/{jobID}", lambda h: {"jobID": finished(h)}, {}),
    "logs": ("GET", "/jobs/{jobID}/logs", lambda h: {"jobID": finished(h)}, {}),
    "metadata": ("GET", "/jobs/{jobID}/metadata", lambda h: {"jobID": finished(h)}, {}),
    "job list": ("GET", "/jobs", lambda h: no_parameters(finished(h)), {}),
    "results raw": ("GET", "/jobs/{jobID}/results", lambda h: {"jobID": finished(h)}, {}),
    "results document": (
        "GET",
        "/jobs/{jobID}/results",
        lambda h: {"jobID": sync_job(h, "echo", {**TWO_OUTPUTS, "response": "document"})},
        {},
    ),
    "results by reference": (
        "GET",
        "/jobs/{jobID}/results",
        lambda h: {"jobID": finished(h, **REFERENCE)},
        {},
    ),
    "one output": (
        "GET",
        "/jobs/{jobID}/results/{outputID}",
        lambda h: {"jobID": finished(h), "outputID": "stringInput"},
        {},
    ),
    "results multipart": (
        "GET",
        "/jobs/{jobID}/results",
        lambda h: {"jobID": sync_job(h, "echo", TWO_OUTPUTS)},
        {},
    ),
    "results not ready": ("GET", "/jobs/{jobID}/results", lambda h: {"jobID": running(h)}, {}),
    "results of a failed job": (
        "GET",
        "/jobs/{jobID}/results",
        lambda h: {"jobID": failed(h)},
        {},
    ),
    "results of a dismissed job": (
        "GET",
        "/jobs/{jobID}/results",
        lambda h: {"jobID": dismissed(h)},
        {},
    ),
    "dismiss running": ("DELETE", "/jobs/{jobID}", lambda h: {"jobID": running(h)}, {}),
    "dismiss finished": ("DELETE", "/jobs/{jobID}", lambda h: {"jobID": finished(h)}, {}),
    "execute raw": (
        "POST",
        EXECUTION,
        lambda h: {"processID": "echo"},
        {"body": {"inputs": {"stringInput": "x"}}},
    ),
    "execute by reference": (
        "POST",
        EXECUTION,
        lambda h: {"processID": "echo"},
        {"body": {"inputs": {"stringInput": "x"}, **REFERENCE}},
    ),
    "execute async": (
        "POST",
        EXECUTION,
        lambda h: {"processID": "echo"},
        {"body": {"inputs": {"stringInput": "x"}}, "headers": {"Prefer": "respond-async"}},
    ),
    "execute a failing process": ("POST", EXECUTION, lambda h: {"processID": "fail"}, {"body": {}}),
    "execute multipart": (
        "POST",
        EXECUTION,
        lambda h: {"processID": "echo"},
        {"body": TWO_OUTPUTS},
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_answers_about_real_jobs_are_documented(
    api_schema: schemathesis.BaseSchema, fuzz_server: Server, name: str
) -> None:
    method, path, setup, request = SCENARIOS[name]
    with fuzz_server.client() as http:
        parameters = setup(http)
    case = api_schema[path][method].Case(path_parameters=parameters, **request)
    response = case.call(base_url=fuzz_server.url, timeout=20)
    try:
        case.validate_response(response, checks=CHECKS)
    except BaseExceptionGroup as group:  # schemathesis's FailureGroup: the report, with curl
        raise AssertionError(str(group)) from None
