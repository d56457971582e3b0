"""A job's outputs on its HTML pages, in a real browser (headless Chromium): each by its
type (numbers, text, JSON that folds, files as links with their size, images, GeoJSON on a
map), escaped, with nothing fetched from elsewhere; and the pages read with JavaScript off."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, process_info, wait_status, wait_until

ASYNC = {"Prefer": "respond-async"}


def png(width: int, height: int) -> bytes:
    """A small RGB PNG, made here so that the test needs no image library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x1f\x3a\x5f" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PICTURE = png(3, 2)
THUMB = png(1, 1)
OUTLINE = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"reach": "<b>north</b>", "depth": 1.5},
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [[-0.5, 51.2], [0.3, 51.2], [0.3, 51.7], [-0.5, 51.7], [-0.5, 51.2]]
                ],
            },
        },
        {
            "type": "Feature",
            "properties": {},
            "geometry": {"type": "Point", "coordinates": [0, 51.5]},
        },
    ],
}
GAUGE = {"type": "Point", "coordinates": [-0.1, 51.4]}
SUMMARY = {"cells": 4, "depths": [0.1, 0.25], "note": "<script>alert(1)</script>", "dry": None}

#: writes a picture and a GeoJSON file to its results directory, and returns values of
#: every kind.
WRITER_PY = f"""\
import base64, json, os
folder = os.environ["PROCESS_API_RESULTS_DIR"]
open(os.path.join(folder, "depths.png"), "wb").write(base64.b64decode({base64.b64encode(PICTURE).decode()!r}))
open(os.path.join(folder, "outline.geojson"), "w").write({json.dumps(OUTLINE)!r})
print(json.dumps({{"plugin_results": {{
    "area": 12.5,
    "flooded": True,
    "label": "north reach",
    "summary": {SUMMARY!r},
    "gauge": {GAUGE!r},
    "picture": "depths.png",
    "outline": "outline.geojson",
    "thumb": {base64.b64encode(THUMB).decode()!r},
}}}}).replace("None", "null"))
"""

MAPPER = {
    "info": process_info("mapper"),
    "host": {"type": "subprocess", "command": ["python3", "mapper.py"]},
    "outputs": [
        {"id": "area", "schema": {"type": "number"}},
        {"id": "flooded", "schema": {"type": "boolean"}},
        {"id": "label", "schema": {"type": "string"}},
        {"id": "summary", "schema": {"type": "object"}},
        {"id": "gauge", "schema": {"type": "object"}},
        {"id": "picture", "schema": {"type": "string", "contentMediaType": "image/png"}},
        {
            "id": "outline",
            "schema": {"type": "string", "contentMediaType": "application/geo+json"},
        },
        {
            "id": "thumb",
            "schema": {
                "type": "string",
                "contentMediaType": "image/png",
                "contentEncoding": "base64",
            },
        },
    ],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("result-pages")
    plugins = root / "plugins"
    plugins.mkdir()
    (plugins / "mapper.yml").write_text(json.dumps(MAPPER))
    (plugins / "mapper.py").write_text(WRITER_PY)
    started = Server(plugins, root / "data").start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def job_id(server: Server) -> str:
    with server.client() as http:
        response = http.post("/processes/mapper/execution", json={"inputs": {}}, headers=ASYNC)
        assert response.status_code == 201, response.text
        found = str(response.json()["jobID"])
        status = wait_status(http, found, {"successful", "failed"})
        assert status["status"] == "successful", status
        return found


def output(browser: Any, output_id: str) -> Any:
    from selenium.webdriver.common.by import By

    for section in browser.find_elements(By.CSS_SELECTOR, "section.output"):
        if section.find_element(By.TAG_NAME, "h3").text.split(" ")[0] == output_id:
            return section
    raise AssertionError(f"no output {output_id} on the page")


@pytest.mark.parametrize("page", ["/jobs/{}?f=html", "/jobs/{}/results?f=html"])
def test_each_output_shows_by_its_type(
    server: Server, browser: Any, job_id: str, page: str, screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server.url + page.format(job_id))
    assert output(browser, "area").find_element(By.TAG_NAME, "output").text == "12.5"
    assert output(browser, "flooded").find_element(By.TAG_NAME, "output").text == "true"
    assert output(browser, "label").find_element(By.TAG_NAME, "output").text == "north reach"
    # JSON as a tree that folds, its text escaped
    summary = output(browser, "summary")
    assert not summary.find_elements(By.TAG_NAME, "script")
    assert '"<script>alert(1)</script>"' in summary.text and "null" in summary.text
    depths = summary.find_element(By.XPATH, ".//span[@class='key'][.='\"depths\"']/..")
    assert depths.find_element(By.TAG_NAME, "summary").text == "[2 items]"
    items = depths.find_element(By.TAG_NAME, "ol")
    assert items.is_displayed()
    depths.find_element(By.TAG_NAME, "summary").click()
    assert not items.is_displayed()
    # files: a link with the file's name and size, an image shown
    picture = output(browser, "picture")
    link = picture.find_element(By.TAG_NAME, "a")
    assert link.text == "depths.png"
    assert picture.find_element(By.CLASS_NAME, "size").text == f"({len(PICTURE)} bytes)"
    with httpx.Client() as http:
        assert http.get(link.get_attribute("href")).content == PICTURE
    shown = picture.find_element(By.TAG_NAME, "img")
    wait_until(lambda: shown.get_property("naturalWidth") == 3, 10, "the picture to load")
    thumb = output(browser, "thumb").find_element(By.TAG_NAME, "img")
    assert thumb.get_attribute("src").startswith("data:image/png;base64,")
    assert thumb.get_property("naturalWidth") == 1
    # GeoJSON on maps: a value drawn from the page, a file fetched
    for output_id, features in (("gauge", "1"), ("outline", "2")):
        drawn = output(browser, output_id).find_element(By.CLASS_NAME, "map")
        wait_until(lambda: drawn.get_attribute("data-features"), 10, output_id)  # noqa: B023
        assert drawn.get_attribute("data-features") == features
        assert drawn.find_elements(By.CSS_SELECTOR, "svg path")
    # photographed whole, for the README
    name = "results-page.png" if "results" in page else "job-results.png"
    size = browser.get_window_size()
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1100, min(height + 120, 3000))  # the whole page
    browser.save_screenshot(str(screenshots / name))
    browser.set_window_size(size["width"], size["height"])
    # a feature's properties in its popup, as text
    polygon = output(browser, "outline").find_element(By.CSS_SELECTOR, "svg path")
    browser.execute_script(
        "arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", polygon
    )
    popup = wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, ".leaflet-popup-content"), 5)
    assert "<b>north</b>" in popup[0].get_attribute("textContent")
    assert not popup[0].find_elements(By.TAG_NAME, "b")
    # everything the page loaded came from this server
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(function (e) { return e.name; })"
    )
    assert loaded and all(name.startswith(server.url + "/") for name in loaded), loaded


def test_the_pages_read_with_javascript_off(
    server: Server, scriptless_browser: Any, job_id: str
) -> None:
    from selenium.webdriver.common.by import By

    browser = scriptless_browser
    browser.get(f"{server.url}/jobs/{job_id}/results?f=html")
    assert output(browser, "area").find_element(By.TAG_NAME, "output").text == "12.5"
    picture = output(browser, "picture").find_element(By.TAG_NAME, "img")
    wait_until(lambda: picture.get_property("naturalWidth") == 3, 10, "the picture")
    summary = output(browser, "summary")
    assert summary.find_element(By.TAG_NAME, "details").get_attribute("open") is not None
    assert '"cells": 4' in summary.text
    assert output(browser, "outline").find_element(By.TAG_NAME, "a").text == "outline.geojson"
    # no script ran: no map drawn, and the page says how the job ended
    assert not browser.find_elements(By.CSS_SELECTOR, ".leaflet-container")
    browser.get(f"{server.url}/jobs/{job_id}?f=html")
    assert browser.find_element(By.ID, "status").text == "successful"
    # the process page says why its form needs JavaScript, and how to run it without
    browser.get(f"{server.url}/processes/mapper?f=html")
    assert not browser.find_element(By.ID, "execute").is_displayed()
    shown = browser.find_element(By.TAG_NAME, "body").text  # the text a person sees
    assert "The form needs JavaScript" in shown
    assert f"curl -s {server.url}/processes/mapper/execution" in shown
    # the job list filters by a plain form
    browser.get(f"{server.url}/jobs?f=html")
    browser.find_element(By.CSS_SELECTOR, "input[name=status][value=successful]").click()
    browser.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    wait_until(lambda: "status=successful" in browser.current_url, 10, "the filtered list")
    listed = browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")
    assert job_id in [row.get_attribute("data-job") for row in listed]


#: the contrast of each visible text with what is behind it (WCAG 2 relative luminance),
#: and every form field's name as assistive technology reads it.
AUDIT_JS = """
function luminance(rgb) {
  var c = rgb.map(function (v) { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}
function parse(color) { var m = color.match(/[\\d.]+/g).map(Number); return {rgb: m.slice(0, 3), alpha: m.length > 3 ? m[3] : 1}; }
function background(element) {
  for (var e = element; e; e = e.parentElement) {
    var b = parse(getComputedStyle(e).backgroundColor);
    if (b.alpha >= 0.9) { return b.rgb; }
  }
  return [255, 255, 255];
}
var low = [];
var walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (var node = walker.nextNode(); node; node = walker.nextNode()) {
  var element = node.parentElement;
  if (!node.textContent.trim() || !element.offsetParent && getComputedStyle(element).position !== "fixed") { continue; }
  if (element.closest(".leaflet-container, noscript, script")) { continue; }
  var style = getComputedStyle(element);
  var a = luminance(parse(style.color).rgb), b = luminance(background(element));
  var ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  var large = parseFloat(style.fontSize) >= 24 || parseFloat(style.fontSize) >= 18.6 && parseInt(style.fontWeight) >= 700;
  if (ratio < (large ? 3 : 4.5)) { low.push(node.textContent.trim().slice(0, 40) + " " + ratio.toFixed(2)); }
}
var unnamed = [];
document.querySelectorAll("input, select, textarea, button").forEach(function (field) {
  if (field.type === "hidden" || !field.offsetParent) { return; }
  var named = field.labels && field.labels.length || field.getAttribute("aria-label") ||
    field.getAttribute("aria-labelledby") || field.tagName === "BUTTON" && field.textContent.trim();
  if (!named) { unnamed.push(field.outerHTML.slice(0, 80)); }
});
var images = Array.prototype.filter.call(document.images, function (i) { return !i.alt; }).map(function (i) { return i.src.slice(0, 60); });
return {low: low, unnamed: unnamed, images: images,
        overflow: document.documentElement.scrollWidth - window.innerWidth};
"""


def test_every_page_fits_a_phone_and_reads_for_everyone(
    server: Server, browser: Any, job_id: str, screenshots: Path
) -> None:
    """At a phone's width no page scrolls sideways; text keeps WCAG AA contrast; every
    field has a name and every image a text."""
    pages = [
        "/",
        "/processes?f=html",
        "/processes/mapper?f=html",
        "/jobs?f=html",
        f"/jobs/{job_id}?f=html",
        f"/jobs/{job_id}/results?f=html",
        f"/jobs/{job_id}/logs?f=html",
        "/conformance?f=html",
    ]
    size = browser.get_window_size()
    browser.set_window_size(390, 844)
    try:
        for page in pages:
            browser.get(server.url + page)
            found = browser.execute_script(AUDIT_JS)
            assert found["overflow"] <= 0, (page, found["overflow"])
            assert found["low"] == [], page
            assert found["unnamed"] == [], page
            assert found["images"] == [], page
        browser.get(f"{server.url}/jobs/{job_id}?f=html")
        browser.save_screenshot(str(screenshots / "job-on-a-phone.png"))
    finally:
        browser.set_window_size(size["width"], size["height"])
