"""Bearer tokens (JWT) checked against the keys of the provider that signed them.

The keys come from the provider's JWKS document, found by OpenID Connect discovery
(`OIDC_ISSUER`) or named directly (Keycloak's certs URL). They are kept in memory and
fetched again when a token names a key id not among them (a provider rotated its keys),
at most once per `OIDC_KEYS_REFRESH` seconds so that made-up key ids cannot make the
server hammer the provider. PyJWT checks the signature and the claims; nothing here is
cryptography of its own.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

import httpx
import jwt

from process_api.errors import ServiceUnavailable, Unauthenticated

log = logging.getLogger(__name__)

#: seconds of clock difference allowed between the provider and this server.
LEEWAY = 30
#: how long a fetch of the discovery or keys document may take.
FETCH_TIMEOUT = 10.0
#: seconds after which the keys are fetched again even if no token names a new one: a key the
#: provider withdrew is not accepted for longer.
KEYS_MAX_AGE = 3600.0
#: the claims every token must carry (`aud` too when an audience is configured).
REQUIRED = ["exp", "iat", "iss", "sub"]

_REASONS: list[tuple[type[jwt.PyJWTError], str]] = [
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.InvalidAudienceError, "the token is not meant for this server (its audience)"),
    (jwt.InvalidIssuerError, "the token was issued by another issuer"),
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
    (jwt.DecodeError, "the token is not a well-formed JWT"),
]


class TokenVerifier:
    def __init__(
        self,
        issuer: str,
        audience: str | None,
        algorithms: tuple[str, ...],
        keys_url: str | None = None,
        refresh_interval: float = 30.0,
    ) -> None:
        """`keys_url`: the JWKS document; found by discovery from the issuer when None."""
        self.issuer = issuer
        self.audience = audience
        self.algorithms = algorithms
        self.keys_url = keys_url
        self.refresh_interval = refresh_interval
        #: the provider's signing keys (JWKs) by key id.
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at: float | None = None
        self._metadata: dict[str, Any] | None = None
        #: whether the last fetch of the keys failed.
        self._unreachable = False
        self._fetching = asyncio.Lock()
        self._http = httpx.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def claims(self, token: str, audience: str | None = None) -> dict[str, Any]:
        """The token's claims once its signature, lifetime, issuer and audience (the one
        configured, unless another is given) are checked; Unauthenticated says which check
        failed."""
        audience = audience or self.audience
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the token is not a well-formed JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise Unauthenticated(
                f"the token's signature algorithm is not accepted "
                f"(accepted: {', '.join(self.algorithms)})"
            )
        jwk = await self._key(header.get("kid"))
        if jwk.get("alg", algorithm) != algorithm:
            raise Unauthenticated("the token's algorithm is not the one of its signing key")
        try:
            key = jwt.PyJWK(jwk, algorithm)
        except jwt.PyJWTError:
            raise Unauthenticated("the token's algorithm does not fit its signing key") from None
        required = REQUIRED + (["aud"] if audience else [])
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=audience,
                issuer=self.issuer,
                leeway=LEEWAY,
                options={"require": required, "verify_aud": audience is not None},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"the token lacks the {exc.claim!r} claim") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(_reason(exc)) from None
        return claims

    async def _key(self, kid: Any) -> dict[str, Any]:
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("the token names no signing key (kid)")
        if kid not in self._keys or self._age() >= KEYS_MAX_AGE:
            async with self._fetching:
                stale = self._age() >= KEYS_MAX_AGE
                if stale or (kid not in self._keys and self._age() >= self.refresh_interval):
                    try:
                        await self._fetch_keys()
                    except ServiceUnavailable:
                        if kid not in self._keys:
                            raise  # else the key known so far serves until the provider answers
                elif kid not in self._keys and self._unreachable:
                    # the last fetch failed a moment ago: the key may exist all the same
                    raise ServiceUnavailable(
                        "the sign-in provider cannot be reached to check the token; try again"
                    )
        key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated("the token is signed by a key the provider does not publish")
        return key

    def _age(self) -> float:
        """Seconds since the keys were last fetched (or tried)."""
        return math.inf if self._fetched_at is None else time.monotonic() - self._fetched_at

    async def _fetch_keys(self) -> None:
        # Counted from the try: a provider that does not answer is not asked at every token.
        self._fetched_at = time.monotonic()
        self._unreachable = True
        if self.keys_url is None:
            discovery = await self.metadata()
            if not isinstance(discovery.get("jwks_uri"), str):
                raise ServiceUnavailable("the sign-in provider publishes no jwks_uri")
            self.keys_url = discovery["jwks_uri"]
        assert self.keys_url is not None
        document = await self._get_json(self.keys_url)
        keys = {
            entry["kid"]: entry
            for entry in document.get("keys", [])
            if isinstance(entry, dict)
            and isinstance(entry.get("kid"), str)
            and entry.get("use", "sig") == "sig"
        }
        log.info("signing keys of the sign-in provider: %s", ", ".join(sorted(keys)) or "none")
        self._keys = keys
        self._unreachable = False

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (its endpoints), read once."""
        if self._metadata is None:
            document = await self._get_json(
                self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            )
            if document.get("issuer") != self.issuer:
                raise ServiceUnavailable(
                    "the sign-in provider's discovery document names another issuer than "
                    "the one configured: tokens cannot be checked"
                )
            self._metadata = document
        return self._metadata

    async def post_form(self, url: str, form: dict[str, str]) -> dict[str, Any]:
        """A provider endpoint's JSON answer to a form (the token endpoint)."""
        try:
            response = await self._http.post(url, data=form)
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("the sign-in provider's %s did not answer: %s", url, exc)
            raise ServiceUnavailable("the sign-in provider cannot be reached; try again") from None
        if not isinstance(document, dict):
            raise ServiceUnavailable(f"the sign-in provider's {url} is not a JSON object")
        return document

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("cannot read %s from the sign-in provider: %s", url, exc)
            raise ServiceUnavailable(
                "the sign-in provider cannot be reached to check the token; try again later"
            ) from None
        if not isinstance(document, dict):
            raise ServiceUnavailable(f"the sign-in provider's {url} is not a JSON object")
        return document


def _reason(exc: jwt.PyJWTError) -> str:
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            return reason
    return "the token is not valid"


def keycloak_issuer(keys_url: str) -> str:
    """The issuer of a Keycloak realm's tokens, from its certs URL (…/realms/<realm>/…)."""
    base, _, rest = keys_url.partition("/realms/")
    return f"{base}/realms/{rest.split('/')[0]}"
