"""The user a request is made by, as the rest of the server sees it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class User:
    #: what the jobs this user submits record as their submitter.
    id: str
    #: a name to show (preferred username or email); never used to decide anything.
    name: str
    roles: frozenset[str]
    admin: bool
    #: every submitter value that is this user's: the token's subject, and its verified email
    #: (jobs a service submitted for the user in the Go server's way, by email).
    identities: tuple[str, ...]


def user_to_dict(user: User) -> dict[str, Any]:
    return {**asdict(user), "roles": sorted(user.roles), "identities": list(user.identities)}


def user_from_dict(data: dict[str, Any]) -> User:
    return User(
        str(data["id"]),
        str(data["name"]),
        frozenset(data["roles"]),
        bool(data["admin"]),
        tuple(data["identities"]),
    )


#: what the identities of API keys' and emails' users start with; a token's subject never does.
RESERVED = ("key:", "email:")


def email_identity(email: str) -> str:
    return f"email:{email.strip().lower()}"


def key_identity(name: str) -> str:
    return f"key:{name}"
