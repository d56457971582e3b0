"""Time of a synchronous execution through the API against `docker run --rm` of the same.

Both run the same trivial busybox container (it prints its argument as the
result) and both remove the container before answering; the runs alternate, so
both see the same machine load. Prints a table and the ratio of the medians.

    .venv/bin/python bench/docker_sync.py [--runs 30]

Needs a Docker Engine (see the README) and runs only on this machine's loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import free_port
from tests.images import busybox_image

COMMAND = ["sh", "-c", 'echo "{\\"plugin_results\\": $0}"']
INPUTS = {"value": "x"}


def process_file(image: str) -> str:
    return json.dumps(
        {
            "info": {"id": "trivial", "version": "1", "jobControlOptions": ["sync-execute"]},
            "host": {"type": "docker"},
            "container": {"image": image, "command": COMMAND, "network": "none"},
            "inputs": [{"id": "value", "schema": {"type": "string"}}],
            "outputs": [{"id": "value", "schema": {"type": "string"}}],
        }
    )


def start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "DATA_DIR": str(workdir / "data"), "LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "process_api", "-d", str(workdir / "plugins"), "-p", str(port)]
    server = subprocess.Popen(command, env=env, cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url + "/conformance")
            return server, url
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit("the server did not start")


def time_api(http: httpx.Client) -> float:
    started = time.perf_counter()
    response = http.post("/processes/trivial/execution", json={"inputs": INPUTS})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200 and response.json() == INPUTS["value"], response.text
    return elapsed


def time_cli(image: str) -> float:
    argument = json.dumps(INPUTS)
    started = time.perf_counter()
    command = ["docker", "run", "--rm", "--network", "none", image, *COMMAND, argument]
    output = subprocess.run(command, capture_output=True, check=True).stdout
    elapsed = time.perf_counter() - started
    assert json.loads(output)["plugin_results"] == INPUTS
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    image = busybox_image()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "plugins").mkdir()
        (workdir / "plugins" / "trivial.yml").write_text(process_file(image))
        server, url = start_server(workdir)
        try:
            with httpx.Client(base_url=url, timeout=60) as http:
                time_api(http), time_cli(image)  # warm up both paths
                api, cli = [], []
                for _ in range(args.runs):
                    api.append(time_api(http))
                    cli.append(time_cli(image))
        finally:
            server.terminate()
            server.wait(30)
    rows = [("process-api, sync execution", api), ("docker run --rm", cli)]
    print(f"{'':30} {'median ms':>10} {'p90 ms':>8} {'min ms':>8}   ({args.runs} runs each)")
    for name, times in rows:
        p90 = statistics.quantiles(times, n=10)[-1]
        print(
            f"{name:30} {statistics.median(times) * 1e3:10.0f} {p90 * 1e3:8.0f} {min(times) * 1e3:8.0f}"
        )
    ratio = statistics.median(api) / statistics.median(cli)
    print(f"ratio of medians (API / docker run): {ratio:.2f}")


if __name__ == "__main__":
    main()
