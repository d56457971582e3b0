"""The job contract: what a process is given, and how its progress and results are read.

A process gets its command, then the inputs as one JSON argument, and the job
context in `PROCESS_API_*` variables. Qualified values (`{"value": …, "mediaType": …}`)
arrive as their plain value, their formats in `PROCESS_API_INPUT_FORMATS`. The same
inputs JSON is also a file whose path is in `PROCESS_API_INPUTS_FILE` (on AWS Batch,
where no file of the server's machine can be given, an object whose s3:// URI is in
`PROCESS_API_INPUTS_URI`). A process file with `inputsAs: file` gets no inputs
argument: only the file (or object), so inputs are not bound by the platform's limit
on one argument. The last line of stdout that is `{"plugin_results": <value>}` gives
its results, or else the file `results.json` it wrote to its results location; lines
`{"progress": N, "message": "…"}` report progress. Exit code 0 is success.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from process_api.hosts.base import JobRun
from process_api.processes.inputs import for_process
from process_api.processes.registry import Process
from process_api.storage.base import ObjectRefused, Storage

#: the file a process may write to its results location instead of a plugin_results line.
RESULTS_FILE = "results.json"
#: the largest results.json read (a larger result belongs in a file output).
MAX_RESULTS_FILE = 64 * 1024 * 1024


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
    """Output id -> value, from what the process returned (its plugin_results), each value
    checked against its output's schema."""
    results = keyed_results(process, value)
    check_outputs(process, results)
    return results


def keyed_results(process: Process, value: Any) -> dict[str, Any]:
    """Output id -> value, from what the process returned, not yet checked."""
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
    return results


def check_outputs(process: Process, results: dict[str, Any]) -> None:
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


def job_run(
    process: Process,
    job_id: str,
    inputs: dict[str, Any],
    storage: Storage,
    inputs_dir: Path | None = None,
    inputs_in_storage: bool = False,
) -> JobRun:
    """The command's last argument, the inputs file and the job context a process sees in
    its environment. The inputs file is in `inputs_dir` on this machine, or an object of the
    storage for a host that cannot give the process a file (`inputs_in_storage`)."""
    results = storage.layout.results_of(job_id)
    results_dir = storage.local_path(results)
    env = {
        "PROCESS_API_JOB_ID": job_id,
        "PROCESS_API_PROCESS_ID": process.id,
        "PROCESS_API_PROCESS_VERSION": process.version,
        "PROCESS_API_RESULTS_URI": storage.location(results),
    }
    if results_dir is not None:
        env["PROCESS_API_RESULTS_DIR"] = str(results_dir)
    plain, formats = for_process(process, inputs)
    if formats:
        env["PROCESS_API_INPUT_FORMATS"] = json.dumps(formats)
    inputs_file = inputs_key = inputs_uri = None
    if inputs_in_storage:
        inputs_key = storage.layout.inputs(job_id)
        inputs_uri = env["PROCESS_API_INPUTS_URI"] = storage.location(inputs_key)
    elif inputs_dir is not None:
        inputs_file = inputs_dir / f"{job_id}.json"
        env["PROCESS_API_INPUTS_FILE"] = str(inputs_file)
    return JobRun(
        job_id,
        process,
        json.dumps(plain),
        env,
        results_dir,
        inputs_file=inputs_file,
        inputs_key=inputs_key,
        inputs_uri=inputs_uri,
    )


async def returned_value(storage: Storage, job_id: str, results_line: str | None) -> Any:
    """What the process returned: its plugin_results line, else its results.json, else
    NO_RESULTS. ResultsError when results.json is unreadable, not a file, or too large."""
    value = plugin_results(results_line)
    if value is not NO_RESULTS:
        return value
    key = storage.layout.results_of(job_id) + RESULTS_FILE
    try:
        written = await storage.get(key, max_bytes=MAX_RESULTS_FILE)
    except ObjectRefused as exc:
        raise ResultsError(f"{RESULTS_FILE} is not read: {exc}") from None
    if written is None:
        return NO_RESULTS
    try:
        return json.loads(written)
    except ValueError as exc:
        raise ResultsError(f"{RESULTS_FILE} is not valid JSON: {exc}") from None
