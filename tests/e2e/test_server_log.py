"""LOG_FORMAT=json: one JSON object per line, and the job's ids on every line about a job,
so that a log collector finds everything about one job by a field, not a text search."""

from __future__ import annotations

import json

from tests.conftest import EXAMPLES, Server, free_port, wait_until


def test_json_log_lines_carry_the_job_and_process_ids(tmp_path) -> None:
    server = Server(
        EXAMPLES,
        tmp_path / "data",
        env={
            "LOG_FORMAT": "json",
            "CALLBACK_ALLOW_PRIVATE": "true",
            "CALLBACK_ATTEMPTS": "1",
            "CALLBACK_TIMEOUT": "2",
        },
    ).start()
    try:
        nobody = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: the callback fails
        with server.client() as http:
            response = http.post(
                "/processes/echo/execution",
                json={"inputs": {"stringInput": "x"}, "subscriber": {"successUri": nobody}},
            )
            assert response.status_code == 200, response.text
            job_id = response.headers["Link"].split("/jobs/")[1].split(">")[0]

        def callback_line() -> dict | None:
            for line in server.output().splitlines():
                entry = json.loads(line)  # every line is one JSON object
                if "callback" in entry["message"] and entry.get("job_id") == job_id:
                    return entry
            return None

        entry = wait_until(callback_line, timeout=20, what="the failed callback's log line")
        assert entry["process_id"] == "echo"
        assert entry["level"] == "WARNING"
        assert {"time", "logger"} <= set(entry)
        # lines about no job carry no job fields, and uvicorn's own lines are JSON too
        lines = [json.loads(line) for line in server.output().splitlines()]
        assert any("job_id" not in e and "serving" in e["message"] for e in lines)
    finally:
        server.stop()
