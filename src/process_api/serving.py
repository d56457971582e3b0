"""Running the server: one process, or a supervisor and worker processes on one port.

One process (the default) is uvicorn's server in the process that was started. With
`--workers N` that process becomes a supervisor (uvicorn's Multiprocess): it binds the
port once and starts N worker processes that accept on it, each running the whole app
with its own store connections and hosts, and its own instance among those of the job
store; it starts a new worker when one dies. Workers share nothing in memory: what one
accepted, another answers for through the job store, and the jobs a dead worker ran
are taken over by a live one (jobs/instances.py). The process files were loaded and
checked once, by the supervisor, and are handed to each worker as they were loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import pickle
import shutil
import signal
import socket
import time
from pathlib import Path
from types import FrameType

import uvicorn
from fastapi import FastAPI
from prometheus_client.multiprocess import mark_process_dead
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess
from uvicorn.supervisors.multiprocess import Process as UvicornWorker

from process_api import server_log
from process_api.app import create_app
from process_api.hosts import build_hosts
from process_api.jobs.service import JobService
from process_api.processes.registry import Process
from process_api.settings import Settings

log = logging.getLogger("process_api")

#: seconds a worker has to answer the supervisor's check that it lives, else it is killed and
#: replaced. It answers from a thread of its own, so only a process stuck as a whole fails;
#: uvicorn's 5 s is too short for a worker still importing the app on a loaded machine.
WORKER_HEALTHCHECK = 30
#: seconds before a worker that could not start (beside others that serve) is tried again.
RESTART_DELAY = 5.0
#: seconds between two looks, while a worker is asked whether it lives, at whether it died.
HEALTHCHECK_STEP = 0.2
#: prctl's option for the signal a process gets when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1
#: the environment variable prometheus-client reads, at import, for multi-process mode.
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


class JobsServer(uvicorn.Server):
    """Dismisses the running jobs as soon as a stop signal arrives.

    Without this, uvicorn would first wait for open synchronous requests, which
    wait for their jobs, before the app's shutdown could stop those jobs.
    """

    def __init__(self, config: uvicorn.Config, jobs: JobService | None = None) -> None:
        super().__init__(config)
        self._jobs = jobs
        self._stopping: asyncio.Task[None] | None = None

    def jobs(self) -> JobService | None:
        return self._jobs

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        jobs = self.jobs()
        if jobs is not None:
            jobs.begin_shutdown()
            asyncio.get_event_loop().call_soon_threadsafe(self._stop_jobs, jobs)
        super().handle_exit(sig, frame)
        # uvicorn would raise the signal again once stopped; a clean stop exits with 0.
        self._captured_signals.clear()

    def _stop_jobs(self, jobs: JobService) -> None:
        if self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_task(jobs.shutdown())


#: the job service of this worker process, once its app is built.
_worker_jobs: JobService | None = None


class WorkerApp:
    """Builds the app in a worker process; the supervisor hands it to each worker."""

    def __init__(self, settings: Settings, processes: list[Process], metrics_dir: Path) -> None:
        self.settings = settings
        self.processes = processes
        self.metrics_dir = metrics_dir

    def __call__(self) -> FastAPI:
        global _worker_jobs
        server_log.configure(self.settings.log_level, self.settings.log_format)
        log.info("worker process %d starting", os.getpid())
        hosts = build_hosts(self.settings)
        app = create_app(self.settings, self.processes, hosts, self.metrics_dir, os.getppid())
        _worker_jobs = app.state.jobs
        return app


class _WorkerServer(JobsServer):
    def jobs(self) -> JobService | None:
        return _worker_jobs

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Ctrl-C in a terminal reaches the workers too (the whole process group) besides
        # the supervisor's SIGTERM: a second signal must not make uvicorn skip the
        # shutdown that records the running jobs.
        super().handle_exit(signal.SIGTERM, frame)


def _stop_with_supervisor(supervisor: int) -> None:
    """Asks Linux for a SIGTERM when the supervisor dies (it was killed): a worker stops
    then, as at a stop signal, instead of serving on without anyone to replace it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the worker outlives a killed supervisor
        return
    if os.getppid() != supervisor:  # it died before the request
        os.kill(os.getpid(), signal.SIGTERM)


class _Worker(UvicornWorker):
    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets)
        self.supervisor = os.getpid()

    def target(self, sockets: list[socket.socket] | None = None) -> None:
        _stop_with_supervisor(self.supervisor)
        # Until its app handles it (a reload), a SIGHUP must not end the worker.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        super().target(sockets)

    def _healthcheck(self, timeout: float) -> bool | None:
        """uvicorn's check that the worker answers, except that a worker that dies while it
        is asked (killed, or its app failed to start) ends the wait at once: else the
        supervisor waits the whole WORKER_HEALTHCHECK before it replaces the worker."""
        try:
            self.parent_conn.send(b"ping")
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                if self.parent_conn.poll(min(HEALTHCHECK_STEP, left)):
                    started: bool = self.parent_conn.recv()
                    return started
                if not self.process.is_alive():
                    return None
            return None
        except (OSError, EOFError, pickle.UnpicklingError):
            return None

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = _WorkerServer(config=self.config)
        return self._server


class _Supervisor(Multiprocess):
    """uvicorn's supervisor, with workers that stop their jobs as the single process does;
    a worker that dies is replaced and forgotten by the metrics."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket], metrics: Path):
        super().__init__(config, sockets)
        self.metrics_dir = metrics
        #: no worker could start (the job store is away, …): the server does not start.
        self.failed = False
        #: when to try again to start a worker that could not (by its place in the list).
        self._retry_at: dict[int, float] = {}

    def _start_worker(self) -> _Worker:
        worker = _Worker(self.config, self.sockets)
        worker.start()
        return worker

    def init_processes(self) -> None:
        for _ in range(self.processes_num):
            self.processes.append(self._start_worker())

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        for index, worker in enumerate(self.processes):
            if index in self._retry_at:
                if time.monotonic() < self._retry_at[index]:
                    continue
                del self._retry_at[index]
                self.processes[index] = self._start_worker()
                continue
            if worker.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            worker.kill()  # it hangs, or it is gone already
            worker.join()
            if worker.pid is not None:
                mark_process_dead(worker.pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]
            if worker.exitcode == STARTUP_FAILURE:
                # Its app could not start (the job store is away, …); the worker's log says
                # why. While another worker serves, it is tried again later; with none, the
                # server stops: every new worker would fail alike.
                if not self._serving(besides=index):
                    log.error("not starting: worker process %s could not start", worker.pid)
                    self.failed = True
                    self.should_exit.set()
                    return
                log.error(
                    "worker process %s could not start; trying again in %g s",
                    worker.pid,
                    RESTART_DELAY,
                )
                self._retry_at[index] = time.monotonic() + RESTART_DELAY
                continue
            if self.should_exit.is_set():
                return
            log.warning(
                "worker process %s ended (exit code %s); starting another; its jobs are "
                "taken over by the live workers",
                worker.pid,
                worker.exitcode,
            )
            self.processes[index] = self._start_worker()

    def _serving(self, besides: int) -> bool:
        return any(
            w.process.is_alive()
            for i, w in enumerate(self.processes)
            if i != besides and i not in self._retry_at
        )

    def _unsupported(self, what: str) -> None:
        log.warning("%s is not supported: restart the server to change its workers", what)

    def handle_hup(self) -> None:
        """Each worker reads the processes directory again (their jobs go on)."""
        log.info("SIGHUP: the workers read the processes directory again")
        for worker in self.processes:
            if worker.pid is not None and worker.process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGHUP)

    def handle_ttin(self) -> None:
        self._unsupported("SIGTTIN (one worker more)")

    def handle_ttou(self) -> None:
        self._unsupported("SIGTTOU (one worker less)")


def metrics_dir(data_dir: Path) -> Path:
    """An empty directory for this supervisor's workers' metrics. Those of supervisors that
    are gone are removed (a restart must not count the workers of the last run twice)."""
    parent = data_dir / "metrics"
    if parent.is_dir():
        for old in parent.iterdir():
            if not (old.name.isdigit() and _alive(int(old.name))):
                shutil.rmtree(old, ignore_errors=True)
    mine = parent / str(os.getpid())
    shutil.rmtree(mine, ignore_errors=True)
    mine.mkdir(parents=True)
    return mine


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_workers(config: uvicorn.Config, settings: Settings, processes: list[Process]) -> int:
    """Serves with `settings.workers` worker processes until a stop signal; the exit code."""
    shared = metrics_dir(settings.data_dir)
    # Read by prometheus-client when a worker imports it: its values go to files there.
    os.environ[METRICS_DIR_VARIABLE] = str(shared)
    config.app = WorkerApp(settings, processes, shared)
    config.factory = True
    config.workers = settings.workers
    config.timeout_worker_healthcheck = WORKER_HEALTHCHECK
    sock = config.bind_socket()
    supervisor = _Supervisor(config, [sock], shared)
    try:
        supervisor.run()
    finally:
        sock.close()
        shutil.rmtree(shared, ignore_errors=True)
    return 1 if supervisor.failed else 0
