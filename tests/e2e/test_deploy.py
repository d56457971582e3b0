"""OGC API - Processes Part 2: processes deployed, replaced and undeployed over the API, run on
the real Docker Engine, kept in the job store (SQLite here; PostgreSQL across two instances)."""

from __future__ import annotations

import copy
import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import Server, process_info, wait_status, wait_until
from tests.images import busybox_image

ASYNC = {"Prefer": "respond-async"}
PACKAGE = "application/ogcapppkg+json"
DRU = "http://www.opengis.net/spec/ogcapi-processes-2/1.0/conf/"
DRU_ERRORS = "http://www.opengis.net/def/exceptions/ogcapi-processes-2/1.0/"


def answer(text: str, pause: float = 0) -> list[str]:
    """A container command that waits `pause` seconds and answers `text` as its result."""
    result = json.dumps({"plugin_results": {"echo": text}})
    return ["sh", "-c", f"sleep {pause}; echo '{result}'"]


def package(image: str, command: list[str], version: str = "1.0.0") -> dict[str, Any]:
    """The executionUnit example of the OGC Part 2 schemas (executionUnit.yaml) with a local
    image, resources this machine has and our `command`, under a Part 1 description (the 2.0
    draft's form: the description is `processDescription.process`); CWL bindings are left
    out: this server refuses them."""
    return {
        "processDescription": {
            "process": {
                "id": "echo-pkg",
                "version": version,
                "title": "Echo, deployed",
                "jobControlOptions": ["sync-execute", "async-execute"],
                "outputTransmission": ["value"],
                "inputs": {
                    "message": {
                        "title": "Message",
                        "schema": {"type": "string"},
                        "minOccurs": 0,
                        "metadata": [{"title": "not modelled, and accepted"}],
                    }
                },
                "outputs": {"echo": {"schema": {"type": "string"}}},
                "links": [{"href": "http://example.org/about", "rel": "about"}],
            }
        },
        "executionUnit": {
            "type": "docker",
            "image": image,
            "deployment": "local",
            "config": {"cpuMin": 1, "cpuMax": 0.5, "memoryMin": 0.1, "memoryMax": 0.25},
            "command": command,
        },
    }


def file_process() -> str:
    document = {
        "info": process_info("from-file"),
        "host": {"type": "subprocess", "command": ["sh", "-c", "echo '{\"plugin_results\": 1}'"]},
        "outputs": [{"id": "result", "schema": {"type": "integer"}}],
    }
    return yaml.safe_dump(document)


@pytest.fixture(scope="module")
def image(docker_engine: None) -> str:
    return busybox_image()


def start(root: Path, env: dict[str, str] | None = None, *args: str) -> Server:
    plugins = root / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / "from-file.yml").write_text(file_process())
    return Server(
        plugins, root / "data", *args, env={"ALLOW_DEPLOY": "true", **(env or {})}
    ).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, image: str) -> Iterator[Server]:
    env = {"DEPLOY_ENV_VARS": "GREETING", "GREETING": "hello", "SECRET_TOKEN": "s3cr3t"}
    started = start(tmp_path_factory.mktemp("deploy"), env)
    yield started
    started.stop()


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def deploy(http: httpx.Client, document: dict[str, Any], media_type: str = PACKAGE) -> Any:
    return http.post(
        "/processes", content=json.dumps(document), headers={"Content-Type": media_type}
    )


def replace(http: httpx.Client, process_id: str, document: dict[str, Any]) -> httpx.Response:
    headers = {"Content-Type": PACKAGE}
    return http.put(f"/processes/{process_id}", content=json.dumps(document), headers=headers)


def submit(http: httpx.Client, process_id: str) -> str:
    response = http.post(f"/processes/{process_id}/execution", json={"inputs": {}}, headers=ASYNC)
    assert response.status_code == 201, response.text
    return str(response.json()["jobID"])


def running_container(job_id: str) -> dict[str, Any]:
    def found() -> str:
        return subprocess.run(
            ["docker", "ps", "-q", "--filter", f"label=process-api.job={job_id}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    container = wait_until(found, 15, f"the container of job {job_id}")
    out = subprocess.run(["docker", "inspect", container], capture_output=True, check=True)
    return dict(json.loads(out.stdout)[0])


def test_a_package_is_deployed_replaced_and_undeployed_and_each_job_runs_its_version(
    http: httpx.Client, image: str
) -> None:
    response = deploy(http, package(image, answer("v1", pause=3)))
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"{str(http.base_url).rstrip('/')}/processes/echo-pkg"
    summary = response.json()
    assert (summary["id"], summary["version"], summary["mutable"]) == ("echo-pkg", "1.0.0", True)
    listed = {p["id"]: p for p in http.get("/processes").json()["processes"]}
    assert listed["echo-pkg"]["mutable"] is True and listed["from-file"]["mutable"] is False
    description = http.get("/processes/echo-pkg").json()
    assert description["inputs"]["message"]["minOccurs"] == 0
    assert "metadata" not in description["inputs"]["message"]

    first = submit(http, "echo-pkg")  # runs 3 s: still running when the process is replaced
    host = running_container(first)["HostConfig"]
    assert host["NanoCpus"] == 500_000_000 and host["Memory"] == 256 * 2**20  # cpuMax, memoryMax
    assert replace(http, "echo-pkg", package(image, answer("v2", 1), "2.0.0")).status_code == 204
    assert http.get("/processes/echo-pkg").json()["version"] == "2.0.0"
    second = http.post("/processes/echo-pkg/execution", json={"inputs": {}})
    assert second.status_code == 200 and second.json() == "v2"

    job = wait_status(http, first, {"successful", "failed", "dismissed"})
    assert job["status"] == "successful", job
    assert http.get(f"/jobs/{first}/results/echo").json() == "v1"
    metadata = http.get(f"/jobs/{first}/metadata").json()
    assert (metadata["processVersion"], metadata["processRevision"]) == ("1.0.0", 1)
    used = next(link["href"] for link in metadata["links"] if link["rel"] == "process")
    assert used.endswith("/processes/echo-pkg/versions/1")
    assert http.get(used).json()["version"] == "1.0.0"

    package_now = http.get("/processes/echo-pkg/package")
    assert package_now.headers["content-type"] == PACKAGE
    assert package_now.json()["processDescription"]["process"]["version"] == "2.0.0"

    third = submit(http, "echo-pkg")  # runs 1 s: still running when undeployed
    wait_status(http, third, {"running"})
    assert http.delete("/processes/echo-pkg").status_code == 204
    assert http.get("/processes/echo-pkg").status_code == 404
    assert "echo-pkg" not in {p["id"] for p in http.get("/processes").json()["processes"]}
    refused = http.post("/processes/echo-pkg/execution", json={"inputs": {}})
    assert refused.status_code == 404
    job = wait_status(http, third, {"successful", "failed", "dismissed"})
    assert job["status"] == "successful", job
    assert http.get(f"/jobs/{third}/results/echo").json() == "v2"
    assert http.get(f"/jobs/{third}/metadata").json()["processRevision"] == 2
    assert http.get("/processes/echo-pkg/versions/2").json()["version"] == "2.0.0"
    assert http.delete("/processes/echo-pkg").status_code == 404

    # deployed again later: its versions go on counting, so older jobs keep theirs
    assert deploy(http, package(image, answer("v3"))).status_code == 201
    assert http.post("/processes/echo-pkg/execution", json={"inputs": {}}).json() == "v3"
    assert http.get(f"/jobs/{first}/metadata").json()["processRevision"] == 1
    assert http.delete("/processes/echo-pkg").status_code == 204


def test_errors_come_in_the_order_of_the_abstract_tests(http: httpx.Client, image: str) -> None:
    """415 before 400 before 409, each an OGC exception that names what is wrong."""
    good = package(image, answer("x"))
    good["processDescription"]["process"]["id"] = "taken"
    assert deploy(http, good).status_code == 201
    try:
        broken = copy.deepcopy(good)
        del broken["executionUnit"]["image"]
        refused = deploy(http, broken, "text/plain")
        assert refused.status_code == 415, refused.text
        assert refused.json()["type"] == DRU_ERRORS + "unsupported-content-type"
        refused = deploy(http, broken)
        assert refused.status_code == 400, refused.text
        assert "executionUnit.image" in refused.json()["detail"]
        refused = deploy(http, good)
        assert refused.status_code == 409, refused.text
        assert refused.json()["type"] == DRU_ERRORS + "duplicated-process"
        assert "PUT /processes/taken" in refused.json()["detail"]

        misspelt = copy.deepcopy(good)
        misspelt["processDescription"]["process"]["inputs"]["message"]["minOcurs"] = 1
        detail = deploy(http, misspelt).json()["detail"]
        assert "processDescription.process.inputs.message.minOcurs" in detail, detail
        assert "did you mean 'minOccurs'" in detail
        other = copy.deepcopy(good)
        other["processDescription"]["process"]["id"] = "another"
        refused = replace(http, "taken", other)
        assert refused.status_code == 400 and "processDescription.process.id" in refused.text
        cwl = {**good, "executionUnit": {"href": "http://example.org/app.cwl"}}
        assert "by reference" in deploy(http, cwl).json()["detail"]
    finally:
        assert http.delete("/processes/taken").status_code == 204

    for method in ("PUT", "DELETE"):
        body = json.dumps(good) if method == "PUT" else None
        headers = {"Content-Type": PACKAGE} if body else {}
        refused = http.request(method, "/processes/from-file", content=body, headers=headers)
        assert refused.status_code == 403, refused.text
        assert refused.json()["type"] == DRU_ERRORS + "immutable-process"
    clash = copy.deepcopy(good)
    clash["processDescription"]["process"]["id"] = "from-file"
    assert deploy(http, clash).status_code == 409
    nothing = copy.deepcopy(good)
    nothing["processDescription"]["process"]["id"] = "nothing"
    assert replace(http, "nothing", nothing).status_code == 404
    assert http.delete("/processes/nothing").status_code == 404


def test_a_process_file_is_deployed_as_yaml_and_as_json(http: httpx.Client, image: str) -> None:
    document = {
        "info": {**process_info("yaml-made"), "version": 2},
        "host": {"type": "docker"},
        "container": {"image": image, "command": answer("from yaml")},
        "outputs": [{"id": "echo", "schema": {"type": "string"}}],
    }
    text = yaml.safe_dump(document)
    response = http.post("/processes", content=text, headers={"Content-Type": "application/yaml"})
    assert response.status_code == 201, response.text
    try:
        assert response.json()["version"] == "2"
        result = http.post("/processes/yaml-made/execution", json={"inputs": {}})
        assert result.json() == "from yaml"
        sent = http.get("/processes/yaml-made/package")
        assert sent.headers["content-type"].startswith("application/yaml") and sent.text == text
        document["container"]["command"] = answer("from json")
        assert replace_json(http, document).status_code == 204
        assert http.post("/processes/yaml-made/execution", json={"inputs": {}}).json() == (
            "from json"
        )
    finally:
        http.delete("/processes/yaml-made")

    # a mistake is named by its field and its line
    broken = text.replace("outputs:", "outputz:")
    response = http.post("/processes", content=broken, headers={"Content-Type": "text/yaml"})
    assert response.status_code == 400, response.text
    assert "outputz (line" in response.json()["detail"]
    # a command on this machine is for admins to allow
    document["host"] = {"type": "subprocess", "command": ["id"]}
    response = deploy(http, document, "application/json")
    assert response.status_code == 403 and "host.type" in response.json()["detail"], response.text


def test_a_deployed_process_gets_only_the_server_variables_allowed_to_deployers(
    http: httpx.Client, image: str
) -> None:
    document = {
        "info": process_info("greeter"),
        "host": {"type": "docker"},
        "container": {
            "image": image,
            "command": ["sh", "-c", 'echo "{\\"plugin_results\\": \\"$GREETING\\"}"'],
            "envVars": ["GREETING"],
        },
        "outputs": [{"id": "greeting", "schema": {"type": "string"}}],
    }
    assert deploy(http, document, "application/json").status_code == 201
    try:
        assert http.post("/processes/greeter/execution", json={"inputs": {}}).json() == "hello"
    finally:
        http.delete("/processes/greeter")
    for field in ("envVars", "secrets"):
        taking = copy.deepcopy(document)
        taking["container"][field] = ["SECRET_TOKEN"]
        refused = deploy(http, taking, "application/json")
        assert refused.status_code == 403, refused.text
        assert f"container.{field}" in refused.json()["detail"]
        assert "DEPLOY_ENV_VARS" in refused.json()["detail"]
        assert "s3cr3t" not in refused.text
    assert http.get("/processes/greeter").status_code == 404


def test_hostile_bodies_get_a_400_that_says_why(http: httpx.Client, image: str) -> None:
    def sent(body: str, media_type: str) -> httpx.Response:
        return http.post("/processes", content=body, headers={"Content-Type": media_type})

    looping = "info: &a [*a, *a]\nhost: {type: docker}\n"
    refused = sent(looping, "application/yaml")
    assert refused.status_code == 400 and "refers to itself" in refused.text, refused.text
    deep = "[" * 100_000 + "]" * 100_000
    assert sent(deep, "application/json").status_code == 400
    lone = package(image, answer("x"))
    lone["processDescription"]["process"]["title"] = "\ud800"
    refused = deploy(http, lone)
    assert refused.status_code == 400 and "surrogate" in refused.text, refused.text
    assert sent("[1, 2]", "application/json").status_code == 400
    listed = http.get("/processes")  # nothing half-stored breaks the list
    assert listed.status_code == 200 and "echo-pkg" not in listed.text
    # JSON is read as JSON (tabs are not YAML's)
    tabbed = json.dumps(
        {
            "info": process_info("tabbed"),
            "host": {"type": "docker"},
            "container": {"image": image, "command": answer("t")},
        },
        indent="\t",
    )
    assert sent(tabbed, "application/json").status_code == 201
    http.delete("/processes/tabbed")
    for revision in ("0", "9223372036854775808", "x"):
        assert http.get(f"/processes/echo-pkg/versions/{revision}").status_code in (400, 404)


def test_a_file_given_a_deployed_id_leaves_it_undeployable(tmp_path: Path, image: str) -> None:
    server = start(tmp_path)
    try:
        with server.client() as http:
            assert deploy(http, package(image, answer("deployed"))).status_code == 201
            document = yaml.safe_load(file_process())
            document["info"]["id"] = "echo-pkg"
            (server.plugins / "echo-pkg.yml").write_text(yaml.safe_dump(document))
            wait_until(lambda: "the deployed one is served" in server.output(), 10, "the log")
            assert http.get("/processes/echo-pkg").json()["mutable"] is True
            assert http.delete("/processes/echo-pkg").status_code == 204
            assert http.get("/processes/echo-pkg").json()["mutable"] is False  # the file's now
            assert http.post("/processes/echo-pkg/execution", json={"inputs": {}}).json() == 1
    finally:
        server.stop()


def replace_json(http: httpx.Client, document: dict[str, Any]) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    process_id = document["info"]["id"]
    return http.put(f"/processes/{process_id}", content=json.dumps(document), headers=headers)


def test_the_html_process_list_shows_version_and_origin(http: httpx.Client, image: str) -> None:
    assert deploy(http, package(image, answer("x"), "4.5.6")).status_code == 201
    try:
        page = http.get("/processes", headers={"Accept": "text/html"}).text
        assert "4.5.6" in page and "deployed (mutable)" in page and "file (immutable)" in page
    finally:
        http.delete("/processes/echo-pkg")


def test_conformance_names_part_2_only_where_deploying_is_on(
    http: httpx.Client, tmp_path: Path
) -> None:
    classes = http.get("/conformance").json()["conformsTo"]
    assert {DRU + "deploy-replace-undeploy", DRU + "ogcapppkg", DRU + "docker"} <= set(classes)
    closed = start(tmp_path, {"ALLOW_DEPLOY": "false"})
    try:
        with closed.client() as other:
            assert not any(
                c.startswith(DRU) for c in other.get("/conformance").json()["conformsTo"]
            )
            refused = other.post("/processes", content="{}", headers={"Content-Type": PACKAGE})
            assert refused.status_code == 403 and "ALLOW_DEPLOY" in refused.json()["detail"]
    finally:
        closed.stop()


def test_deployed_processes_survive_a_restart(tmp_path: Path, image: str) -> None:
    first = start(tmp_path)
    with first.client() as http:
        assert deploy(http, package(image, answer("kept"), "3.0.0")).status_code == 201
        job = http.post("/processes/echo-pkg/execution", json={"inputs": {}}, headers=ASYNC)
        job_id = job.json()["jobID"]
        wait_status(http, job_id, {"successful"})
    first.stop(signal.SIGKILL)
    again = start(tmp_path)
    try:
        with again.client() as http:
            assert http.get("/processes/echo-pkg").json()["version"] == "3.0.0"
            assert http.post("/processes/echo-pkg/execution", json={"inputs": {}}).json() == "kept"
            assert http.get(f"/jobs/{job_id}/metadata").json()["processRevision"] == 1
    finally:
        again.stop()


def test_two_instances_on_one_database_see_each_others_changes_at_once(
    tmp_path: Path, image: str, postgres: Any
) -> None:
    database = postgres.new_database()
    try:
        one = start(tmp_path / "one", {"DB_URL": database})
        two = start(tmp_path / "two", {"DB_URL": database})
        with one.client() as a, two.client() as b:
            assert deploy(a, package(image, answer("v1"))).status_code == 201
            assert b.get("/processes/echo-pkg").json()["version"] == "1.0.0"
            assert b.post("/processes/echo-pkg/execution", json={"inputs": {}}).json() == "v1"
            wait_until(
                lambda: "echo-pkg" in {p["id"] for p in b.get("/processes").json()["processes"]},
                5,
                "the deployed process in the other instance's list",
            )
            assert replace(b, "echo-pkg", package(image, answer("v2"), "2.0.0")).status_code == 204
            assert a.post("/processes/echo-pkg/execution", json={"inputs": {}}).json() == "v2"
            assert deploy(b, package(image, answer("again"))).status_code == 409
            assert a.delete("/processes/echo-pkg").status_code == 204
            assert b.get("/processes/echo-pkg").status_code == 404
            assert b.post("/processes/echo-pkg/execution", json={"inputs": {}}).status_code == 404
        one.stop()
        two.stop()
    finally:
        postgres.drop_database(database)
