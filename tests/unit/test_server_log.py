"""Lines logged while a job runs carry its ids, in the job's task and the tasks it starts."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from process_api import server_log


def test_a_job_task_and_its_child_tasks_log_the_job_ids() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    server_log.configure("INFO", "json")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    log = logging.getLogger("process_api.test")

    async def child() -> None:
        log.info("from a task the job started")

    async def job() -> None:
        server_log.bind_job("j1", "echo")
        log.info("from the job's task")
        await asyncio.create_task(child())

    async def main() -> None:
        await asyncio.create_task(job())
        log.info("about no job")

    try:
        asyncio.run(main())
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    about = {e["message"]: (e.get("job_id"), e.get("process_id")) for e in entries}
    assert about["from the job's task"] == ("j1", "echo")
    assert about["from a task the job started"] == ("j1", "echo")
    assert about["about no job"] == (None, None)
