"""A small OpenID Connect provider on 127.0.0.1 for the tests: discovery and JWKS documents,
tokens signed with real RSA and EC keys (PyJWT and cryptography), so that the server's checks
of signatures and claims are the real ones, and the authorization code flow with PKCE that a
browser signs in by (a sign-in page that asks only for a user name). No provider (Keycloak)
runs here: this stands in for the endpoints the server and a browser use."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

AUDIENCE = "process-api"
CLIENT_ID = "process-api-pages"


class SigningKey:
    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self.kid = uuid.uuid4().hex[:12]
        if algorithm.startswith("ES"):
            self.private: Any = ec.generate_private_key(ec.SECP256R1())
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        document: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**document, "kid": self.kid, "use": "sig", "alg": self.algorithm}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        provider: Provider = self.server.provider  # type: ignore[attr-defined]
        path, _, query = self.path.partition("?")
        asked = {k: v[0] for k, v in parse_qs(query).items()}
        if path.endswith("/.well-known/openid-configuration"):
            self.json(provider.discovery())
        elif path.endswith("/protocol/openid-connect/certs"):
            provider.key_fetches += 1
            self.json({"keys": [key.jwk() for key in provider.keys]})
        elif path.endswith("/protocol/openid-connect/auth"):
            self.page(provider.sign_in_page(asked))
        elif path.endswith("/protocol/openid-connect/signed-in"):
            self.redirect(provider.signed_in(asked))
        elif path.endswith("/protocol/openid-connect/logout"):
            provider.sign_outs += 1
            self.redirect(asked["post_logout_redirect_uri"])
        else:
            self.send_error(404)

    def do_POST(self) -> None:
        provider: Provider = self.server.provider  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length", 0))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if self.path.endswith("/protocol/openid-connect/token"):
            provider.token_requests.append(form)
            status, body = provider.exchange(form)
            self.json(body, status)
        else:
            self.send_error(404)

    def json(self, body: dict[str, Any], status: int = 200) -> None:
        self.send(status, "application/json", json.dumps(body).encode())

    def page(self, text: str) -> None:
        self.send(200, "text/html; charset=utf-8", text.encode())

    def redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def send(self, status: int, media: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Provider:
    """Serves /realms/<realm>/.well-known/openid-configuration and …/certs, as Keycloak
    names them; `keys` is what the certs document publishes (a test may rotate them)."""

    def __init__(self, realm: str = "test") -> None:
        self.keys = [SigningKey("RS256"), SigningKey("ES256")]
        self.key_fetches = 0
        #: the roles each user signing in by the sign-in page gets.
        self.roles: dict[str, list[str]] = {}
        #: code -> what the authorization request asked, until the token request.
        self.codes: dict[str, dict[str, Any]] = {}
        #: every token request's form, and the sign-outs asked for.
        self.token_requests: list[dict[str, str]] = []
        self.sign_outs = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.provider = self  # type: ignore[attr-defined]
        port = self.server.server_address[1]
        self.issuer = f"http://127.0.0.1:{port}/realms/{realm}"
        self.certs_url = f"{self.issuer}/protocol/openid-connect/certs"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def discovery(self) -> dict[str, Any]:
        endpoints = f"{self.issuer}/protocol/openid-connect"
        return {
            "issuer": self.issuer,
            "jwks_uri": self.certs_url,
            "authorization_endpoint": f"{endpoints}/auth",
            "token_endpoint": f"{endpoints}/token",
            "end_session_endpoint": f"{endpoints}/logout",
        }

    def sign_in_page(self, asked: dict[str, str]) -> str:
        """Asks for a user name; the form goes on with the authorization request."""
        fields = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in asked.items()
        )
        return (
            '<!DOCTYPE html><title>Sign in</title><form method="get" action="signed-in">'
            f'{fields}<label>User <input name="username" id="username"></label>'
            '<button type="submit" id="sign-in">Sign in</button></form>'
        )

    def signed_in(self, asked: dict[str, str]) -> str:
        """Where the browser goes back to: the client's redirect URI with a code."""
        code = secrets.token_urlsafe(16)
        self.codes[code] = asked
        back = {"code": code, "state": asked["state"]}
        return f"{asked['redirect_uri']}?{urlencode(back)}"

    def exchange(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The token endpoint: the code once, for the client and redirect URI it was given
        to, with the PKCE verifier of its challenge."""
        asked = self.codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "").encode()
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
        if (
            asked is None
            or form.get("client_id") != asked["client_id"]
            or form.get("redirect_uri") != asked["redirect_uri"]
            or challenge.decode() != asked.get("code_challenge")
        ):
            return 400, {"error": "invalid_grant"}
        user = asked["username"]
        roles = self.roles.get(user, [])
        identity = self.token(user, roles, aud=asked["client_id"], nonce=asked["nonce"])
        return 200, {"access_token": self.token(user, roles), "id_token": identity}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def token(
        self,
        subject: str = "alice",
        roles: list[str] | None = None,
        key: SigningKey | None = None,
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A token signed by one of the published keys (the RSA one by default); `claims`
        override or add (None removes one)."""
        key = key or self.keys[0]
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "preferred_username": subject,
            "email": f"{subject}@example.org",
            "email_verified": True,
            "realm_access": {"roles": roles or []},
        }
        body.update(claims)
        body = {name: value for name, value in body.items() if value is not None}
        return jwt.encode(
            body, key.private, algorithm=key.algorithm, headers={"kid": key.kid, **(header or {})}
        )
