"""Reading what a process printed: its log, progress reports and final results.

The job contract: the last line of stdout is `{"plugin_results": <value>}`;
lines `{"progress": N, "message": "…"}` report progress; everything is the log.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from process_api.processes.registry import Process

#: log lines kept per job; older ones are dropped, with a marker saying how many.
MAX_LOG_LINES = 100_000


class ResultsError(Exception):
    """The process's results do not fit its declared outputs."""


@dataclass
class Progress:
    percent: int | None
    message: str | None


def parse_progress(line: str) -> Progress | None:
    """A progress report, if the line is one."""
    if not line.startswith("{") or '"progress"' not in line:
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or "plugin_results" in data:
        return None
    percent = data.get("progress")
    if not isinstance(percent, int | float) or isinstance(percent, bool):
        return None
    if not math.isfinite(percent):
        return None
    message = data.get("message")
    return Progress(max(0, min(100, int(percent))), message if isinstance(message, str) else None)


#: the output id of the value of a process that declares no outputs.
UNDECLARED_OUTPUT = "result"
#: what a process that returned no results "returned".
NO_RESULTS: Any = object()


def plugin_results(line: str | None) -> Any:
    """The value of a `{"plugin_results": …}` line, or NO_RESULTS."""
    if not line:
        return NO_RESULTS
    try:
        data = json.loads(line)
    except ValueError:
        return NO_RESULTS
    if isinstance(data, dict) and "plugin_results" in data:
        return data["plugin_results"]
    return NO_RESULTS


def map_results(process: Process, value: Any) -> dict[str, Any]:
    """Output id -> value, from what the process returned (its plugin_results)."""
    outputs = list(process.output_schemas)
    if value is NO_RESULTS:
        if not outputs:
            return {}
        raise ResultsError(
            'the process returned no results: print {"plugin_results": …} as the last line, '
            "or write results.json to the results location"
        )
    if not outputs:
        # Files from the Go server may declare no outputs and still return a value.
        return {UNDECLARED_OUTPUT: value}
    if len(outputs) == 1:
        keyed = isinstance(value, dict) and set(value) == {outputs[0]}
        results = dict(value) if keyed else {outputs[0]: value}
    elif isinstance(value, dict) and value and set(value) <= set(outputs):
        results = dict(value)
    else:
        raise ResultsError(f"plugin_results must be an object keyed by the outputs {outputs}")
    _check_outputs(process, results)
    return results


def _check_outputs(process: Process, results: dict[str, Any]) -> None:
    try:
        json.dumps(results, allow_nan=False)
    except ValueError:
        raise ResultsError(
            "the results hold a number JSON cannot carry (infinite or not a number)"
        ) from None
    for output_id, value in results.items():
        schema = process.output_schemas.get(output_id)
        if not schema:
            continue
        error = best_match(Draft202012Validator(schema).iter_errors(value))
        if error is not None:
            raise ResultsError(f"output {output_id!r} is not valid: {error.message}")


@dataclass
class JobLog:
    """The lines a running job printed, and the last stdout line for its results."""

    lines: list[dict[str, str]] = field(default_factory=list)
    dropped: int = 0
    last_stdout: str | None = None
    last_stderr: str | None = None
    #: the last stdout line that is {"plugin_results": …}; where a platform merges the
    #: streams (AWS Batch), a warning printed after it does not hide it.
    results_line: str | None = None

    def add(self, time: datetime, stream: str, text: str) -> None:
        line = text.strip()
        if line and stream == "stdout":
            self.last_stdout = line
            if '"plugin_results"' in line and plugin_results(line) is not NO_RESULTS:
                self.results_line = line
        elif line:
            self.last_stderr = line
        record = {"time": time.isoformat(), "stream": stream, "text": text}
        if self.lines and self.lines[-1]["time"] > record["time"]:
            # stdout and stderr are read apart: keep the log in the order things were printed
            bisect.insort(self.lines, record, key=lambda r: r["time"])
        else:
            self.lines.append(record)
        if len(self.lines) > MAX_LOG_LINES:
            del self.lines[: len(self.lines) - MAX_LOG_LINES]
            self.dropped += 1

    def to_jsonl(self) -> bytes:
        records = self.lines
        if self.dropped:
            note = {
                "time": "",
                "stream": "server",
                "text": f"[{self.dropped} earlier lines dropped]",
            }
            records = [note, *records]
        return "".join(json.dumps(r) + "\n" for r in records).encode()


def parse_log(data: bytes) -> list[dict[str, str]]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]
