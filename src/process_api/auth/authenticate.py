"""From a request's credentials to its User: a bearer token (JWT) or an API key.

A service (a token carrying AUTH_SERVICE_ROLE) may act for a user it names in the
`X-ProcessAPI-User-Email` header, as with the Go server; from anyone else that header is
never trusted: one that names another user than the token's own is refused.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from process_api.auth.api_keys import digest, is_api_key
from process_api.auth.tokens import TokenVerifier, keycloak_issuer
from process_api.auth.user import RESERVED, User, email_identity, key_identity
from process_api.errors import Forbidden, InvalidParameter, Unauthenticated
from process_api.settings import Settings
from process_api.store.base import JobStore

log = logging.getLogger(__name__)

ACT_FOR = "x-processapi-user-email"
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$")
#: the longest credential read: tokens of real providers are a few kilobytes.
MAX_CREDENTIAL = 16 * 1024


class Authenticator:
    def __init__(self, settings: Settings, store: JobStore) -> None:
        self.store = store
        self.admin_role = settings.auth_admin_role
        self.service_role = settings.auth_service_role
        self.claim_paths = settings.auth_roles_claims
        self.verifier: TokenVerifier | None = None
        if settings.auth_service == "oidc":
            assert settings.oidc_issuer is not None
            self.verifier = TokenVerifier(
                settings.oidc_issuer,
                settings.oidc_audience,
                settings.oidc_algorithms,
                refresh_interval=settings.oidc_keys_refresh,
            )
        elif settings.auth_service == "keycloak":
            keys_url = settings.keycloak_public_keys_url
            assert keys_url is not None
            if not settings.oidc_audience:
                log.warning(
                    "AUTH_SERVICE=keycloak without OIDC_AUDIENCE: tokens of every client of "
                    "the realm are accepted; set OIDC_AUDIENCE to this server's client id"
                )
            self.verifier = TokenVerifier(
                settings.oidc_issuer or keycloak_issuer(keys_url),
                settings.oidc_audience,
                settings.oidc_algorithms,
                keys_url=keys_url,
                refresh_interval=settings.oidc_keys_refresh,
            )

    async def aclose(self) -> None:
        if self.verifier is not None:
            await self.verifier.aclose()

    async def user(self, headers: Mapping[str, str]) -> User | None:
        """The user the credentials name; None if there are none."""
        credential = _credential(headers)
        if credential is None:
            return None
        if is_api_key(credential):
            return await self._key_user(credential)
        if self.verifier is None:
            raise Unauthenticated("this server accepts API keys only, and this is not one")
        claims = await self.verifier.claims(credential)
        user = self.token_user(claims)
        named = headers.get(ACT_FOR, "").strip()
        if not named or email_identity(named) in user.identities:
            return user
        if self.service_role and self.service_role in user.roles:
            if not EMAIL.match(named):
                raise InvalidParameter("X-ProcessAPI-User-Email is not an email address")
            # the user acted for: with the service's roles, but never an admin's sight
            identity = email_identity(named)
            roles = user.roles - {self.admin_role}
            return User(identity, named, roles, False, (identity,))
        raise Forbidden(
            "X-ProcessAPI-User-Email names another user than the token's: only a service "
            "may act for another user"
        )

    async def _key_user(self, key: str) -> User:
        found = await self.store.key_of(digest(key))
        if found is None:
            raise Unauthenticated("the API key is unknown or was revoked")
        identity = key_identity(found.name)
        roles = frozenset(found.roles)
        return User(identity, found.name, roles, self.admin_role in roles, (identity,))

    def token_user(self, claims: dict[str, Any]) -> User:
        roles = frozenset(role for path in self.claim_paths for role in _roles_at(claims, path))
        subject = str(claims["sub"])
        if subject.startswith(RESERVED):
            # a provider's subject must not pass for an API key's or an email's user
            raise Unauthenticated("the token's subject is of a form this server reserves")
        identities = [subject]
        email = claims.get("email")
        # Only an address the provider verified: one a user may set to anything would give
        # them the jobs a service submitted for its owner.
        if isinstance(email, str) and email and claims.get("email_verified") is True:
            identities.append(email_identity(email))
        name = claims.get("preferred_username") or email or subject
        return User(subject, str(name)[:256], roles, self.admin_role in roles, tuple(identities))


def _credential(headers: Mapping[str, str]) -> str | None:
    """The bearer token or API key sent; Unauthenticated for credentials of another kind."""
    authorization = headers.get("authorization")
    credential = None
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthenticated("only Bearer credentials are accepted (a token or API key)")
        credential = value.strip()
    elif "x-api-key" in headers:
        credential = headers["x-api-key"].strip()
    if credential is None:
        return None
    if not credential or len(credential) > MAX_CREDENTIAL or " " in credential:
        raise Unauthenticated("the credentials sent are empty or malformed")
    return credential


def _roles_at(claims: dict[str, Any], path: str) -> list[str]:
    """The roles at a dotted claim path (realm_access.roles, resource_access.<client>.roles,
    groups): a list of strings, or nothing."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return []
        value = value.get(part)
    if not isinstance(value, list):
        return []
    return [role for role in value if isinstance(role, str)]
