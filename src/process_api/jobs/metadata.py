"""A job's provenance: what ran, where and when. Served by the API and kept in storage."""

from __future__ import annotations

from typing import Any

from process_api.jobs.model import Job, timestamp

#: handle members that only the host needs.
_INTERNAL = ("start",)


#: who submitted the job: its user's id and the name to show.
SUBMITTER_FIELDS = ("submitter", "submitterName")


def job_metadata(job: Job) -> dict[str, Any]:
    """The job's identity, host, status and times, with what its host recorded of the run
    (image and digest, command, container or Batch job); never its inputs' secrets."""
    run = {k: v for k, v in (job.handle or {}).items() if k not in _INTERNAL}
    submitter = dict(zip(SUBMITTER_FIELDS, (job.submitter, job.submitter_name), strict=True))
    return {
        "jobID": job.id,
        "processID": job.process_id,
        "processVersion": job.process_version,
        **({"processRevision": job.process_revision} if job.process_revision else {}),
        "host": job.host_type,
        "status": job.status.value,
        "created": timestamp(job.created),
        "started": timestamp(job.started),
        "finished": timestamp(job.finished),
        **(submitter if job.submitter else {}),
        **run,
    }
