"""Users as tokens and keys describe them: roles from claim paths, identities, rules."""

from __future__ import annotations

from typing import Any

import pytest

from process_api.auth.authenticate import Authenticator
from process_api.auth.rules import may_use, owns
from process_api.auth.user import User, email_identity
from process_api.errors import Unauthenticated
from process_api.settings import load_settings


def claims(**extra: Any) -> dict[str, Any]:
    return {
        "sub": "4f1c",
        "email": "Ana@Example.org",
        "email_verified": True,
        "preferred_username": "ana",
        **extra,
    }


def test_roles_come_from_every_claim_path_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_SERVICE", "keys")
    monkeypatch.setenv("AUTH_ROLES_CLAIMS", "realm_access.roles,resource_access.api.roles,groups")
    no_store: Any = None  # tokens need none; API keys are tested on the server
    authenticator = Authenticator(load_settings(None), no_store)
    user = authenticator.token_user(
        claims(
            realm_access={"roles": ["writer"]},
            resource_access={"api": {"roles": ["admin"]}, "other": {"roles": ["x"]}},
            groups=["hydro", 7],  # not a role name: left out
        )
    )
    assert user.roles == {"writer", "admin", "hydro"} and user.admin
    assert user.id == "4f1c" and user.name == "ana"
    # jobs a service submitted for her email are hers too
    assert user.identities == ("4f1c", email_identity("ana@example.org"))
    for unverified in (claims(email_verified=False), claims(email_verified=None)):
        user = authenticator.token_user({**unverified, "realm_access": []})
        assert user.identities == ("4f1c",) and user.roles == frozenset()


def test_what_a_user_may_see() -> None:
    ana = User("a", "ana", frozenset({"analyst"}), False, ("a", "email:ana@x"))
    root = User("r", "root", frozenset({"admin"}), True, ("r",))
    assert may_use(None, []) and may_use(ana, [])
    assert may_use(ana, ["analyst"]) and not may_use(ana, ["modeller"])
    assert may_use(root, ["modeller"]) and not may_use(None, ["analyst"])
    assert owns(ana, "a") and owns(ana, "email:ana@x") and not owns(ana, "b")
    assert not owns(ana, None) and owns(root, "b")


async def test_a_server_of_api_keys_only_refuses_tokens_and_other_schemes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTH_SERVICE", "keys")
    no_store: Any = None  # refused before any key is looked up
    authenticator = Authenticator(load_settings(None), no_store)
    for headers, reason in (
        ({"authorization": "Bearer eyJhbGciOi.e30.sig"}, "API keys only"),
        ({"authorization": "Basic YWxpY2U6c2VjcmV0"}, "only Bearer"),
        ({"authorization": "Bearer "}, "empty or malformed"),
        ({"x-api-key": "pak_a b"}, "empty or malformed"),
    ):
        with pytest.raises(Unauthenticated, match=reason):
            await authenticator.user(headers)
    assert await authenticator.user({}) is None  # no credentials: anonymous


def test_a_token_subject_cannot_pass_for_an_api_key_or_an_email(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTH_SERVICE", "keys")
    no_store: Any = None  # tokens need none
    authenticator = Authenticator(load_settings(None), no_store)
    for subject in ("key:nightly-run", "email:ana@example.org"):
        with pytest.raises(Unauthenticated, match="reserves"):
            authenticator.token_user(claims(sub=subject))
