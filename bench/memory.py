"""A server's memory under many synchronous executions and while it serves a large result.

Starts process-api (one process, subprocess host, local storage, a temporary data
directory, 127.0.0.1 only) and measures its resident memory (VmRSS):

1. after N1 synchronous executions of a trivial process, then after N2 in all
   (1,000 and 10,000 by default, sent by a few clients at once): a leak shows as growth
   between the two; the target is under 10%;
2. while a client downloads a result file of SIZE bytes (1 GB by default) through
   `/jobs/{jobID}/results/{outputID}`: the most it rose above the memory before, sampled
   every 50 ms; the target is under 50 MB (the file is streamed, never held).

    .venv/bin/python bench/memory.py
    .venv/bin/python bench/memory.py --runs 200 2000 --size 100000000   # a quick look

Progress goes to stderr, the results to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
STARTED = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - STARTED:5.0f} s] {text}", file=sys.stderr)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def process_files(folder: Path, size: int) -> None:
    """`echo` answers its input; `big` writes a file of `size` bytes as its result."""
    info = {"version": "1", "jobControlOptions": ["sync-execute", "async-execute"]}
    echo = {
        "info": {"id": "echo", **info},
        "host": {
            "type": "subprocess",
            "command": ["sh", "-c", 'echo "{\\"plugin_results\\": $0}"'],
        },
        "inputs": [{"id": "name", "schema": {"type": "string"}}],
        "outputs": [{"id": "name", "schema": {"type": "string"}}],
    }
    write = (
        f'head -c {size} /dev/zero > "$PROCESS_API_RESULTS_DIR/big.bin"; '
        'echo \'{"plugin_results": {"file": "big.bin"}}\''
    )
    big = {
        "info": {"id": "big", **info},
        "host": {"type": "subprocess", "command": ["sh", "-c", write]},
        "outputs": [
            {
                "id": "file",
                "schema": {"type": "string", "contentMediaType": "application/octet-stream"},
            }
        ],
    }
    (folder / "echo.yml").write_text(json.dumps(echo))
    (folder / "big.yml").write_text(json.dumps(big))


def start(workdir: Path, src: Path) -> tuple[subprocess.Popen[bytes], str]:
    plugins = workdir / "plugins"
    plugins.mkdir()
    process_files(plugins, ARGS.size)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(src), "LOG_LEVEL": "WARNING"}
    env["DATA_DIR"] = str(workdir / "data")
    command = [sys.executable, "-m", "process_api", "-d", str(plugins), "-p", str(port)]
    log = (workdir / "server.log").open("wb")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/conformance", timeout=2).is_success:
                return server, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"the server did not start; see {workdir / 'server.log'}")


async def executions(url: str, count: int, clients: int) -> None:
    remaining = count

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            response = await http.post(
                "/processes/echo/execution", json={"inputs": {"name": "memory"}}
            )
            if response.status_code != 200:
                raise SystemExit(f"an execution answered {response.status_code}: {response.text}")

    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))


def download_peak(url: str, pid: int) -> tuple[float, float, int]:
    """Memory before, the most during the download, and the bytes downloaded."""
    with httpx.Client(base_url=url, timeout=600) as http:
        response = http.post(
            "/processes/big/execution", json={"inputs": {}}, headers={"Prefer": "respond-async"}
        )
        job = response.json()["jobID"]
        while http.get(f"/jobs/{job}").json()["status"] not in ("successful", "failed"):
            time.sleep(0.2)
        before = rss_mb(pid)
        peak = before
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_mb(pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        received = 0
        with http.stream("GET", f"/jobs/{job}/results/file") as stream:
            for chunk in stream.iter_raw(1 << 20):
                received += len(chunk)
        done.set()
        sampler.join()
    return before, peak, received


def main() -> int:
    src = Path(ARGS.src).resolve()
    with tempfile.TemporaryDirectory(prefix="process-api-memory-") as folder:
        server, url = start(Path(folder), src)
        try:
            first, total = ARGS.runs
            say(f"{first} synchronous executions …")
            asyncio.run(executions(url, first, ARGS.clients))
            after_first = rss_mb(server.pid)
            say(f"{total - first} more …")
            asyncio.run(executions(url, total - first, ARGS.clients))
            after_all = rss_mb(server.pid)
            say(f"a result of {ARGS.size:,} bytes …")
            before, peak, received = download_peak(url, server.pid)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
    growth = (after_all - after_first) / after_first * 100
    print(f"process-api ({src}), one server process, RSS in MB")
    print(f"after {first:>6,} sync executions: {after_first:7.1f}")
    print(f"after {total:>6,} sync executions: {after_all:7.1f}  ({growth:+.1f}%, target < 10%)")
    print(
        f"serving a {received / 1e9:.2f} GB result: {before:.1f} before, {peak:.1f} at most "
        f"(+{peak - before:.1f} MB, target < 50 MB)"
    )
    if received != ARGS.size:
        print(f"the download was {received} bytes, not {ARGS.size}")
        return 1
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, nargs=2, default=[1000, 10000], metavar=("N1", "N2"))
    parser.add_argument("--clients", type=int, default=4, help="executions sent at once")
    parser.add_argument("--size", type=int, default=1_000_000_000, help="bytes of the result")
    parser.add_argument("--src", default=str(ROOT / "src"), help="process-api's source tree")
    return parser.parse_args()


if __name__ == "__main__":
    ARGS = parse_args()
    sys.exit(main())
