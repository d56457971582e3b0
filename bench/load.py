"""Load on the job store: a burst of asynchronous submissions, then concurrent sync runs.

Submits N asynchronous executions of the bundled `echo` example from C clients,
waits for every job to reach a final status, then runs M synchronous executions
at once. Prints a table: submissions, HTTP errors by status, jobs by final status,
jobs that never ended, latency percentiles and wall time.

    .venv/bin/python bench/load.py --async-jobs 1000 --clients 32 --sync 200

Without `--url` it starts its own server (a temporary data directory, the bundled
examples), so that its figures are reproducible; after the load it stops the
server with SIGTERM and counts the jobs the database still says are active.
With `--url` it loads a running server (loopback only). Bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "plugins"
FINAL = frozenset({"successful", "failed", "dismissed"})
ASYNC = {"Prefer": "respond-async"}


@dataclass
class LoadReport:
    """What a load run saw; `problems()` lists what a healthy server must not show."""

    submissions: int = 0
    sync_runs: int = 0
    #: HTTP status (or the transport error's name) -> count, for every answer that was not a success.
    errors: Counter[str] = field(default_factory=Counter)
    #: final status -> count, for every job created.
    statuses: Counter[str] = field(default_factory=Counter)
    #: jobs that had not reached a final status when the wait ended.
    stuck: list[str] = field(default_factory=list)
    #: a few messages of failed jobs and bodies of error answers.
    samples: list[str] = field(default_factory=list)
    submit_latency: list[float] = field(default_factory=list)
    sync_latency: list[float] = field(default_factory=list)
    wall: float = 0.0
    #: set when the run started the server: its peak RSS, and what the database still
    #: said was active after SIGTERM.
    peak_rss_mb: float | None = None
    active_after_stop: int | None = None

    def problems(self) -> list[str]:
        found = []
        if self.errors:
            found.append(f"HTTP errors {dict(self.errors)}")
        if self.stuck:
            found.append(f"{len(self.stuck)} job(s) never ended, e.g. {self.stuck[:3]}")
        others = {s: n for s, n in self.statuses.items() if s != "successful"}
        if others:
            found.append(f"jobs not successful: {others}")
        if self.active_after_stop:
            found.append(f"{self.active_after_stop} job(s) still active after SIGTERM")
        return found

    def note(self, text: str) -> None:
        if len(self.samples) < 5:
            self.samples.append(text[:300])


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]


def _monitor_id(response: httpx.Response) -> str | None:
    """The job of a sync execution, from its `Link: <…/jobs/ID>; rel="monitor"` header."""
    for part in response.headers.get("link", "").split(","):
        if 'rel="monitor"' in part:
            return part.split(">")[0].rsplit("/", 1)[-1]
    return None


async def _submit(http: httpx.AsyncClient, n: int, report: LoadReport) -> str | None:
    body = {"inputs": {"stringInput": f"load-{n}"}}
    started = time.perf_counter()
    try:
        response = await http.post("/processes/echo/execution", json=body, headers=ASYNC)
    except httpx.HTTPError as exc:
        report.errors[type(exc).__name__] += 1
        report.note(f"{type(exc).__name__} on {exc.request.method} {exc.request.url.path}: {exc}")
        return None
    report.submit_latency.append(time.perf_counter() - started)
    if response.status_code != 201:
        report.errors[str(response.status_code)] += 1
        report.note(f"submit {response.status_code}: {response.text}")
        return None
    job_id: str = response.json()["jobID"]
    return job_id


async def _sync_run(http: httpx.AsyncClient, n: int, report: LoadReport) -> str | None:
    text = f"sync-{n}"
    started = time.perf_counter()
    try:
        response = await http.post(
            "/processes/echo/execution", json={"inputs": {"stringInput": text}}
        )
    except httpx.HTTPError as exc:
        report.errors[type(exc).__name__] += 1
        report.note(f"{type(exc).__name__} on {exc.request.method} {exc.request.url.path}: {exc}")
        return None
    report.sync_latency.append(time.perf_counter() - started)
    if response.status_code != 200 or response.json() != text:
        report.errors[str(response.status_code)] += 1
        report.note(f"sync {response.status_code}: {response.text}")
    return _monitor_id(response)


async def _statuses(
    http: httpx.AsyncClient, job_ids: list[str], clients: int, deadline: float, report: LoadReport
) -> None:
    """Polls the jobs, `clients` at a time, until each has a final status or time is up."""
    pending = set(job_ids)
    gate = asyncio.Semaphore(clients)

    async def look(job_id: str) -> None:
        async with gate:
            try:
                response = await http.get(f"/jobs/{job_id}")
            except httpx.HTTPError:
                return  # counted as stuck if it never answers
            if response.status_code != 200:
                return
            document = response.json()
            if document["status"] in FINAL:
                pending.discard(job_id)
                report.statuses[document["status"]] += 1
                if document["status"] != "successful":
                    report.note(f"job {document['status']}: {document.get('message')}")

    while pending and time.monotonic() < deadline:
        await asyncio.gather(*(look(job_id) for job_id in list(pending)))
        if pending:
            await asyncio.sleep(0.5)
    report.stuck.extend(sorted(pending))


async def run_load(
    url: str, async_jobs: int, clients: int, sync: int, wait: float = 300.0
) -> LoadReport:
    """The load itself, against a server at `url`; `wait` bounds each phase's waiting."""
    report = LoadReport()
    started = time.monotonic()
    limits = httpx.Limits(max_connections=max(clients, sync), max_keepalive_connections=clients)
    timeout = httpx.Timeout(wait, connect=30.0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as http:
        numbers = iter(range(async_jobs))
        job_ids: list[str] = []

        async def client() -> None:
            for n in numbers:  # shared: each submission is made once, by whichever client is free
                job_id = await _submit(http, n, report)
                report.submissions += 1
                if job_id is not None:
                    job_ids.append(job_id)

        await asyncio.gather(*(client() for _ in range(clients)))
        await _statuses(http, job_ids, clients, time.monotonic() + wait, report)

        runs = await asyncio.gather(*(_sync_run(http, n, report) for n in range(sync)))
        report.sync_runs = sync
        sync_ids = [job_id for job_id in runs if job_id is not None]
        await _statuses(http, sync_ids, clients, time.monotonic() + wait, report)
    report.wall = time.monotonic() - started
    return report


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident memory (VmHWM), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


@contextmanager
def own_server(
    data_dir: Path, plugins: Path = EXAMPLES
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A server of the bundled examples on a free loopback port, stopped with SIGTERM at the end."""
    port = _free_port()
    env = {**os.environ, "DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING"}
    env.pop("DB_PATH", None)
    env.pop("S3_BUCKET", None)
    command = [sys.executable, "-m", "process_api", "-d", str(plugins), "-p", str(port)]
    log = (data_dir.parent / "server.log").open("ab")
    server = subprocess.Popen(command, env=env, cwd=data_dir.parent, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(400):
            if server.poll() is not None:
                raise SystemExit(f"the server exited with {server.returncode}")
            try:
                httpx.get(url + "/conformance")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise SystemExit("the server did not start")
        yield server, url
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        log.close()


def active_in_database(path: Path) -> int:
    """Jobs the database says are accepted or running (read after the server stopped)."""
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT count(*) FROM jobs WHERE status IN ('accepted', 'running')")
        return int(row.fetchone()[0])


def load_own_server(async_jobs: int, clients: int, sync: int, wait: float) -> LoadReport:
    """The load against a server of its own, then SIGTERM and a look at what stayed active."""
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        with own_server(data_dir) as (server, url):
            report = asyncio.run(run_load(url, async_jobs, clients, sync, wait))
            report.peak_rss_mb = peak_rss_mb(server.pid)
        report.active_after_stop = active_in_database(data_dir / "jobs.sqlite")
        return report


def print_report(report: LoadReport, args: argparse.Namespace) -> None:
    total = report.submissions + report.sync_runs
    rows = [
        ("async submissions", f"{report.submissions} from {args.clients} clients"),
        ("sync executions", f"{report.sync_runs} at once"),
        ("HTTP errors", ", ".join(f"{k}: {v}" for k, v in sorted(report.errors.items())) or "0"),
        (
            "jobs by final status",
            ", ".join(f"{k}: {v}" for k, v in sorted(report.statuses.items())),
        ),
        ("jobs never ended", str(len(report.stuck))),
    ]
    for name, values in (("submit", report.submit_latency), ("sync run", report.sync_latency)):
        if values:
            p50, p99 = _percentile(values, 0.5), _percentile(values, 0.99)
            rows.append((f"{name} latency", f"p50 {p50 * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms"))
    rows.append(("wall time", f"{report.wall:.1f} s ({total / max(report.wall, 1e-9):.0f} req/s)"))
    if report.peak_rss_mb is not None:
        rows.append(("server peak RSS", f"{report.peak_rss_mb:.0f} MB"))
    if report.active_after_stop is not None:
        rows.append(("active after SIGTERM", str(report.active_after_stop)))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for sample in report.samples:
        print(f"  e.g. {sample}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", help="a running server on this machine (default: start one)")
    parser.add_argument("--async-jobs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--sync", type=int, default=200)
    parser.add_argument("--wait", type=float, default=300.0, help="seconds each phase may wait")
    args = parser.parse_args()
    if not (
        0 <= args.async_jobs <= 100_000 and 1 <= args.clients <= 512 and 0 <= args.sync <= 2000
    ):
        parser.error("at most 100000 async jobs, 512 clients and 2000 sync runs")
    if args.url:
        if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
            parser.error("--url must be a loopback address")
        report = asyncio.run(
            run_load(args.url, args.async_jobs, args.clients, args.sync, args.wait)
        )
    else:
        report = load_own_server(args.async_jobs, args.clients, args.sync, args.wait)
    print_report(report, args)
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
