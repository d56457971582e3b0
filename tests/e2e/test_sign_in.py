"""Signing in from a browser: headless Chromium (Debian's, driven by Selenium and its
chromedriver) through the authorization code flow with PKCE of the test provider."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from tests.conftest import Server, wait_status, wait_until
from tests.e2e.test_auth import FILES, as_user
from tests.oidc_provider import AUDIENCE, CLIENT_ID, Provider


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    made = Provider()
    yield made
    made.close()


@pytest.fixture(scope="module")
def server(provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("sign-in")
    plugins = root / "plugins"
    plugins.mkdir()
    for name, text in FILES.items():
        (plugins / name).write_text(text)
    env = {
        "AUTH_SERVICE": "oidc",
        "OIDC_ISSUER": provider.issuer,
        "OIDC_AUDIENCE": AUDIENCE,
        "OIDC_CLIENT_ID": CLIENT_ID,
    }
    started = Server(plugins, root / "data", env=env).start()
    yield started
    started.stop()


def sign_in(browser: Any, server: Server, user: str, page: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server.url + page)
    browser.find_element(By.LINK_TEXT, "Sign in").click()
    field = wait_until(lambda: browser.find_elements(By.ID, "username"), 15, "the sign-in page")
    field[0].send_keys(user)
    browser.find_element(By.ID, "sign-in").click()
    wait_until(lambda: browser.current_url.startswith(server.url), 15, "the way back")


def fetch(browser: Any, path: str, method: str = "GET", **headers: str) -> dict[str, Any]:
    """A request made by the page's own script: with the session cookie, as any would be."""
    result: dict[str, Any] = browser.execute_async_script(
        """
        const [path, method, headers, done] = arguments;
        const body = method === "POST" ? JSON.stringify({inputs: {}}) : undefined;
        fetch(path, {method, headers: {"Content-Type": "application/json", ...headers}, body})
          .then(async r => done({status: r.status, body: await r.text()}));
        """,
        path,
        method,
        headers,
    )
    return result


def test_a_person_signs_in_works_as_themselves_and_signs_out(
    browser: Any, server: Server, provider: Provider, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    with server.client() as http:
        job_id = http.post(
            "/processes/quick/execution",
            json={"inputs": {}},
            headers={**as_user(provider.token("alice")), "Prefer": "respond-async"},
        ).json()["jobID"]
        http.headers.update(as_user(provider.token("alice")))
        wait_status(http, job_id, {"successful"})
    # a page that needs a user says how to sign in, and goes back there afterwards
    browser.get(server.url + "/jobs?f=html")
    assert "Sign in" in browser.page_source
    sign_in(browser, server, "alice", "/jobs?f=html")
    assert browser.current_url.startswith(server.url + "/jobs")
    assert "alice" in browser.find_element(By.TAG_NAME, "header").text
    assert job_id in browser.page_source  # her job, in her list
    # the code was exchanged with its PKCE verifier, by the client the server signs in as
    exchange = provider.token_requests[-1]
    assert exchange["client_id"] == CLIENT_ID and len(exchange["code_verifier"]) >= 43
    cookie = next(c for c in browser.get_cookies() if c["name"] == "process_api_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    # a change from the browser needs the session's CSRF token, which only its pages carry
    refused = fetch(browser, "/processes/quick/execution", "POST")
    assert refused["status"] == 403 and "CSRF" in refused["body"], refused
    csrf = browser.find_element(By.NAME, "csrf_token").get_attribute("value")
    made = fetch(browser, "/processes/quick/execution", "POST", **{"X-CSRF-Token": csrf})
    assert made["status"] == 200, made
    # sign-out ends the session here and at the provider
    signed_outs = provider.sign_outs
    browser.find_element(By.XPATH, "//button[text()='Sign out']").click()
    wait_until(lambda: "Sign in" in browser.page_source, 15, "the signed-out page")
    assert provider.sign_outs == signed_outs + 1
    with server.client(cookies={"process_api_session": cookie["value"]}) as http:
        assert http.get("/jobs").status_code == 401  # the old cookie signs nobody in
    assert cookie["value"] not in server.output()


def test_a_sign_in_goes_back_only_to_this_server_and_only_once(server: Server) -> None:
    """The flow by hand: the page to go back to is never another site (an open redirect),
    and the provider's answer signs in once."""
    with httpx.Client(timeout=30) as http:
        to_provider = http.get(server.url + "/auth/login", params={"next": "//evil.example/"})
        assert to_provider.status_code == 303
        asked = dict(parse_qsl(urlsplit(to_provider.headers["Location"]).query))
        assert asked["code_challenge_method"] == "S256" and asked["client_id"] == CLIENT_ID
        answer = http.get(
            to_provider.headers["Location"].replace("/auth?", "/signed-in?") + "&username=bo"
        )
        callback = answer.headers["Location"]
        # the provider's answer opened in another browser (sent to a victim) signs no one in
        with httpx.Client(timeout=30) as elsewhere:
            refused = elsewhere.get(callback)
            assert refused.status_code == 401 and "not started in this browser" in refused.text
        back = http.get(callback)
        assert back.status_code == 303 and back.headers["Location"] == server.url + "/"
        assert "process_api_session" in back.cookies
        # any text in the CSRF header is refused, not an error
        odd = http.post(
            server.url + "/processes/quick/execution",
            json={"inputs": {}},
            headers={"X-CSRF-Token": "\u00e9".encode()},
        )
        assert odd.status_code == 403, odd.text
        again = http.get(callback)
        assert again.status_code == 401 and "sign in again" in again.json()["detail"]
        made_up = http.get(server.url + "/auth/callback", params={"code": "x", "state": "y"})
        assert made_up.status_code == 401
    code = dict(parse_qsl(urlsplit(callback).query))["code"]
    assert "/auth/callback?code=***&state=***" in server.output()  # the access log's line
    assert code not in server.output()


def test_a_browser_signed_in_at_one_instance_is_signed_in_at_every_other(
    server: Server, provider: Provider, tmp_path: Path
) -> None:
    """Sign-ins and sessions live in the job database: the provider may send the browser back
    to another instance, and a load balancer may send its next request to a third."""
    env = {
        "AUTH_SERVICE": "oidc",
        "OIDC_ISSUER": provider.issuer,
        "OIDC_AUDIENCE": AUDIENCE,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "DB_PATH": str(server.data_dir / "jobs.sqlite"),
        "PUBLIC_URL": server.url,  # the one address of both, as behind a load balancer
    }
    other = Server(server.plugins, tmp_path / "other", env=env).start()
    try:
        with httpx.Client(timeout=30) as http:
            started = http.get(server.url + "/auth/login", params={"next": "/jobs?f=html"})
            answer = http.get(
                started.headers["Location"].replace("/auth?", "/signed-in?") + "&username=cy"
            )
            # the provider sends the browser back to the other instance's address
            back = http.get(answer.headers["Location"].replace(server.url, other.url))
            assert back.status_code == 303, back.text
            for instance in (server, other):
                page = http.get(instance.url + "/jobs?f=html")
                assert page.status_code == 200 and ">cy<" in page.text, instance.url
    finally:
        other.stop()
