"""Running a process from its page in a real browser (headless Chromium): the form made from
the input schemas, checked before it is sent, the server's 400 shown at the input it names,
the request as curl and Python, and sync and async runs."""

from __future__ import annotations

import base64
import json
import re
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import EXAMPLES, Server, process_info, wait_until

#: echoes its inputs as its result.
ECHO_ALL = (
    "import json, sys; print(json.dumps({'plugin_results': {'inputs': json.loads(sys.argv[-1])}}))"
)


def kinds_process() -> str:
    """Inputs of each kind the form has a field for, beyond those of the bundled echo."""
    document = {
        "info": process_info("kinds"),
        "host": {"type": "subprocess", "command": ["python3", "-c", ECHO_ALL]},
        "inputs": [
            {"id": "flag", "schema": {"type": "boolean"}, "minOccurs": 0},
            {"id": "area", "schema": {"type": "object", "format": "ogc-bbox"}},
            {"id": "grid", "schema": {"type": "string", "format": "byte"}, "minOccurs": 0},
            {
                "id": "settings",
                "title": "Settings",
                "schema": {"type": "object", "required": ["name"]},
                "minOccurs": 0,
            },
        ],
        "outputs": [{"id": "inputs", "schema": {"type": "object"}}],
    }
    return json.dumps(document)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("forms")
    plugins = root / "plugins"
    shutil.copytree(EXAMPLES, plugins)
    (plugins / "kinds.yml").write_text(kinds_process())
    started = Server(plugins, root / "data").start()
    yield started
    started.stop()


def by_id(browser: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, element_id)


def fill(browser: Any, element_id: str, value: str) -> None:
    field = by_id(browser, element_id)
    field.clear()
    field.send_keys(value)


def shown_results(browser: Any) -> str:
    """The results of a sync run from the form, as it shows them; its job page is linked."""
    from selenium.webdriver.common.by import By

    shown = wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#execute-results pre"), 20, "the results"
    )
    job_page = browser.find_element(By.ID, "execute-job").get_attribute("href")
    assert re.search(r"/jobs/[0-9a-f-]{36}\?f=html$", job_page), job_page
    return str(shown[0].text)


def job_count(http: httpx.Client) -> int:
    return int(http.get("/jobs", params={"limit": 1}).json()["numberMatched"])


def test_a_person_runs_a_process_from_its_form_and_gets_the_same_as_a_script(
    server: Server, browser: Any, screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(f"{server.url}/processes/echo?f=html")
    wait_until(lambda: by_id(browser, "execute").is_displayed(), 10, "the form")
    assert browser.find_element(By.CSS_SELECTOR, "label[for=in-stringInput]").text.startswith(
        "A text"
    )
    pause = by_id(browser, "in-pause")
    assert (pause.get_attribute("min"), pause.get_attribute("max")) == ("0", "3600")
    fill(browser, "in-stringInput", "hello")
    fill(browser, "in-doubleInput", "2.5")
    fill(browser, "in-arrayInput-0", "1")
    browser.find_element(By.CSS_SELECTOR, "[data-input=arrayInput] button.add").click()
    fill(browser, "in-arrayInput-1", "2")
    Select(by_id(browser, "in-choiceInput")).select_by_visible_text("green")
    curl = by_id(browser, "snippet-curl").get_attribute("textContent")
    labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".field > label:first-child")]
    assert labels[0] == "A text (required)" and labels[1] == "Pause"  # the process's order
    browser.execute_script("document.getElementById('run').scrollIntoView()")
    browser.save_screenshot(str(screenshots / "process-form.png"))
    by_id(browser, "execute-button").click()
    results = json.loads(shown_results(browser))
    assert results["stringInput"] == "hello" and results["arrayInput"] == [1, 2]
    assert results["choiceInput"] == "green" and results["doubleInput"] == 2.5
    # the curl snippet is the request the form sent: sent by a script, the same results
    words = shlex.split(curl)
    body = json.loads(words[words.index("-d") + 1])
    assert body == {
        "inputs": {
            "stringInput": "hello",
            "doubleInput": 2.5,
            "arrayInput": [1, 2],
            "choiceInput": "green",
        },
        "response": "document",  # one value per output, shown on the page
    }
    with server.client() as http:
        assert http.post(words[2], json=body).json() == results
    # the Python snippets run, and get the same results
    for snippet, answer in (("snippet-httpx", "response"), ("snippet-owslib", "result")):
        code = by_id(browser, snippet).get_attribute("textContent")
        namespace: dict[str, Any] = {}
        exec(compile(code, snippet, "exec"), namespace)
        got = namespace[answer]
        assert (got.json() if answer == "response" else got) == results, code


def test_mistakes_are_shown_at_their_input_before_and_after_sending(
    server: Server, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    with server.client() as http:
        before = job_count(http)
        browser.get(f"{server.url}/processes/echo?f=html")
        wait_until(lambda: by_id(browser, "execute").is_displayed(), 10, "the form")
        by_id(browser, "execute-button").click()  # the required text is empty
        error = wait_until(lambda: by_id(browser, "error-stringInput").text, 5, "the error")
        assert "required" in error
        assert by_id(browser, "in-stringInput").get_attribute("aria-invalid") == "true"
        assert job_count(http) == before  # nothing was sent

        browser.get(f"{server.url}/processes/kinds?f=html")
        wait_until(lambda: by_id(browser, "execute").is_displayed(), 10, "the form")
        for index, corner in enumerate(("5", "45", "6", "46")):
            fill(browser, f"in-area-{index}", corner)
        fill(browser, "in-settings", '{"size": 3}')  # JSON, but its schema wants a name
        by_id(browser, "execute-button").click()
        error = wait_until(lambda: by_id(browser, "error-settings").text, 10, "the server's 400")
        assert "'name' is a required property" in error
        assert by_id(browser, "in-settings").get_attribute("aria-invalid") == "true"
        assert not browser.find_element(By.ID, "execute-results").is_displayed()


def test_each_kind_of_input_reaches_the_process(
    server: Server, browser: Any, tmp_path: Path
) -> None:
    grid = tmp_path / "grid.bin"
    grid.write_bytes(bytes(range(256)))
    browser.get(f"{server.url}/processes/kinds?f=html")
    wait_until(lambda: by_id(browser, "execute").is_displayed(), 10, "the form")
    from selenium.webdriver.support.ui import Select

    Select(by_id(browser, "in-flag")).select_by_visible_text("yes")  # optional: may be left out
    for index, corner in enumerate(("-0.5", "51.2", "0.3", "51.7")):
        fill(browser, f"in-area-{index}", corner)
    by_id(browser, "in-grid").send_keys(str(grid))
    fill(browser, "in-settings", '{"name": "depths", "levels": [1, 2]}')
    wait_until(lambda: "grid" in by_id(browser, "snippet-curl").get_attribute("textContent"), 5)
    by_id(browser, "execute-button").click()
    shown = shown_results(browser)
    # an object is a qualified value in a results document (OGC inlineOrRefData)
    inputs = json.loads(shown)["inputs"]["value"]
    assert inputs["flag"] is True
    assert inputs["area"] == {
        "bbox": [-0.5, 51.2, 0.3, 51.7],
        "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
    }
    assert base64.b64decode(inputs["grid"]) == bytes(range(256))
    assert inputs["settings"] == {"name": "depths", "levels": [1, 2]}


def test_a_background_run_opens_its_job_page(server: Server, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{server.url}/processes/echo?f=html")
    wait_until(lambda: by_id(browser, "execute").is_displayed(), 10, "the form")
    fill(browser, "in-stringInput", "later")
    fill(browser, "in-pause", "1")
    browser.find_element(By.CSS_SELECTOR, "input[name=mode][value=async]").click()
    assert "respond-async" in by_id(browser, "snippet-curl").get_attribute("textContent")
    by_id(browser, "execute-button").click()
    wait_until(lambda: "/jobs/" in browser.current_url, 10, "the job page")
    # once it ends, its page shows the results
    outputs = wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, ".output"), 20, "the job's end, and results"
    )
    assert "later" in outputs[0].text


def test_the_process_page_says_how_to_run_without_javascript(server: Server) -> None:
    with server.client() as http:
        page = http.get("/processes/echo", headers={"Accept": "text/html"}).text
    assert "<noscript>" in page and "The form needs JavaScript" in page
    assert 'id="process-description"' in page and "/static/execute.js" in page
