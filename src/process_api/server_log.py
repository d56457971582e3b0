"""The server's own log: human-readable lines, or one JSON object per line (LOG_FORMAT=json).

Log collectors (CloudWatch, Loki, Elasticsearch) search JSON fields, not text: every
line about a job carries `job_id` and `process_id`, taken from the job's context —
set once in the task that runs the job, and inherited by the tasks it starts
(callbacks, host monitors) — so that no log call has to remember them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]

#: (job id, process id) of the job the current task works for.
_current_job: ContextVar[tuple[str, str] | None] = ContextVar("current_job", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def bind_job(job_id: str, process_id: str) -> None:
    """Marks the rest of the current task (and the tasks it starts) as working for the job."""
    _current_job.set((job_id, process_id))


@contextlib.contextmanager
def job_context(job_id: str, process_id: str) -> Iterator[None]:
    """Marks what runs inside (and tasks started inside) as working for the job."""
    token = _current_job.set((job_id, process_id))
    try:
        yield
    finally:
        _current_job.reset(token)


class _JobFields(logging.Filter):
    """Gives each record the job it is about, unless the call named one (`extra=`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _current_job.get()
        if current is not None and not hasattr(record, "job_id"):
            record.job_id, record.process_id = current
        return True


#: query parameters that carry credentials (a sign-in's code and state, a token some client
#: puts in a URL): their values never reach the access log.
_CREDENTIALS = re.compile(
    r"(?i)([?&](?:code|state|session_state|token|access_token|id_token|api_key|apikey)=)[^&#]*"
)


class _NoCredentials(logging.Filter):
    """Masks credentials in the request lines of uvicorn's access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            args = list(record.args)
            if len(args) > 2 and isinstance(args[2], str) and "?" in args[2]:
                args[2] = _CREDENTIALS.sub(r"\1***", args[2])
                record.args = tuple(args)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ("job_id", "process_id"):
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, log_format: LogFormat = "text") -> None:
    """One handler on stderr for the server and the libraries it uses (uvicorn's too)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_JobFields())
    handler.addFilter(_NoCredentials())
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Each reload of the processes directory says what changed; the watcher's own line for
    # each batch of changes would be noise.
    logging.getLogger("watchfiles").setLevel(max(logging.WARNING, root.level))
