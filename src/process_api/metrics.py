"""Prometheus metrics of the server: jobs submitted and ended, jobs active and queued, and
the HTTP requests it answered.

Each app has its own registry (several apps may live in one test process). Counters and
histograms change as events happen; the active and queued jobs are read from the job
runner when Prometheus scrapes, so they can never drift from what runs.

With several worker processes (`--workers N`) a scrape reaches one of them, which must
answer for all: each writes its values to files in a directory they share
(prometheus-client's multi-process mode) and the scraped one adds them up. The active
and queued jobs are then a gauge that each worker sets from its runner every second
(and at each scrape it answers), summed over the live workers ("livesum"): a worker
that died counts no more, while what it counted (jobs submitted, finished) stays.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from process_api.jobs.model import Job

#: seconds: from a trivial command to a long flood model.
JOB_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

#: (host type, queued or running) of each job this server runs; read at each scrape.
ActiveJobs = Callable[[], Iterator[tuple[str, str]]]


ACTIVE_NAME = "process_api_jobs_active"
ACTIVE_HELP = "Jobs this server runs: queued (waiting for their host's budget) or running"


class _Active(Collector):
    def __init__(self, active: ActiveJobs) -> None:
        self._active = active

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(ACTIVE_NAME, ACTIVE_HELP, labels=["host", "state"])
        counts = Tally(self._active())
        for host, state in sorted(counts):
            family.add_metric([host, state], counts[host, state])
        yield family


class Metrics:
    def __init__(self, active: ActiveJobs, shared_dir: Path | None = None) -> None:
        """`shared_dir`: the directory of the worker processes' values (multi-process mode,
        set up by the supervisor before the workers started), or None for one process."""
        self.registry = CollectorRegistry()
        self.shared = shared_dir is not None
        self._active = active
        self._active_gauge: Gauge | None = None
        self._active_shown: set[tuple[str, str]] = set()
        # In multi-process mode the metrics write to files; only the collector of those
        # files is in the registry that is scraped (else this worker would count twice).
        own = None if self.shared else self.registry
        self._submitted = Counter(
            "process_api_jobs_submitted",
            "Jobs accepted, by process and host",
            ["process", "host"],
            registry=own,
        )
        self._ended = Counter(
            "process_api_jobs_finished",
            "Jobs that reached a final status, by process, host and status",
            ["process", "host", "status"],
            registry=own,
        )
        self._duration = Histogram(
            "process_api_job_duration_seconds",
            "From a job's start on its host to its end, by process, host and status",
            ["process", "host", "status"],
            buckets=JOB_BUCKETS,
            registry=own,
        )
        self._requests = Counter(
            "process_api_http_requests",
            "HTTP requests answered, by method, route and status code",
            ["method", "route", "code"],
            registry=own,
        )
        self._latency = Histogram(
            "process_api_http_request_duration_seconds",
            "Time to answer an HTTP request (to its last byte), by method and route",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=own,
        )
        if shared_dir is None:
            self.registry.register(_Active(active))
        else:
            MultiProcessCollector(self.registry, path=str(shared_dir))  # type: ignore[no-untyped-call]
            self._active_gauge = Gauge(
                ACTIVE_NAME,
                ACTIVE_HELP,
                ["host", "state"],
                registry=None,
                multiprocess_mode="livesum",
            )
            self.refresh()

    def refresh(self) -> None:
        """Writes this worker's active jobs for the scrapes other workers answer (a no-op
        with one process, where they are read at each scrape)."""
        if self._active_gauge is None:
            return
        counts = Tally(self._active())
        for labels in self._active_shown - set(counts):
            self._active_gauge.labels(*labels).set(0)
        for labels, count in counts.items():
            self._active_gauge.labels(*labels).set(count)
        self._active_shown |= set(counts)

    def submitted(self, job: Job) -> None:
        self._submitted.labels(job.process_id, job.host_type).inc()

    def changed(self, job: Job) -> None:
        """Hears every change of a job; counts its end (each job ends once)."""
        if not job.status.terminal:
            return
        labels = (job.process_id, job.host_type, job.status.value)
        self._ended.labels(*labels).inc()
        if job.started is not None and job.finished is not None:
            seconds = (job.finished - job.started).total_seconds()
            self._duration.labels(*labels).observe(max(seconds, 0.0))

    def answered(self, method: str, route: str, code: int, seconds: float) -> None:
        self._requests.labels(method, route, str(code)).inc()
        self._latency.labels(method, route).observe(seconds)
