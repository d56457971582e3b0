"""The server under load (findings 15 and 16): bench/load.py's core against a real server.

Slow: each test takes minutes on a small machine (`-m "not slow"` leaves them out).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from bench.load import run_load

from tests.conftest import Server, process_info, wait_status

ServerFactory = Callable[..., Server]

pytestmark = pytest.mark.slow


@pytest.mark.timeout(1200)
def test_finding_15_burst_of_1000_async_and_200_sync_executions_all_end(server: Server) -> None:
    report = asyncio.run(run_load(server.url, async_jobs=1000, clients=32, sync=200, wait=420))
    assert report.submissions == 1000 and report.sync_runs == 200
    assert dict(report.errors) == {}, report.samples
    assert report.stuck == [], f"{len(report.stuck)} job(s) never ended"
    assert dict(report.statuses) == {"successful": 1200}, report.samples
    assert "database is locked" not in server.output()


#: a process whose result is about 50 MB of text.
BIG_PY = """\
import json
print(json.dumps({"plugin_results": "x" * 50_000_000}))
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.mark.timeout(600)
def test_finding_16_job_list_and_status_stay_light_beside_large_results(
    server_factory: ServerFactory, plugins_dir: Path
) -> None:
    big = {
        "info": process_info("big"),
        "host": {"type": "subprocess", "command": ["python3", "big.py"]},
        "outputs": [{"id": "text", "schema": {"type": "string"}}],
    }
    (plugins_dir / "big.yml").write_text(json.dumps(big))
    (plugins_dir / "big.py").write_text(BIG_PY)
    server = server_factory(plugins_dir)
    assert server.proc is not None
    with server.client() as http:
        ids = []
        for _ in range(3):
            response = http.post(
                "/processes/big/execution", json={}, headers={"Prefer": "respond-async"}
            )
            assert response.status_code == 201, response.text
            ids.append(response.json()["jobID"])
        for job_id in ids:
            wait_status(http, job_id, {"successful"}, timeout=240)

    before = rss_mb(server.proc.pid)
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, rss_mb(server.proc.pid))  # type: ignore[union-attr]

    async def reads() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
            lists = [http.get("/jobs", params={"limit": 100}) for _ in range(16)]
            statuses = [http.get(f"/jobs/{ids[n % 3]}") for n in range(16)]
            return list(await asyncio.gather(*lists, *statuses))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        answers = asyncio.run(reads())
    finally:
        done.set()
        sampler.join()
    assert [a.status_code for a in answers] == [200] * 32, peak - before
    assert all(len(a.content) < 100_000 for a in answers), "status documents carry no results"
    assert answers[0].json()["numberMatched"] == 3
    assert peak - before < 300, f"RSS rose from {before:.0f} MB to {peak:.0f} MB"
