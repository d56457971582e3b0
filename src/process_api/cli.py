"""The `process-api` command: serve the processes of a directory, validate its files,
upgrade the job database, or manage API keys."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn

from process_api import __version__, server_log
from process_api.app import create_app, history_without_database
from process_api.errors import ApiError
from process_api.exit_codes import EXIT_BAD_SETTINGS, EXIT_INVALID_FILES, EXIT_NO_DATABASE
from process_api.hosts import build_hosts, host_checks
from process_api.keys_command import keys
from process_api.processes.discovery import IGNORE_FILE
from process_api.processes.loader import Loaded, load_directory, load_paths
from process_api.serving import JobsServer, run_workers
from process_api.settings import Settings, SettingsError, load_settings
from process_api.store import build_store

log = logging.getLogger("process_api")


def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="process-api",
        description="Serve the processes described in a directory through OGC API - Processes. "
        "Use 'process-api validate [PATH ...]' to check process files without serving.",
    )
    parser.add_argument(
        "-d", dest="plugins_dir", help="processes directory (PLUGINS_DIR, default plugins)"
    )
    parser.add_argument(
        "-e", dest="env_file", help="dotenv file to load (default .env, if present)"
    )
    parser.add_argument("-p", dest="port", type=int, help="port (API_PORT, default 5050)")
    parser.add_argument("--host", dest="host", help="bind address (API_HOST, default 127.0.0.1)")
    parser.add_argument(
        "--log-level", dest="log_level", help="DEBUG, INFO, WARNING or ERROR (LOG_LEVEL)"
    )
    parser.add_argument(
        "--skip-invalid",
        dest="skip_invalid",
        action="store_true",
        default=None,
        help="start with the valid process files and log the others (SKIP_INVALID)",
    )
    parser.add_argument(
        "--workers",
        dest="workers",
        type=int,
        help="server processes answering on the port, sharing the job store (WORKERS, default 1)",
    )
    parser.add_argument("--version", action="version", version=f"process-api {__version__}")
    return parser


def _validate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="process-api validate",
        description="Check process files and print every problem, one a line "
        "(file:line:column: field: message), then a summary. Exits with 2 on any error.",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="process files and directories (default: PLUGINS_DIR or plugins)",
    )
    parser.add_argument(
        "-e", dest="env_file", help="dotenv file to load (default .env, if present)"
    )
    parser.add_argument(
        "--strict", action="store_true", help="warnings count as errors (exit code 2)"
    )
    return parser


def _database_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="process-api db",
        description="Work on the job database: 'upgrade' brings it to the current schema "
        "(the server also does so as it starts).",
    )
    parser.add_argument("action", choices=["upgrade"])
    parser.add_argument(
        "-e", dest="env_file", help="dotenv file to load (default .env, if present)"
    )
    parser.add_argument(
        "--db-url",
        dest="db_url",
        help="PostgreSQL URL (DB_URL); prefer the variable, as other users may see a flag",
    )
    parser.add_argument("--db-path", dest="db_path", help="SQLite file (DB_PATH)")
    return parser


def validate(argv: Sequence[str]) -> int:
    args = _validate_parser().parse_args(argv)
    try:
        settings = load_settings(args.env_file)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    paths = [Path(p) for p in args.paths] or [settings.plugins_dir]
    loaded = load_paths(paths, host_checks(build_hosts(settings)))
    for line in sorted(loaded.skipped, key=lambda s: s.file):
        print(line, file=sys.stderr)
    for problem in loaded.problems:
        print(problem, file=sys.stderr)
    print(
        f"{len(loaded.processes)} valid process file(s), {len(loaded.errors)} error(s), "
        f"{len(loaded.warnings)} warning(s), {len(loaded.skipped)} skipped"
    )
    failed = loaded.errors or (args.strict and loaded.warnings)
    return EXIT_INVALID_FILES if failed else 0


def database(argv: Sequence[str]) -> int:
    args = _database_parser().parse_args(argv)
    try:
        settings = load_settings(args.env_file, {"DB_URL": args.db_url, "DB_PATH": args.db_path})
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    server_log.configure(settings.log_level, settings.log_format)
    return asyncio.run(_upgrade(settings))


async def _upgrade(settings: Settings) -> int:
    """Runs the migrations the database lacks (under the same lock as a starting server)."""
    try:
        store = build_store(settings)
    except ApiError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    try:
        await store.open()
    except ApiError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return EXIT_NO_DATABASE
    finally:
        await store.close()
    print(f"the job database {store.location} is up to date")
    return 0


def serve(argv: Sequence[str]) -> int:
    args = _serve_parser().parse_args(argv)
    overrides: dict[str, Any] = {
        "PLUGINS_DIR": args.plugins_dir,
        "API_PORT": args.port,
        "API_HOST": args.host,
        "LOG_LEVEL": args.log_level,
        "SKIP_INVALID": args.skip_invalid,
        "WORKERS": args.workers,
    }
    try:
        settings = load_settings(args.env_file, overrides)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    server_log.configure(settings.log_level, settings.log_format)
    hosts = build_hosts(settings)
    loaded = load_directory(settings.plugins_dir, host_checks(hosts))
    _log_loaded(loaded)
    if loaded.errors and not settings.skip_invalid:
        files = len({p.file for p in loaded.errors})
        log.error(
            "not starting: %d problem(s) in %d process file(s); fix them or start with "
            "--skip-invalid",
            len(loaded.errors),
            files,
        )
        return EXIT_INVALID_FILES
    if settings.workers > 1:
        code = asyncio.run(_prepare_store(settings))
        if code:
            return code
        return _run(settings, None, loaded)
    try:
        app = create_app(settings, loaded.processes, hosts)
    except ApiError as exc:
        log.error("not starting: %s", exc.detail)
        return EXIT_BAD_SETTINGS
    return _run(settings, app, loaded)


def _log_loaded(loaded: Loaded) -> None:
    for skipped in loaded.skipped:
        if skipped.ignored:
            log.info("%s", skipped)
        else:
            log.warning("%s (list it in %s to leave it out quietly)", skipped, IGNORE_FILE)
    for problem in loaded.problems:
        if problem.warning:
            log.warning("process file: %s", problem)
        else:
            log.error("invalid process file: %s", problem)


async def _prepare_store(settings: Settings) -> int:
    """Before the workers start: refuses to start as each of them would, saying it once, and
    brings the job database to the current schema. The exit code is the one a single
    process gives when its app cannot start."""
    refusal = await asyncio.to_thread(history_without_database, settings)
    if refusal is not None:
        log.error("%s", refusal)
        return EXIT_BAD_SETTINGS
    try:
        store = build_store(settings)
    except ApiError as exc:
        log.error("not starting: %s", exc.detail)
        return EXIT_BAD_SETTINGS
    try:
        await store.open()
    except ApiError as exc:
        log.error("not starting: %s", exc.detail)
        return EXIT_BAD_SETTINGS
    finally:
        await store.close()
    return 0


#: seconds an idle keep-alive connection is kept open.
KEEP_ALIVE = 75


def _run(settings: Settings, app: Any, loaded: Loaded) -> int:
    """Serves `app` in this process, or with several workers (app None) each building its
    own from the loaded process files."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=30,
        # Longer than the idle timeout of the clients and load balancers in front (60 s for
        # most): a connection closed by the server just as a client reuses it fails a request.
        timeout_keep_alive=KEEP_ALIVE,
    )
    workers = f" with {settings.workers} worker processes" if app is None else ""
    log.info("process-api %s on http://%s:%d%s", __version__, settings.host, settings.port, workers)
    if not (settings.public_url or settings.trusted_hosts or _loopback(settings.host)):
        log.warning(
            "links follow the Host header of each request: set PUBLIC_URL or TRUSTED_HOSTS "
            "so that a client cannot make the server hand out links to another site"
        )
    if app is None:
        return run_workers(config, settings, loaded.processes)
    # Until the app handles it (a reload of the processes directory), a SIGHUP must not end
    # the server (one from a closed terminal, say).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    server = JobsServer(config, app.state.jobs)
    server.run()
    return 0 if server.started else 1


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["validate"]:
        return validate(arguments[1:])
    if arguments[:1] == ["db"]:
        return database(arguments[1:])
    if arguments[:1] == ["keys"]:
        return keys(arguments[1:])
    return serve(arguments)
