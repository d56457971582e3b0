"""The job pages in a real browser (headless Chromium): on a job's page status, progress and
log lines appear as the job runs, its results once it ends, and a person dismisses a job from
it; the job list is filtered, paged and kept current; the landing page sums up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, script_process, wait_status, wait_until

ASYNC = {"Prefer": "respond-async"}
PROGRESS = (
    "echo 'reading the grid'; sleep 1; "
    """echo '{"progress": 50, "message": "half way"}'; sleep 1.5; """
    "echo 'writing the depths' >&2; sleep 1; "
    """echo '{"plugin_results": "flooded"}'"""
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("pages")
    plugins = root / "plugins"
    plugins.mkdir()
    (plugins / "flood.yml").write_text(script_process("flood", PROGRESS))
    (plugins / "long.yml").write_text(script_process("long", "echo started; sleep 60"))
    (plugins / "chatty.yml").write_text(script_process("chatty", "seq 1 600; sleep 60"))
    (plugins / "quick.yml").write_text(
        script_process("quick", """echo '{"plugin_results": "ok"}'""")
    )
    started = Server(plugins, root / "data").start()
    yield started
    started.stop()


def submit(http: httpx.Client, process_id: str) -> str:
    response = http.post(f"/processes/{process_id}/execution", json={"inputs": {}}, headers=ASYNC)
    assert response.status_code == 201, response.text
    return str(response.json()["jobID"])


def text_of(browser: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return str(browser.find_element(By.ID, element_id).text)


def test_a_person_watches_a_job_run_and_reads_its_results(
    server: Server, browser: Any, screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By

    with server.client() as http:
        job_id = submit(http, "flood")
        browser.get(f"{server.url}/jobs/{job_id}?f=html")
        wait_until(lambda: "reading the grid" in text_of(browser, "log"), 10, "the first line")
        assert text_of(browser, "status") in ("accepted", "running")
        wait_until(lambda: text_of(browser, "message") == "half way", 10, "the progress message")
        progress = browser.find_element(By.ID, "progress")
        assert progress.get_attribute("value") == "50"
        assert text_of(browser, "progress-text") == "50 %"
        wait_until(lambda: "writing the depths" in text_of(browser, "log"), 10, "the second line")
        stderr = browser.find_elements(By.CSS_SELECTOR, "#log .stderr")
        assert [e.text for e in stderr] == ["writing the depths"]
        browser.save_screenshot(str(screenshots / "job-running.png"))
        # once it ends the page shows it as it is now, with a way to its results
        wait_until(lambda: text_of(browser, "status") == "successful", 15, "the job's end")
        results = wait_until(
            lambda: browser.find_elements(By.LINK_TEXT, "The results page"), 10, "the results"
        )
        # the results show on the job page itself
        shown = browser.find_element(By.CSS_SELECTOR, ".output output").text
        assert shown == "flooded"
        assert wait_status(http, job_id, {"successful"})["status"] == "successful"
        assert not browser.find_elements(By.ID, "dismiss")
        assert text_of(browser, "duration").endswith(" s")
        results[0].click()
        wait_until(lambda: "flooded" in browser.page_source, 10, "the results page")


def test_a_long_log_opens_at_its_last_lines(server: Server, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    with server.client() as http:
        job_id = submit(http, "chatty")
        wait_until(
            lambda: len(http.get(f"/jobs/{job_id}/logs").json()["logs"]) == 600, 10, "600 lines"
        )
        browser.get(f"{server.url}/jobs/{job_id}?f=html")
        wait_until(lambda: text_of(browser, "log").endswith("600"), 10, "the last line")
        lines = browser.find_elements(By.CSS_SELECTOR, "#log span")
        assert [line.text for line in lines] == [str(n) for n in range(101, 601)]
        assert text_of(browser, "log-skipped") == (
            "The first 100 lines are left out here: see the whole log."
        )
        http.delete(f"/jobs/{job_id}")


def test_a_person_dismisses_a_job_from_its_page(server: Server, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    with server.client() as http:
        job_id = submit(http, "long")
        wait_status(http, job_id, {"running"})
        browser.get(f"{server.url}/jobs/{job_id}?f=html")
        button = wait_until(
            lambda: [b for b in browser.find_elements(By.ID, "dismiss") if b.is_displayed()],
            10,
            "the dismiss button",
        )[0]
        button.click()
        browser.switch_to.alert.dismiss()  # on second thoughts: nothing happens
        assert http.get(f"/jobs/{job_id}").json()["status"] == "running"
        button.click()
        browser.switch_to.alert.accept()
        wait_until(lambda: text_of(browser, "status") == "dismissed", 10, "the dismissed status")
        assert http.get(f"/jobs/{job_id}").json()["status"] == "dismissed"


def test_the_job_page_reads_without_javascript(server: Server) -> None:
    with server.client() as http:
        job_id = submit(http, "long")
        wait_status(http, job_id, {"running"})
        page = http.get(f"/jobs/{job_id}", headers={"Accept": "text/html"}).text
        assert 'id="status"' in page and "running" in page
        assert (
            "<noscript>" in page
            and f"curl -X DELETE {str(http.base_url).rstrip('/')}/jobs/{job_id}" in page
        )
        assert "/static/job.js" in page
        assert http.get("/static/job.js").headers["content-type"].startswith("text/javascript")
        http.delete(f"/jobs/{job_id}")


def rows(browser: Any) -> list[dict[str, str]]:
    from selenium.webdriver.common.by import By

    found = []
    for row in browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr"):
        cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
        found.append({"id": row.get_attribute("data-job"), "process": cells[1], "status": cells[2]})
    return found


def test_a_person_filters_and_pages_the_job_list(server: Server, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    with server.client() as http:
        quick = [submit(http, "quick") for _ in range(3)]
        for job_id in quick:
            wait_status(http, job_id, {"successful"})
        browser.get(f"{server.url}/jobs?f=html")
        # the page's title says which page came instead, should the form not come
        process = wait_until(
            lambda: browser.find_elements(By.NAME, "processID"),
            10,
            f"the form of the job list (the page is {browser.title!r} at {browser.current_url})",
        )
        Select(process[0]).select_by_visible_text("quick")
        browser.find_element(By.CSS_SELECTOR, "input[name=status][value=successful]").click()
        Select(browser.find_element(By.NAME, "limit")).select_by_visible_text("10")
        browser.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
        wait_until(lambda: "processID=quick" in browser.current_url, 10, "the filtered list")
        listed = rows(browser)
        assert {r["process"] for r in listed} == {"quick"} and len(listed) >= 3
        assert {r["status"] for r in listed} == {"successful"}
        # the filters stay chosen, and pages of two go back and forth
        address = browser.current_url.replace("limit=10", "limit=2")
        browser.get(address)
        first_page = [r["id"] for r in rows(browser)]
        assert first_page == quick[::-1][:2]
        browser.find_element(By.LINK_TEXT, "Older jobs →").click()
        wait_until(lambda: [r["id"] for r in rows(browser)] != first_page, 10, "the next page")
        assert rows(browser)[0]["id"] == quick[0]
        browser.find_element(By.LINK_TEXT, "← Newer jobs").click()
        wait_until(lambda: [r["id"] for r in rows(browser)] == first_page, 10, "the page before")
        chosen = Select(browser.find_element(By.NAME, "processID")).first_selected_option
        assert chosen.text == "quick"


def test_active_rows_of_the_job_list_follow_their_jobs(server: Server, browser: Any) -> None:
    with server.client() as http:
        job_id = submit(http, "long")
        wait_status(http, job_id, {"running"})
        browser.get(f"{server.url}/jobs?f=html&status=running&processID=long")
        assert {"id": job_id, "process": "long", "status": "running"} in rows(browser)
        http.delete(f"/jobs/{job_id}")
        wait_until(
            lambda: {"id": job_id, "process": "long", "status": "dismissed"} in rows(browser),
            10,
            "the row to show the job dismissed, without a reload",
        )


def test_the_landing_page_sums_up_jobs_and_processes(server: Server, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    with server.client() as http:
        wait_status(http, submit(http, "quick"), {"successful"})
        browser.get(f"{server.url}/")
        counts = {
            item.find_element(By.CSS_SELECTOR, ".status").text: int(
                item.find_element(By.TAG_NAME, "strong").text
            )
            for item in browser.find_elements(By.CSS_SELECTOR, ".counts li")
        }
        for status, shown in counts.items():
            listed = http.get("/jobs", params={"status": status, "limit": 1}).json()
            assert shown == listed["numberMatched"], status
        assert counts["successful"] >= 1
        last = browser.find_element(By.CSS_SELECTOR, "table caption").text
        assert last == "The last jobs"
        names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "ul.processes a")]
        assert names == ["chatty", "flood", "long", "quick"]
        # a script's landing page stays the OGC document
        assert "counts" not in http.get("/", headers={"Accept": "application/json"}).json()
