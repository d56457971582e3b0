"""The Host port: an execution platform that runs one job of a process.

A host runs a job to the end in `run`, reporting through `HostEvents`; the job
service cancels the awaiting task to stop a job (dismiss, timeout, shutdown),
and the host's `run` must then stop what it started (process group, container,
Batch job) before re-raising.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Set
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from process_api.errors import PayloadTooLarge
from process_api.jobs.budget import Resources
from process_api.processes.config import ProcessConfig
from process_api.processes.problems import ConfigProblem
from process_api.processes.registry import Process

Stream = Literal["stdout", "stderr"]
#: the ids of the jobs whose leftovers stay (those of active jobs), read when called.
Keep = Callable[[], Awaitable[Set[str]]]


@dataclass(frozen=True)
class JobRun:
    """What a host needs to run one job."""

    job_id: str
    process: Process
    #: the execute request's inputs, as the process's last argument and its inputs file.
    inputs_json: str
    #: the job context the process sees in its environment.
    env: dict[str, str] = field(default_factory=dict)
    results_dir: Path | None = None
    #: the inputs file on this machine (PROCESS_API_INPUTS_FILE), for hosts that can give
    #: the process a file; written before the run starts, removed once its end is recorded.
    inputs_file: Path | None = None
    #: the storage key of the inputs, for hosts that cannot (PROCESS_API_INPUTS_URI).
    inputs_key: str | None = None
    #: where that key is (an s3:// URI, or a path of this machine).
    inputs_uri: str | None = None
    #: set when the server stops following a run that goes on (see Host.detachable).
    detach: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def arguments(self) -> list[str]:
        """What follows the command: the inputs JSON, unless the process takes them only
        as its inputs file (`inputsAs: file`)."""
        return [self.inputs_json] if self.process.config.inputsAs == "argument" else []


@dataclass(frozen=True)
class HostOutcome:
    """How a run ended: an exit code, or an error that kept it from running."""

    exit_code: int | None
    error: str | None = None


class RunLost(Exception):
    """A run recorded as active cannot be followed any more (e.g. after a restart)."""


class HostEvents(Protocol):
    async def submitted(self, handle: dict[str, Any]) -> None:
        """The platform took the job (it is still waiting there); the handle finds it again."""

    async def started(self, handle: dict[str, Any]) -> None:
        """The run has started; the handle lets the host find it again (and is provenance)."""

    def output(self, stream: Stream, line: str, time: datetime | None = None) -> None:
        """One line the process printed, at `time` if the platform recorded it."""


class Host(Protocol):
    #: runs go on when the server stops, and are followed again when it starts (Batch).
    detachable: bool
    #: the process cannot be given a file of this machine: its inputs go to storage (Batch).
    inputs_in_storage: bool

    def check(self, config: ProcessConfig, directory: Path) -> list[ConfigProblem]:
        """What does not fit this host in a process file (errors and warnings) whose commands
        run in `directory` (the file's folder): its own `host:` fields, the container fields it uses, cheap look-ups (a program on
        the PATH, an image on the engine). When other parts of the file are broken,
        `config` holds only `host` and `container` (the keys of them that are valid)."""

    async def ready(self) -> None:
        """Raises ServiceUnavailable if the platform cannot take a job now."""

    def admit(self, run: JobRun) -> None:
        """Raises an ApiError (e.g. PayloadTooLarge) for a run the platform would refuse."""

    def capacity(self) -> Resources | None:
        """What this host's jobs may use together; None for no budget."""

    def resources(self, process: Process) -> Resources | None:
        """What one job of the process counts for against the capacity."""

    async def budget_name(self) -> str | None:
        """The name of the budget the capacity is kept in, the same for every server
        instance whose jobs use the same resources (one Docker Engine, one machine); None
        while it cannot be known (an engine that does not answer): no job is claimed."""

    async def run(self, run: JobRun, events: HostEvents) -> HostOutcome:
        """Runs the job to its end; on cancellation stops it, then re-raises."""

    async def reattach(
        self, run: JobRun, handle: dict[str, Any], events: HostEvents
    ) -> HostOutcome:
        """Follows a run started before a restart to its end, or raises RunLost."""

    async def release(self, job_id: str) -> None:
        """Removes what the job's run left (its stopped container) once its end is recorded:
        a crash before the record finds the run again and concludes it rightly."""

    async def prune(self, keep: Keep) -> None:
        """Removes what earlier runs of this server left behind, except for the jobs `keep`
        gives. It is asked after the leftovers are listed: a job is recorded before its run
        leaves anything, so that a run another instance begins meanwhile is never taken
        for a leftover."""

    async def stop(self, job_id: str, handle: dict[str, Any]) -> None:
        """Stops a run nobody follows, found by its handle (a job dismissed while the
        instance that ran it was dead); it may have ended already."""

    async def close(self) -> None: ...


class HostBase:
    """Defaults for hosts without a budget, readiness check or leftovers."""

    detachable = False
    inputs_in_storage = False

    async def ready(self) -> None:
        return None

    def admit(self, run: JobRun) -> None:
        return None

    def capacity(self) -> Resources | None:
        return None

    def resources(self, process: Process) -> Resources | None:
        return None

    async def budget_name(self) -> str | None:
        return ""  # without a capacity, a job counts in no budget

    async def release(self, job_id: str) -> None:
        return None

    async def prune(self, keep: Keep) -> None:
        return None

    async def stop(self, job_id: str, handle: dict[str, Any]) -> None:
        return None

    async def close(self) -> None:
        return None


#: Linux's limit on one argument of a command (MAX_ARG_STRLEN), with its closing NUL.
MAX_ARGUMENT = 131072
#: what a refusal for size tells the client to do instead.
LARGE_INPUTS_REMEDY = (
    'give large inputs by reference ({"href": …}), or set `inputsAs: file` in the process file'
)


def admit_argument(run: JobRun, host: str) -> None:
    """Raises PayloadTooLarge when the inputs JSON, the command's last argument, is longer
    than Linux lets one argument be: the run would only fail late, "Argument list too long".
    A process that takes its inputs only as a file has no such limit.
    """
    size = sum(len(argument.encode()) for argument in run.arguments)
    if size >= MAX_ARGUMENT:
        raise PayloadTooLarge(
            f"the inputs are too large for the {host} host: as the command's last argument "
            f"they take {size} bytes, and Linux allows at most {MAX_ARGUMENT - 1} bytes in one "
            f"argument; {LARGE_INPUTS_REMEDY}"
        )
