"""API keys: random secrets a script sends as `Authorization: Bearer <key>` or `X-API-Key`.

Only a digest of each key is stored (in the job store, so that every instance knows every
key). A key has 256 random bits: a plain SHA-256 digest cannot be reversed or guessed,
and needs no slow hash the way a password would.
"""

from __future__ import annotations

import hashlib
import re
import secrets

#: what every key starts with: a key is told from a JWT, and found by secret scanners.
PREFIX = "pak_"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def is_api_key(credential: str) -> bool:
    return credential.startswith(PREFIX)
