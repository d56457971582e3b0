"""A small OpenID Connect provider on 127.0.0.1 for the tests: discovery and JWKS documents,
and tokens signed with real RSA and EC keys (PyJWT and cryptography), so that the server's
checks of signatures and claims are the real ones. No provider (Keycloak) runs here: this
stands in for its discovery and keys endpoints, which are all the server reads."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

AUDIENCE = "process-api"


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


class Provider:
    """Serves /realms/<realm>/.well-known/openid-configuration and …/certs, as Keycloak
    names them; `keys` is what the certs document publishes (a test may rotate them)."""

    def __init__(self, realm: str = "test") -> None:
        self.keys = [SigningKey("RS256"), SigningKey("ES256")]
        self.key_fetches = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.endswith("/.well-known/openid-configuration"):
                    body = {"issuer": provider.issuer, "jwks_uri": provider.certs_url}
                elif self.path.endswith("/protocol/openid-connect/certs"):
                    provider.key_fetches += 1
                    body = {"keys": [key.jwk() for key in provider.keys]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        port = self.server.server_address[1]
        self.issuer = f"http://127.0.0.1:{port}/realms/{realm}"
        self.certs_url = f"{self.issuer}/protocol/openid-connect/certs"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

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
