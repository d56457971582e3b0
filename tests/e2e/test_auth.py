"""Authentication and per-user jobs: real tokens signed with RSA and EC keys, checked by the
server against the keys a provider on 127.0.0.1 publishes (tests/oidc_provider.py); API keys
made with `process-api keys`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import SCRUBBED, Server, process_info, wait_status
from tests.images import busybox_image
from tests.oidc_provider import AUDIENCE, Provider, SigningKey

ASYNC = {"Prefer": "respond-async"}
WEB_APP = "http://maps.example.org"


def shell_process(process_id: str, script: str, **extra: Any) -> str:
    document = {
        "info": process_info(process_id),
        "host": {"type": "subprocess", "command": ["sh", "-c", script]},
        "inputs": [],
        "outputs": [{"id": "result", "schema": {"type": "string"}}],
        **extra,
    }
    return json.dumps(document)  # YAML reads JSON


FILES = {
    "quick.yml": shell_process("quick", """echo '{"plugin_results": "done"}'"""),
    "slow.yml": shell_process("slow", "sleep 60"),
    "restricted.yml": shell_process(
        "restricted", """echo '{"plugin_results": "secret"}'""", access={"roles": ["analyst"]}
    ),
}


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    made = Provider()
    yield made
    made.close()


def start_server(root: Path, env: dict[str, str]) -> Server:
    plugins = root / "plugins"
    plugins.mkdir(exist_ok=True)
    for name, text in FILES.items():
        (plugins / name).write_text(text)
    return Server(plugins, root / "data", env=env).start()


@pytest.fixture(scope="module")
def server(provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "AUTH_SERVICE": "oidc",
        "OIDC_ISSUER": provider.issuer,
        "OIDC_AUDIENCE": AUDIENCE,
        "OIDC_KEYS_REFRESH": "1",
        "USER_MAX_ACTIVE_JOBS": "2",
        "CORS_ORIGINS": WEB_APP,
    }
    started = start_server(tmp_path_factory.mktemp("auth"), env)
    yield started
    started.stop()


def as_user(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def submit(http: httpx.Client, token: str, process: str = "quick") -> str:
    response = http.post(
        f"/processes/{process}/execution", json={"inputs": {}}, headers={**as_user(token), **ASYNC}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["jobID"])


def refused(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == status and reason in body["detail"], body
    return body


# -- bad credentials -----------------------------------------------------------------


def _hs256_with_the_public_key(provider: Provider) -> str:
    """The classic confusion: the RSA public key used as an HMAC secret."""
    from cryptography.hazmat.primitives import serialization

    public = (
        provider.keys[0]
        .private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    now = int(time.time())
    claims = {"iss": provider.issuer, "aud": AUDIENCE, "sub": "eve", "iat": now, "exp": now + 60}
    header = {"alg": "HS256", "kid": provider.keys[0].kid, "typ": "JWT"}
    signing = b".".join(
        jwt.utils.base64url_encode(json.dumps(part).encode()) for part in (header, claims)
    )
    import hashlib
    import hmac

    signature = hmac.new(public, signing, hashlib.sha256).digest()
    return (signing + b"." + jwt.utils.base64url_encode(signature)).decode()


def _odd_algorithm(provider: Provider) -> str:
    """A token whose header names an algorithm in characters an HTTP header cannot carry."""
    signed = provider.token().split(".")
    header = {"alg": "RS256\u20ac", "kid": provider.keys[0].kid}
    signed[0] = jwt.utils.base64url_encode(json.dumps(header).encode()).decode()
    return ".".join(signed)


def _unsigned(provider: Provider) -> str:
    now = int(time.time())
    claims = {"iss": provider.issuer, "aud": AUDIENCE, "sub": "eve", "iat": now, "exp": now + 60}
    return jwt.encode(claims, None, algorithm="none", headers={"kid": provider.keys[0].kid})


BAD_TOKENS = {
    "expired": (lambda p: p.token(exp=int(time.time()) - 120), "expired"),
    "not yet valid": (lambda p: p.token(nbf=int(time.time()) + 600), "not valid yet"),
    "issued in the future": (lambda p: p.token(iat=int(time.time()) + 600), "not valid yet"),
    "wrong audience": (lambda p: p.token(aud="another-service"), "audience"),
    "wrong issuer": (lambda p: p.token(iss="http://127.0.0.1:1/realms/x"), "another issuer"),
    "no subject": (lambda p: p.token(sub=None), "'sub'"),
    "no expiry": (lambda p: p.token(exp=None), "'exp'"),
    "unknown kid": (lambda p: p.token(key=SigningKey("RS256")), "does not publish"),
    "bad signature": (
        lambda p: p.token(key=SigningKey("RS256"), header={"kid": p.keys[0].kid}),
        "signature does not verify",
    ),
    "alg none": (_unsigned, "algorithm is not accepted"),
    "HS256 with the public key": (_hs256_with_the_public_key, "algorithm is not accepted"),
    "an algorithm no header can repeat": (_odd_algorithm, "algorithm is not accepted"),
    "EC key named for RSA": (
        lambda p: p.token(key=p.keys[1], header={"kid": p.keys[0].kid}),
        "algorithm",
    ),
    "malformed": (lambda p: "not-a-token", "well-formed"),
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_a_bad_token_is_refused_with_401_saying_why(
    server: Server, provider: Provider, case: str
) -> None:
    make, reason = BAD_TOKENS[case]
    token = make(provider)
    with server.client() as http:
        for response in (
            http.get("/jobs", headers=as_user(token)),
            http.post("/processes/quick/execution", json={}, headers=as_user(token)),
            http.get("/conformance", headers=as_user(token)),  # refused even where public
        ):
            body = refused(response, 401, reason)
            challenge = response.headers["WWW-Authenticate"]
            assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
            assert token not in response.text and token not in challenge
            assert body["type"].endswith("unauthorized")


def test_the_server_checks_tokens_signed_with_rsa_and_ec_keys(
    server: Server, provider: Provider
) -> None:
    with server.client() as http:
        for key in provider.keys:
            response = http.get("/jobs", headers=as_user(provider.token("dora", key=key)))
            assert response.status_code == 200, (key.algorithm, response.text)


def test_only_discovery_routes_are_open_without_credentials(server: Server) -> None:
    with server.client() as http:
        for path in ("/", "/conformance", "/api", "/swagger/", "/health", "/ready"):
            assert http.get(path).status_code == 200, path
        for method, path in (
            ("GET", "/processes"),
            ("GET", "/processes/quick"),
            ("POST", "/processes/quick/execution"),
            ("GET", "/jobs"),
            ("GET", "/jobs/anything"),
            ("DELETE", "/jobs/anything"),
            ("GET", "/metrics"),
        ):
            response = http.request(method, path, json={} if method == "POST" else None)
            refused(response, 401, "sign in")
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="process-api"'
        page = http.get("/jobs", headers={"Accept": "text/html"})
        assert page.status_code == 401 and "sign in" in page.text
        assert page.headers["content-type"].startswith("text/html")


# -- who sees what -------------------------------------------------------------------------


def test_a_user_sees_and_touches_only_their_own_jobs(server: Server, provider: Provider) -> None:
    alice, bob = provider.token("alice"), provider.token("bob")
    admin = provider.token("root", roles=["admin"])
    with server.client() as http:
        job_id = submit(http, alice)
        wait_status_as(http, alice, job_id, {"successful"})
        mine = http.get(f"/jobs/{job_id}/metadata", headers=as_user(alice)).json()
        assert mine["submitter"] == "alice" and mine["submitterName"] == "alice", mine
        for suffix in ("", "/results", "/logs", "/metadata", "/files", "/results/result"):
            theirs = http.get(f"/jobs/{job_id}{suffix}", headers=as_user(bob))
            refused(theirs, 404, "does not exist")
            assert http.get(f"/jobs/{job_id}{suffix}", headers=as_user(admin)).status_code in (
                200,
                204,
            ), suffix
        refused(http.delete(f"/jobs/{job_id}", headers=as_user(bob)), 404, "does not exist")
        listed = http.get("/jobs?limit=1000", headers=as_user(bob)).json()
        assert job_id not in [j["jobID"] for j in listed["jobs"]]
        # nor may bob page from it: as for a job that does not exist
        refused(http.get(f"/jobs?after={job_id}", headers=as_user(bob)), 400, "no job")
        for who in (alice, admin):
            listed = http.get("/jobs?limit=1000", headers=as_user(who)).json()
            assert job_id in [j["jobID"] for j in listed["jobs"]]
        assert http.get(f"/jobs?after={job_id}", headers=as_user(alice)).status_code == 200


def test_an_admin_dismisses_anybodys_job(server: Server, provider: Provider) -> None:
    erin, admin = provider.token("erin"), provider.token("root", roles=["admin"])
    with server.client() as http:
        job_id = submit(http, erin, "slow")
        response = http.delete(f"/jobs/{job_id}", headers=as_user(admin))
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "dismissed"


def test_a_process_open_to_some_roles_is_absent_for_everyone_else(
    server: Server, provider: Provider
) -> None:
    bob = provider.token("bob")
    analyst = provider.token("ana", roles=["analyst"])
    admin = provider.token("root", roles=["admin"])
    with server.client() as http:
        listed = http.get("/processes", headers=as_user(bob)).json()
        assert "restricted" not in [p["id"] for p in listed["processes"]]
        assert listed["numberMatched"] == len(listed["processes"])
        refused(http.get("/processes/restricted", headers=as_user(bob)), 404, "not registered")
        refused(
            http.post("/processes/restricted/execution", json={}, headers=as_user(bob)),
            404,
            "not registered",
        )
        for who in (analyst, admin):
            listed = http.get("/processes", headers=as_user(who)).json()
            assert "restricted" in [p["id"] for p in listed["processes"]]
            ran = http.post(
                "/processes/restricted/execution", json={"inputs": {}}, headers=as_user(who)
            )
            assert ran.status_code == 200 and ran.json() == "secret", ran.text


def test_a_user_over_the_quota_of_active_jobs_is_asked_to_wait(
    server: Server, provider: Provider
) -> None:
    carol, dave = provider.token("carol"), provider.token("dave")
    with server.client() as http:
        first, _ = submit(http, carol, "slow"), submit(http, carol, "slow")
        response = http.post(
            "/processes/quick/execution", json={"inputs": {}}, headers=as_user(carol)
        )
        refused(response, 429, "USER_MAX_ACTIVE_JOBS=2")
        assert int(response.headers["Retry-After"]) > 0
        submit(http, dave)  # another user's quota is their own
        http.delete(f"/jobs/{first}", headers=as_user(carol))
        submit(http, carol)


def wait_status_as(
    http: httpx.Client, token: str, job_id: str, statuses: set[str]
) -> dict[str, Any]:
    http.headers.update(as_user(token))
    try:
        return wait_status(http, job_id, statuses)
    finally:
        del http.headers["Authorization"]


# -- keys of the provider ------------------------------------------------------------


def test_keys_rotated_by_the_provider_are_fetched_once_when_a_token_names_one(
    server: Server, provider: Provider
) -> None:
    with server.client() as http:
        assert http.get("/jobs", headers=as_user(provider.token("frank"))).status_code == 200
        fetches = provider.key_fetches
        # made-up key ids make no fetch within OIDC_KEYS_REFRESH (1 s here)
        stranger_key = SigningKey("RS256")
        for n in range(20):
            stranger = provider.token("frank", key=stranger_key, header={"kid": f"made-up-{n}"})
            refused(http.get("/jobs", headers=as_user(stranger)), 401, "does not publish")
        assert provider.key_fetches - fetches <= 1
        time.sleep(1.1)
        old = provider.keys
        provider.keys = [SigningKey("RS256"), *old]
        try:
            token = provider.token("frank")
            assert http.get("/jobs", headers=as_user(token)).status_code == 200
        finally:
            provider.keys = old


# -- API keys ------------------------------------------------------------------------------


def keys(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env["DATA_DIR"] = str(server.data_dir)
    return subprocess.run(
        [sys.executable, "-m", "process_api", "keys", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_api_key_signs_a_script_in_until_it_is_revoked(server: Server) -> None:
    made = keys(server, "create", "nightly-run", "--roles", "analyst")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("pak_") and "shown this once" in made.stderr
    assert keys(server, "create", "nightly-run").returncode != 0  # one key per name
    listed = keys(server, "list")
    assert "nightly-run\troles=analyst" in listed.stdout and key not in listed.stdout
    with server.client() as http:
        for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
            ran = http.post("/processes/restricted/execution", json={"inputs": {}}, headers=headers)
            assert ran.status_code == 200 and ran.json() == "secret", ran.text
        job_id = ran.headers["Link"].split("/jobs/")[1].split(">")[0]
        metadata = http.get(f"/jobs/{job_id}/metadata", headers={"X-API-Key": key}).json()
        assert metadata["submitter"] == "key:nightly-run"
        assert keys(server, "revoke", "nightly-run").returncode == 0
        refused(http.get("/jobs", headers={"X-API-Key": key}), 401, "unknown or was revoked")
    assert key not in server.output()


def test_no_credential_reaches_the_servers_log(server: Server, provider: Provider) -> None:
    token = provider.token("gina")
    bad = provider.token("gina", exp=int(time.time()) - 100)
    with server.client() as http:
        submit(http, token)
        http.get("/jobs", headers=as_user(bad))
    output = server.output()
    for credential in (token, bad):
        assert credential.split(".")[2] not in output


# -- the Go server's Keycloak settings -----------------------------------------------


@pytest.fixture(scope="module")
def keycloak(provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "AUTH_SERVICE": "keycloak",
        "KEYCLOAK_PUBLIC_KEYS_URL": provider.certs_url,
        "AUTH_LEVEL": "1",
        "AUTH_SERVICE_ROLE": "service",
    }
    started = start_server(tmp_path_factory.mktemp("keycloak"), env)
    yield started
    started.stop()


def test_the_go_servers_keycloak_settings_work_unchanged(
    keycloak: Server, provider: Provider
) -> None:
    assert "without OIDC_AUDIENCE" in keycloak.output()  # warned: any client's token passes
    service = provider.token("gateway", roles=["service"])
    hana = provider.token("hana")
    with keycloak.client() as http:
        # AUTH_LEVEL=1: reading processes stays open, executing and the job list do not
        assert http.get("/processes").status_code == 200
        refused(http.get("/jobs"), 401, "sign in")
        # the service acts for a user it names; the job is that user's
        acting = {**as_user(service), "X-ProcessAPI-User-Email": "Hana@example.org", **ASYNC}
        response = http.post("/processes/quick/execution", json={"inputs": {}}, headers=acting)
        assert response.status_code == 201, response.text
        job_id = response.json()["jobID"]
        wait_status(http, job_id, {"successful"})  # open under AUTH_LEVEL=1, to whoever has its id
        hers = http.get("/jobs?limit=1000", headers=as_user(hana)).json()
        assert job_id in [j["jobID"] for j in hers["jobs"]]
        # without the header the service is a user of its own, who did not submit it
        its_own = http.get("/jobs?limit=1000", headers=as_user(service)).json()
        assert job_id not in [j["jobID"] for j in its_own["jobs"]]
        # acting for a user, even a service that is also an admin sees only that user's jobs
        mighty = provider.token("gateway", roles=["service", "admin"])
        assert job_id in [
            j["jobID"] for j in http.get("/jobs?limit=1000", headers=as_user(mighty)).json()["jobs"]
        ]
        for_ivan = {**as_user(mighty), "X-ProcessAPI-User-Email": "ivan@example.org"}
        ivans = http.get("/jobs?limit=1000", headers=for_ivan).json()
        assert job_id not in [j["jobID"] for j in ivans["jobs"]]
        not_an_email = {**as_user(service), "X-ProcessAPI-User-Email": "x" * 300}
        refused(http.get("/jobs", headers=not_an_email), 400, "not an email address")
        # her own email in the header, as Go clients send it, is accepted
        own = {**as_user(hana), "X-ProcessAPI-User-Email": "hana@example.org"}
        assert http.get("/jobs", headers=own).status_code == 200
        # from anyone but the service the header is never trusted
        posing = {**as_user(hana), "X-ProcessAPI-User-Email": "gateway@example.org"}
        refused(http.get("/jobs", headers=posing), 403, "only a service")
        # the issuer is the realm's, derived from KEYCLOAK_PUBLIC_KEYS_URL, and checked
        other_realm = provider.token("hana", iss=provider.issuer.replace("/test", "/other"))
        refused(http.get("/jobs", headers=as_user(other_realm)), 401, "another issuer")


def test_the_api_document_declares_how_to_sign_in_and_where(
    server: Server, provider: Provider
) -> None:
    from openapi_spec_validator import validate

    with server.client() as http:
        document = http.get("/api").json()
    validate(document)
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKey"]["name"] == "X-API-Key"
    discovery = provider.issuer + "/.well-known/openid-configuration"
    assert schemes["openIdConnect"]["openIdConnectUrl"] == discovery
    paths = document["paths"]
    for path, method in (("/jobs", "get"), ("/processes/quick/execution", "post")):
        assert {"bearer": []} in paths[path][method]["security"], path
        assert "401" in paths[path][method]["responses"]
    assert "security" not in paths["/conformance"]["get"]
    # a process open to some roles only is not shown to everyone here either
    assert "/processes/quick/execution" in paths
    assert "/processes/restricted/execution" not in paths


def test_a_web_app_of_an_allowed_origin_may_call_the_api_from_a_browser(
    server: Server, provider: Provider
) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,prefer",
    }
    with server.client() as http:
        allowed = http.options(
            "/processes/quick/execution", headers={"Origin": WEB_APP, **preflight}
        )
        assert allowed.status_code == 200, allowed.text  # no credentials in a preflight
        assert allowed.headers["Access-Control-Allow-Origin"] == WEB_APP
        assert "authorization" in allowed.headers["Access-Control-Allow-Headers"].lower()
        other = http.options("/jobs", headers={"Origin": "http://evil.example", **preflight})
        assert "Access-Control-Allow-Origin" not in other.headers
        response = http.post(
            "/processes/quick/execution",
            json={"inputs": {}},
            headers={"Origin": WEB_APP, **as_user(provider.token("ivy")), **ASYNC},
        )
        assert response.headers["Access-Control-Allow-Origin"] == WEB_APP
        assert "Location" in response.headers["Access-Control-Expose-Headers"]


def test_pages_run_only_the_servers_own_scripts_and_are_never_framed(server: Server) -> None:
    with server.client() as http:
        for path in ("/", "/conformance", "/swagger/"):
            page = http.get(path, headers={"Accept": "text/html"})
            policy = page.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
            assert page.headers["X-Frame-Options"] == "DENY"
        document = http.get("/conformance?f=json")
        assert "Content-Security-Policy" not in document.headers
        assert document.headers["X-Content-Type-Options"] == "nosniff"


def test_only_admins_deploy_replace_and_undeploy(
    keycloak: Server, provider: Provider, docker_engine: None
) -> None:
    document = {
        "info": process_info("deployed"),
        "host": {"type": "docker"},
        "container": {"image": busybox_image(), "command": ["echo", '{"plugin_results": 1}']},
        "outputs": [{"id": "result", "schema": {"type": "integer"}}],
    }
    content = json.dumps(document)
    hana, root = provider.token("hana"), provider.token("root", roles=["admin"])

    def sent_by(token: str | None) -> dict[str, str]:
        return {"Content-Type": "application/json", **(as_user(token) if token else {})}

    with keycloak.client() as http:
        # AUTH_LEVEL=1 protects deployment: it is a write
        refused(http.post("/processes", content=content, headers=sent_by(None)), 401, "sign in")
        for method, path in (("POST", "/processes"), ("PUT", "/processes/deployed")):
            response = http.request(method, path, content=content, headers=sent_by(hana))
            refused(response, 403, "only admins")
        response = http.post("/processes", content=content, headers=sent_by(root))
        assert response.status_code == 201, response.text
        assert http.get("/processes/deployed").json()["mutable"] is True  # reading stays open
        refused(http.get("/processes/deployed/package", headers=as_user(hana)), 403, "only admins")
        assert http.get("/processes/deployed/package", headers=as_user(root)).status_code == 200
        refused(http.delete("/processes/deployed", headers=as_user(hana)), 403, "only admins")
        assert http.delete("/processes/deployed", headers=as_user(root)).status_code == 204
        classes = http.get("/conformance").json()["conformsTo"]
        assert any(c.endswith("/conf/deploy-replace-undeploy") for c in classes)


def test_the_landing_page_sums_up_only_the_users_own_jobs(
    server: Server, provider: Provider
) -> None:
    lena, omar = provider.token("lena"), provider.token("omar")
    html = {"Accept": "text/html"}
    with server.client() as http:
        job_id = submit(http, lena)
        wait_status_as(http, lena, job_id, {"successful"})
        anonymous = http.get("/", headers=html).text  # the landing page is public
        assert "Sign in to see your jobs" in anonymous and job_id[:8] not in anonymous
        assert job_id[:8] in http.get("/", headers={**html, **as_user(lena)}).text
        assert job_id[:8] not in http.get("/", headers={**html, **as_user(omar)}).text
