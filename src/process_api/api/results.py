"""Answering with a job's results in every form of OGC API - Processes 1.0.

`response=raw`: one output by value is the value itself; outputs by reference
are `Link` headers of a 204; several outputs are `multipart/related`, one part
per output (a reference part carries only its `Content-Location`).
`response=document`: a results document, values inline or as links. References
point to `/jobs/{jobID}/results/{outputID}`, which serves one output raw.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from fastapi.responses import JSONResponse, Response

from process_api.api.links import REL_RESULTS, Base, url
from process_api.errors import (
    ApiError,
    InvalidInput,
    JobDismissed,
    JobFailed,
    NoSuchOutput,
    ResultNotReady,
)
from process_api.jobs.contract import UNDECLARED_OUTPUT
from process_api.jobs.model import Job, JobStatus
from process_api.processes.registry import Process

JSON = "application/json"
#: media types a browser shows passively (never runs a script from), served inline.
#: Everything else (HTML, XHTML, SVG, XML, JavaScript, PDF, multipart, unknown types)
#: is served as a download, so that an output that echoes its input cannot run an
#: attacker's script on the API's own origin.
INLINE_TYPES = frozenset(
    {
        JSON,
        "text/plain",
        "text/csv",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/bmp",
        "image/tiff",
    }
)


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
        return job.results or {}
    if job.status is JobStatus.FAILED:
        raise JobFailed(f"job {job.id} failed: {job.message}")
    if job.status is JobStatus.DISMISSED:
        raise JobDismissed(f"job {job.id} was dismissed: {job.message}")
    raise ResultNotReady(f"job {job.id} is {job.status.value}; its results are not ready")


def output_href(base: Base, job: Job, output_id: str) -> str:
    return url(base, f"/jobs/{job.id}/results/{output_id}")


def shown_inline(media_type: str) -> bool:
    """Whether a browser may show the type in a page of the API's origin (see INLINE_TYPES)."""
    essence = media_type.split(";")[0].strip().lower()
    return essence in INLINE_TYPES or (
        essence.startswith("application/") and essence.endswith("+json")
    )


def raw_headers(media_type: str, name: str) -> dict[str, str]:
    """Headers that keep a raw output from acting as a page: sandboxed, and a download
    unless its type is one a browser only shows."""
    headers = {"Content-Security-Policy": "sandbox"}
    if not shown_inline(media_type):
        filename = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "output"
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return headers


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
    document = {}
    for output_id, form in forms.items():
        if output_id not in results:
            continue
        if form.transmission == "reference":
            href = output_href(base, job, output_id)
            document[output_id] = {"href": href, "type": form.media_type, "title": output_id}
        else:
            document[output_id] = _inline(form, results[output_id])
    return document


def _link_header(href: str, form: OutputForm, output_id: str) -> str:
    return f'<{href}>; rel="{REL_RESULTS}"; type="{form.media_type}"; title="{output_id}"'


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
        if form.transmission == "reference":
            head += f"Content-Location: {output_href(base, job, output_id)}\r\n\r\n"
            parts.append(head.encode() + b"\r\n")
        else:
            parts.append(head.encode() + b"\r\n" + raw_body(form, results[output_id]) + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    media_type = f'multipart/related; boundary="{boundary}"; type="{JSON}"'
    return Response(
        body, media_type=media_type, headers={**headers, **raw_headers(media_type, job.id)}
    )


def results_response(
    base: Base, process: Process | None, job: Job, headers: dict[str, str] | None = None
) -> Response:
    """The job's results in the form its execute request asked for; errors if it has none."""
    results = check_finished(job)
    headers = dict(headers or {})
    if process is None:  # no longer registered: every output as a JSON value
        forms = {o: OutputForm("value", JSON) for o in results}
    else:
        forms = output_forms(process, job.request)
    if job.request.get("response") == "document":
        return JSONResponse(results_document(base, job, results, forms), headers=headers)
    return raw_response(base, job, results, forms, headers)


def one_output(process: Process | None, job: Job, output_id: str) -> Response:
    """One output of a successful job, raw, with its media type."""
    results = check_finished(job)
    if output_id not in results:
        raise NoSuchOutput(f"job {job.id} has no output {output_id!r}; it has {list(results)}")
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


def execution_response(base: Base, process: Process, job: Job) -> Response:
    """The answer to a synchronous execution that has ended: results, or the failure."""
    headers = {"Link": f'<{url(base, f"/jobs/{job.id}")}>; rel="monitor"'}
    try:
        return results_response(base, process, job, headers)
    except ApiError as exc:
        document = {
            "type": exc.type,
            "title": exc.title,
            "status": exc.status,
            "detail": exc.detail,
            "jobID": job.id,
        }
        return JSONResponse(document, status_code=exc.status, headers=headers)
