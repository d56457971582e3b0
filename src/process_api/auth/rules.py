"""What a user may see and do. An admin: everything. Anyone else: the jobs they submitted,
and the processes open to all or to one of their roles."""

from __future__ import annotations

from collections.abc import Collection

from process_api.auth.user import User


def may_use(user: User | None, roles: Collection[str]) -> bool:
    """Whether the user may see and execute a process open to these roles (to all if none);
    `user` None is a request without credentials."""
    if not roles:
        return True
    return user is not None and (user.admin or not user.roles.isdisjoint(roles))


def owns(user: User, submitter: str | None) -> bool:
    return user.admin or (submitter is not None and submitter in user.identities)
