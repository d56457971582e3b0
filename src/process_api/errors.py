"""Domain errors, each carrying its OGC exception type and HTTP status.

The services raise these; `api.errors` renders them once, as OGC exception
documents. Nothing below the API layer knows about HTTP beyond the number.

    ApiError
     ├── Unauthenticated      401  missing, malformed, expired or untrusted credentials
     ├── Forbidden            403  a known user without the right to do this
     ├── NoSuchProcess        404  no-such-process
     ├── NoSuchJob            404  no-such-job
     ├── ResultNotReady       404  result-not-ready
     ├── NoSuchOutput         404  a job's output that does not exist
     ├── NoSuchFile           404  a file the job's process did not write (or not a regular file)
     ├── JobFailed            500  the failed job's own message (results of a failed job)
     ├── JobDismissed         410  results of a dismissed job
     ├── ResultsExpired       410  results, logs and metadata past retention (EXPIRY_DAYS)
     ├── PayloadTooLarge      413  an execute request too large for the job's host
     ├── UnsupportedMediaType 415  an execute request that is not JSON
     │    └── UnsupportedPackage 415  (Part 2) a process to deploy in another format
     ├── InvalidParameter     400  invalid-parameter-value (query parameters, headers)
     │    ├── InvalidInput    400  (execute request body)
     │    └── InvalidPackage  400  (Part 2) a process to deploy that is not valid
     ├── JobNotDismissable    409  the job already finished
     ├── DuplicatedProcess    409  (Part 2) a process of that id exists
     ├── ImmutableProcess     403  (Part 2) a process of the processes directory
     ├── TooManyJobs          429  the user's quota of active jobs is used up
     ├── ServiceUnavailable   503  an engine the job needs is unreachable
     │    └── StoreUnavailable 503  the job database is busy, missing, read-only or failing
     └── InsufficientStorage  507  the disk of the job database or the storage is full
"""

from __future__ import annotations

from typing import Any

OGC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
#: the exception types of Part 2 (Deploy, Replace, Undeploy).
OGC_DRU = "http://www.opengis.net/def/exceptions/ogcapi-processes-2/1.0/"


class ApiError(Exception):
    """An error that becomes an OGC exception response."""

    status = 500
    type = OGC + "server-error"
    title = "Server error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
        #: response headers that belong with the error (WWW-Authenticate, Retry-After).
        self.headers: dict[str, str] = {}
        #: members of the exception document besides the standard ones.
        self.extra: dict[str, Any] = {}


class Unauthenticated(ApiError):
    """Its detail is shown to the client: it says what is wrong with what was sent and
    never repeats it."""

    status = 401
    type = OGC + "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str, sent: bool = True) -> None:
        super().__init__(detail)
        # RFC 6750: credentials sent and refused are an invalid_token; none sent, no error.
        challenge = 'Bearer realm="process-api"'
        if sent:
            # RFC 6750 allows printable ASCII but the quote and the backslash
            reason = "".join(c for c in detail if " " <= c <= "~" and c not in '"\\')
            challenge += f', error="invalid_token", error_description="{reason}"'
        self.headers["WWW-Authenticate"] = challenge


class Forbidden(ApiError):
    status = 403
    type = OGC + "forbidden"
    title = "Forbidden"


class NoSuchProcess(ApiError):
    status = 404
    type = OGC + "no-such-process"
    title = "No such process"


class NoSuchJob(ApiError):
    status = 404
    type = OGC + "no-such-job"
    title = "No such job"


class ResultNotReady(ApiError):
    status = 404
    type = OGC + "result-not-ready"
    title = "Result not ready"


class NoSuchOutput(ApiError):
    status = 404
    type = OGC + "no-such-output"
    title = "No such output"


class NoSuchFile(ApiError):
    status = 404
    type = OGC + "no-such-file"
    title = "No such file"


class JobFailed(ApiError):
    status = 500
    type = OGC + "job-failed"
    title = "Job failed"


class JobDismissed(ApiError):
    status = 410
    type = OGC + "job-dismissed"
    title = "Job dismissed"


class ResultsExpired(ApiError):
    status = 410
    type = OGC + "results-expired"
    title = "Results expired"


class PayloadTooLarge(ApiError):
    status = 413
    type = OGC + "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(ApiError):
    status = 415
    type = OGC + "unsupported-media-type"
    title = "Unsupported media type"


class UnsupportedPackage(UnsupportedMediaType):
    type = OGC_DRU + "unsupported-content-type"


class InvalidParameter(ApiError):
    status = 400
    type = OGC + "invalid-parameter-value"
    title = "Invalid parameter value"


class InvalidInput(InvalidParameter):
    title = "Invalid execute request"

    def __init__(self, detail: str, problems: list[tuple[str | None, str]] | None = None) -> None:
        """`problems`: each problem with the input it is about (None: the request), listed
        in the document as `problems` so that a form can show each at its field."""
        super().__init__(detail)
        if problems:
            self.extra["problems"] = [{"input": i, "detail": text} for i, text in problems]


class InvalidPackage(InvalidParameter):
    title = "Invalid process"


class DuplicatedProcess(ApiError):
    status = 409
    type = OGC_DRU + "duplicated-process"
    title = "Duplicated process"


class ImmutableProcess(ApiError):
    status = 403
    type = OGC_DRU + "immutable-process"
    title = "Immutable process"


class JobNotDismissable(ApiError):
    status = 409
    type = OGC + "job-not-dismissable"
    title = "Job cannot be dismissed"


class TooManyJobs(ApiError):
    status = 429
    type = OGC + "too-many-jobs"
    title = "Too many active jobs"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.headers["Retry-After"] = str(retry_after)


class ServiceUnavailable(ApiError):
    status = 503
    type = OGC + "service-unavailable"
    title = "Service unavailable"


class StoreUnavailable(ServiceUnavailable):
    title = "Job store unavailable"


class InsufficientStorage(ApiError):
    status = 507
    type = OGC + "insufficient-storage"
    title = "Insufficient storage"
