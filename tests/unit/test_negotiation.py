"""Content negotiation: which Accept headers get HTML instead of JSON."""

from __future__ import annotations

import pytest

from process_api.api.negotiation import _prefers_html

CHROME = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
FIREFOX_OLD = "text/html,application/xhtml+xml,application/xml;q=0.9,image/webp,*/*;q=0.8"


@pytest.mark.parametrize("accept", [CHROME, FIREFOX, FIREFOX_OLD])
def test_browsers_get_html(accept: str) -> None:
    assert _prefers_html(accept) is True


@pytest.mark.parametrize(
    "accept",
    [
        "",  # no Accept header (python-requests without headers, many scripts)
        "*/*",  # curl
        "application/json",
        "application/json, text/plain, */*",  # axios
        "application/geo+json",
        "application/problem+json",
        "text/*",
        "text/plain",
    ],
)
def test_api_clients_get_json(accept: str) -> None:
    assert _prefers_html(accept) is False


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        ("text/html;q=0.5, application/json", False),
        ("application/json, text/html;q=0.5", False),
        ("text/html, application/json;q=0.5", True),
        ("application/json;q=0.9, text/html", True),
        ("text/html;q=0.8, application/json;q=0.9", False),
        ("text/html;q=0.9, application/json;q=0.8", True),
        ("text/html;q=0", False),
        ("text/html;q=0, */*", False),
        ("application/xhtml+xml;q=0.9, application/json;q=0.5", True),
        ("text/html;level=1;q=0.4, application/json;q=0.3", True),
        ("text/html ; q=0.5 , application/json ; q=0.6", False),
        ("TEXT/HTML", True),
    ],
)
def test_quality_values(accept: str, html: bool) -> None:
    assert _prefers_html(accept) is html


def test_html_without_json_at_low_quality_still_gets_html() -> None:
    assert _prefers_html("text/html;q=0.1") is True


def test_malformed_quality_counts_as_not_acceptable() -> None:
    assert _prefers_html("text/html;q=high") is False
    assert _prefers_html("text/html;q=high, application/json;q=0.1") is False
