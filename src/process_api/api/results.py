"""Answering with a job's results in every form of OGC API - Processes 1.0.

`response=raw`: one output by value is the value itself; outputs by reference
are `Link` headers of a 204; several outputs are `multipart/related`, one part
per output (a reference part carries only its `Content-Location`).
`response=document`: a results document, values inline or as links. References
point to `/jobs/{jobID}/results/{outputID}`, which serves one output raw.

A file output (see jobs/files.py) is never inlined: alone and by value it is the
file, streamed; in a results document or a multipart answer it is a link to
`/jobs/{jobID}/results/{outputID}`, whatever its transmission mode.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from process_api.api.files import serve_file
from process_api.api.links import REL_RESULTS, Base, url
from process_api.api.safety import JSON, raw_headers
from process_api.errors import (
    ApiError,
    InvalidInput,
    JobDismissed,
    JobFailed,
    NoSuchOutput,
    ResultNotReady,
)
from process_api.jobs.contract import UNDECLARED_OUTPUT
from process_api.jobs.files import FileResult, read_results
from process_api.jobs.model import Job, JobStatus
from process_api.processes.registry import Process
from process_api.storage.base import Storage


@dataclass(frozen=True)
class OutputForm:
    """How one output is delivered."""

    transmission: Literal["value", "reference"]
    media_type: str
    #: the output's values are base64 text of binary content.
    base64: bool = False


def _native(process: Process, output_id: str) -> tuple[str, bool]:
    schema = process.output_schemas.get(output_id, {})
    media = schema.get("contentMediaType")
    if isinstance(media, str) and media:
        return media, schema.get("contentEncoding") == "base64"
    return JSON, False


def _transmissions(process: Process, output_id: str) -> list[str]:
    output = next((o for o in process.config.outputs if o.id == output_id), None)
    modes = output.output.transmissionMode if output and output.output else None
    return list(modes or process.config.info.outputTransmission or ["value"])


def output_forms(process: Process, request: dict[str, Any]) -> dict[str, OutputForm]:
    """The form of each output an execute request asked for (every output when it named none).

    Raises InvalidInput naming the output for a transmission mode or media type the
    output does not offer.
    """
    # A process that declares no outputs returns one value, kept as "result".
    declared = list(process.output_schemas) or [UNDECLARED_OUTPUT]
    wanted: dict[str, Any] = request.get("outputs") or {o: {} for o in declared}
    unknown = [o for o in wanted if o not in declared]
    if unknown:
        raise InvalidInput(f"unknown output(s) {unknown}; the process has {declared}")
    forms = {}
    for output_id, options in wanted.items():
        options = options or {}
        allowed = _transmissions(process, output_id)
        mode: Any = options.get("transmissionMode") or (
            "value" if "value" in allowed else allowed[0]
        )
        if mode not in allowed:
            raise InvalidInput(f"output {output_id!r} is not offered by {mode} (only {allowed})")
        media, encoded = _native(process, output_id)
        asked = (options.get("format") or {}).get("mediaType")
        if asked and asked.split(";")[0].strip() != media:
            raise InvalidInput(f"output {output_id!r} is not offered as {asked!r} (only {media})")
        forms[output_id] = OutputForm(mode, media, encoded)
    return forms


def check_finished(job: Job) -> dict[str, Any]:
    """The job's results, or the error that says why there are none."""
    if job.status is JobStatus.SUCCESSFUL:
        return read_results(job.results)
    if job.status is JobStatus.FAILED:
        raise JobFailed(f"job {job.id} failed: {job.message}")
    if job.status is JobStatus.DISMISSED:
        raise JobDismissed(f"job {job.id} was dismissed: {job.message}")
    raise ResultNotReady(f"job {job.id} is {job.status.value}; its results are not ready")


def output_href(base: Base, job: Job, output_id: str) -> str:
    return url(base, f"/jobs/{job.id}/results/{output_id}")


def raw_body(form: OutputForm, value: Any) -> bytes:
    if form.media_type == JSON:
        return json.dumps(value).encode()
    if form.base64 and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            pass
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


def _inline(form: OutputForm, value: Any) -> Any:
    """A value as the 1.0 results document allows it: objects and non-JSON content qualified."""
    if form.media_type != JSON:
        qualified = {"value": value, "mediaType": form.media_type}
        return {**qualified, "encoding": "base64"} if form.base64 else qualified
    if isinstance(value, dict):
        return {"value": value, "mediaType": JSON}
    return value


def results_document(
    base: Base, job: Job, results: dict[str, Any], forms: dict[str, OutputForm]
) -> dict[str, Any]:
    """`results` as `check_finished` gives them (files as FileResult)."""
    document = {}
    for output_id, form in forms.items():
        if output_id not in results:
            continue
        value = results[output_id]
        if isinstance(value, FileResult):
            href = output_href(base, job, output_id)
            document[output_id] = {"href": href, "type": value.type, "title": output_id}
        elif form.transmission == "reference":
            href = output_href(base, job, output_id)
            document[output_id] = {"href": href, "type": form.media_type, "title": output_id}
        else:
            document[output_id] = _inline(form, value)
    return document


def _quoted(text: str) -> str:
    """An RFC 9110 quoted string (output ids and file types are plain already: this keeps
    a Link header whole if that ever changes)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _link_header(href: str, form: OutputForm, output_id: str) -> str:
    return (
        f'<{href}>; rel="{REL_RESULTS}"; type={_quoted(form.media_type)}; '
        f"title={_quoted(output_id)}"
    )


def raw_response(
    base: Base,
    job: Job,
    results: dict[str, Any],
    forms: dict[str, OutputForm],
    headers: dict[str, str],
) -> Response:
    present = {o: f for o, f in forms.items() if o in results}
    references = {o: f for o, f in present.items() if f.transmission == "reference"}
    if not present or len(references) == len(present):
        links = [_link_header(output_href(base, job, o), f, o) for o, f in references.items()]
        if links:
            headers = {**headers, "Link": ", ".join([*links, headers.get("Link", "")]).rstrip(", ")}
        return Response(status_code=204, headers=headers)
    if len(present) == 1:
        ((output_id, form),) = present.items()
        return Response(
            raw_body(form, results[output_id]),
            media_type=form.media_type,
            headers={**headers, **raw_headers(form.media_type, output_id)},
        )
    boundary = uuid.uuid4().hex
    parts = []
    for output_id, form in present.items():
        head = f"--{boundary}\r\nContent-ID: <{output_id}>\r\nContent-Type: {form.media_type}\r\n"
        if form.transmission == "reference" or isinstance(results[output_id], FileResult):
            head += f"Content-Location: {output_href(base, job, output_id)}\r\n\r\n"
            parts.append(head.encode() + b"\r\n")
        else:
            parts.append(head.encode() + b"\r\n" + raw_body(form, results[output_id]) + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    media_type = f'multipart/related; boundary="{boundary}"; type="{JSON}"'
    return Response(
        body, media_type=media_type, headers={**headers, **raw_headers(media_type, job.id)}
    )


def _file_forms(results: dict[str, Any], forms: dict[str, OutputForm]) -> dict[str, OutputForm]:
    """The forms, with each file output's media type the file's."""
    return {
        output_id: OutputForm(form.transmission, value.type)
        if isinstance(value := results.get(output_id), FileResult)
        else form
        for output_id, form in forms.items()
    }


async def results_response(
    request: Request,
    storage: Storage,
    process: Process | None,
    job: Job,
    headers: dict[str, str] | None = None,
    conditional: bool = True,
) -> Response:
    """The job's results in the form its execute request asked for; errors if it has none.
    `conditional`: whether a file answers ranges and validators (not after an execute)."""
    results = check_finished(job)
    headers = dict(headers or {})
    if process is None:  # no longer registered: every output as a JSON value
        forms = {o: OutputForm("value", JSON) for o in results}
    else:
        forms = _file_forms(results, output_forms(process, job.request))
    if job.request.get("response") == "document":
        return JSONResponse(results_document(request, job, results, forms), headers=headers)
    present = [o for o in forms if o in results]
    if len(present) == 1 and forms[present[0]].transmission == "value":
        value = results[present[0]]
        if isinstance(value, FileResult):
            key = storage.layout.results_of(job.id) + value.name
            answer = await serve_file(request, storage, key, value.type, value.name, conditional)
            answer.headers.update(headers)
            return answer
    return raw_response(request, job, results, forms, headers)


async def one_output(
    request: Request, storage: Storage, process: Process | None, job: Job, output_id: str
) -> Response:
    """One output of a successful job, raw, with its media type (a file output: the file)."""
    results = check_finished(job)
    if output_id not in results:
        raise NoSuchOutput(f"job {job.id} has no output {output_id!r}; it has {list(results)}")
    value = results[output_id]
    if isinstance(value, FileResult):
        key = storage.layout.results_of(job.id) + value.name
        return await serve_file(request, storage, key, value.type, value.name)
    if process is None:
        form = OutputForm("value", JSON)
    else:
        media, encoded = _native(process, output_id)
        form = OutputForm("value", media, encoded)
    return Response(
        raw_body(form, results[output_id]),
        media_type=form.media_type,
        headers=raw_headers(form.media_type, output_id),
    )


async def execution_response(
    request: Request, storage: Storage, process: Process, job: Job
) -> Response:
    """The answer to a synchronous execution that has ended: results, or the failure."""
    headers = {"Link": f'<{url(request, f"/jobs/{job.id}")}>; rel="monitor"'}
    try:
        return await results_response(request, storage, process, job, headers, False)
    except ApiError as exc:
        document = {
            "type": exc.type,
            "title": exc.title,
            "status": exc.status,
            "detail": exc.detail,
            "jobID": job.id,
        }
        return JSONResponse(document, status_code=exc.status, headers=headers)
