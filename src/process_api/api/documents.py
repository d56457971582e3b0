"""The OGC JSON documents: process summaries and descriptions, statusInfo, results."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from process_api.api.links import (
    REL_EXECUTE,
    REL_PROCESS_DESCRIPTION,
    REL_RESULTS,
    Base,
    base_url,
    link,
    self_links,
    url,
)
from process_api.api.negotiation import HTML, JSON
from process_api.jobs.model import Job, JobStatus, timestamp
from process_api.processes.config import Described
from process_api.processes.registry import Process
from process_api.store.base import JobSummary


def pretty_json(value: Any) -> str:
    """JSON for people: indented, non-ASCII kept (the page escapes it as HTML)."""
    return json.dumps(value, indent=2, ensure_ascii=False)


def compact_json(value: Any) -> str:
    """JSON on one line, non-ASCII kept (the page escapes it as HTML)."""
    return json.dumps(value, ensure_ascii=False)


def _described(item: Described | Any) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for name in ("title", "description"):
        if getattr(item, name, None):
            document[name] = getattr(item, name)
    if getattr(item, "keywords", None):
        document["keywords"] = list(item.keywords)
    return document


def process_summary(request: Request, process: Process) -> dict[str, Any]:
    info = process.config.info
    path = f"/processes/{process.id}"
    return {
        "id": process.id,
        "version": process.version,
        **_described(info),
        "jobControlOptions": [*info.jobControlOptions, "dismiss"]
        if "dismiss" not in info.jobControlOptions
        else list(info.jobControlOptions),
        "outputTransmission": list(info.outputTransmission),
        # Part 2: a process of the processes directory changes only with its file
        "mutable": process.mutable,
        "links": [
            link(url(request, path), REL_PROCESS_DESCRIPTION, title="Process description"),
            link(
                url(request, path, f="html"),
                "alternate",
                "text/html",
                "Process description as HTML",
            ),
            link(url(request, path + "/execution"), REL_EXECUTE, title="Execute endpoint"),
        ],
    }


def process_description(request: Request, process: Process) -> dict[str, Any]:
    document = process_summary(request, process)
    document["links"] = [
        *self_links(request, f"/processes/{process.id}", "Process description"),
        *document["links"][2:],
    ]
    document["inputs"] = {
        i.id: {
            **_described(i),
            "schema": process.input_schemas[i.id],
            "minOccurs": i.minOccurs,
            "maxOccurs": i.maxOccurs,
        }
        for i in process.config.inputs
    }
    document["outputs"] = {
        o.id: {**_described(o), "schema": process.output_schemas[o.id]}
        for o in process.config.outputs
    }
    return document


def process_path(job: Job | JobSummary) -> str:
    """The description of the process the job ran: of its version, if it was deployed."""
    path = f"/processes/{job.process_id}"
    return path if job.process_revision is None else f"{path}/versions/{job.process_revision}"


def status_info(request: Base, job: Job | JobSummary) -> dict[str, Any]:
    # The links are joined here rather than built through `url` and `self_links`, which
    # encode a query for each: this is the document served most.
    base = base_url(request)  # once: a request's address is parsed to find it
    here = f"{base}/jobs/{job.id}"
    document: dict[str, Any] = {
        "processID": job.process_id,
        "type": "process",
        "jobID": job.id,
        "status": job.status.value,
        "message": job.message,
    }
    for name in ("created", "started", "finished", "updated"):
        value = timestamp(getattr(job, name))
        if value is not None:
            document[name] = value
    if job.progress is not None:
        document["progress"] = job.progress
    links = [
        link(f"{here}?f=json", "self", JSON, "Job status"),
        link(f"{here}?f=html", "alternate", HTML, "Job status as HTML"),
        link(here, "status", title="Job status"),
        link(f"{here}/logs", "logs", title="Job logs"),
        link(f"{here}/metadata", "metadata", title="Job metadata"),
        link(base + process_path(job), "process", title="Process description"),
    ]
    if job.status is JobStatus.SUCCESSFUL:
        links.append(link(f"{here}/results", REL_RESULTS, title="Job results"))
    document["links"] = links
    return document
