"""Prometheus metrics of the server: jobs submitted and ended, jobs running and queued, and
the HTTP requests it answered.

Each app has its own registry (several apps may live in one test process). Counters and
histograms change as events happen; the running jobs are read from the job runner, and
the queue's length from the last count of the queue, when Prometheus scrapes, so they
never drift from what runs.

With several worker processes (`--workers N`) a scrape reaches one of them, which must
answer for all: each writes its values to files in a directory they share
(prometheus-client's multi-process mode) and the scraped one adds them up. The running
and queued jobs are then gauges that each worker sets every second (and at each scrape
it answers): the running ones summed over the live workers ("livesum": a worker that
died counts no more, while what it counted, jobs submitted and finished, stays); the
queue, which every worker counts whole, the largest count of a live worker ("livemax").
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from process_api.jobs.model import Job

#: seconds: from a trivial command to a long flood model.
JOB_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

#: the host type of each job this server runs; read at each scrape.
RunningJobs = Callable[[], Iterator[str]]
#: how many jobs wait in the queue (of every instance), by host type.
QueuedJobs = Callable[[], Mapping[str, int]]

RUNNING = ("process_api_jobs_running", "Jobs running on this server, by host")
QUEUED = ("process_api_jobs_queued", "Jobs waiting in the queue for their host's room, by host")


class _Active(Collector):
    def __init__(self, running: RunningJobs, queued: QueuedJobs) -> None:
        self._running = running
        self._queued = queued

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for (name, what), counts in (
            (RUNNING, Tally(self._running())),
            (QUEUED, self._queued()),
        ):
            family = GaugeMetricFamily(name, what, labels=["host"])
            for host, count in sorted(counts.items()):
                family.add_metric([host], count)
            yield family


class Metrics:
    def __init__(
        self, running: RunningJobs, queued: QueuedJobs, shared_dir: Path | None = None
    ) -> None:
        """`shared_dir`: the directory of the worker processes' values (multi-process mode,
        set up by the supervisor before the workers started), or None for one process."""
        self.registry = CollectorRegistry()
        self.shared = shared_dir is not None
        self._running = running
        self._queued = queued
        self._gauges: list[tuple[Gauge, set[str]]] = []
        self._answered: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
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
            self.registry.register(_Active(running, queued))
        else:
            MultiProcessCollector(self.registry, path=str(shared_dir))  # type: ignore[no-untyped-call]
            running_gauge = Gauge(*RUNNING, ["host"], registry=None, multiprocess_mode="livesum")
            queued_gauge = Gauge(*QUEUED, ["host"], registry=None, multiprocess_mode="livemax")
            self._gauges = [(running_gauge, set()), (queued_gauge, set())]
            self.refresh()

    def refresh(self) -> None:
        """Writes this worker's running jobs and its count of the queue for the scrapes other
        workers answer (a no-op with one process, where they are read at each scrape)."""
        if not self._gauges:
            return
        for (gauge, shown), counts in zip(
            self._gauges, (Tally(self._running()), self._queued()), strict=True
        ):
            for host in shown - set(counts):
                gauge.labels(host).set(0)
            for host, count in counts.items():
                gauge.labels(host).set(count)
            shown |= set(counts)

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
        # The labelled series of each (method, route, code) are looked up once, not at every
        # request: the lookup cost a status request as much as reading its job.
        key = (method, route, code)
        series = self._answered.get(key)
        if series is None:
            series = self._answered[key] = (
                self._requests.labels(method, route, str(code)),
                self._latency.labels(method, route),
            )
        series[0].inc()
        series[1].observe(seconds)
