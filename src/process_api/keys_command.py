"""`process-api keys`: make, list and revoke the API keys scripts sign in with.

The keys are kept in the job database, so every instance that shares it knows them at
once; a key is printed once, when it is made, and only its digest is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from process_api.auth.api_keys import NAME, digest, new_key
from process_api.errors import ApiError
from process_api.exit_codes import EXIT_BAD_SETTINGS, EXIT_FAILED, EXIT_NO_DATABASE
from process_api.jobs.model import utcnow
from process_api.settings import Settings, SettingsError, load_settings
from process_api.store import build_store
from process_api.store.base import ApiKey, JobStore


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="process-api keys",
        description="API keys for scripts: sent as 'Authorization: Bearer <key>' or "
        "'X-API-Key: <key>' once AUTH_SERVICE is set.",
    )
    parser.add_argument("-e", dest="env_file", help="dotenv file to load (default .env)")
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a key and print it (once)")
    create.add_argument("name", help="the user the key signs in as; jobs record this name")
    create.add_argument("--roles", default="", help="comma-separated roles, e.g. admin")
    actions.add_parser("list", help="the keys' names, roles and dates (never the keys)")
    revoke = actions.add_parser("revoke", help="remove a key: it signs nobody in any more")
    revoke.add_argument("name")
    return parser


def keys(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.env_file)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    return asyncio.run(_run(settings, args))


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        store = build_store(settings)
        await store.open()
    except ApiError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return EXIT_NO_DATABASE
    try:
        if args.action == "create":
            return await _create(store, args.name, args.roles)
        if args.action == "list":
            for key in await store.keys():
                roles = ",".join(key.roles) or "-"
                print(f"{key.name}\troles={roles}\tcreated={key.created.isoformat()}")
            return 0
        if not await store.remove_key(args.name):
            print(f"error: no key named {args.name!r}", file=sys.stderr)
            return EXIT_FAILED
        print(f"revoked the key {args.name!r}")
        return 0
    finally:
        await store.close()


async def _create(store: JobStore, name: str, roles: str) -> int:
    if not NAME.match(name):
        print(
            "error: a key's name is 1 to 100 letters, digits and . _ @ - (not first)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    key = new_key()
    named = ApiKey(name, tuple(r.strip() for r in roles.split(",") if r.strip()), utcnow())
    if not await store.add_key(named, digest(key)):
        print(f"error: a key named {name!r} exists; revoke it first", file=sys.stderr)
        return EXIT_FAILED
    print(key)
    print(f"(the key of {name!r}: shown this once, kept nowhere)", file=sys.stderr)
    return 0
