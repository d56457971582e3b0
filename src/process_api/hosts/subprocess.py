"""The `subprocess` host: the process's command runs on the API machine, no container.

For trusted, fast processes and for testing. Each job runs in its own process
group, so that dismissing it also stops whatever its command started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from process_api.asyncs import despite_cancellation
from process_api.hosts.base import (
    HostBase,
    HostEvents,
    HostOutcome,
    JobRun,
    RunLost,
    Stream,
    admit_argument,
)
from process_api.hosts.spawn import Spawned, spawn
from process_api.jobs.budget import Resources, jobs_only
from process_api.machine import process_started, this_machine
from process_api.processes.config import ProcessConfig
from process_api.processes.problems import ConfigProblem, pydantic_problems
from process_api.processes.registry import Process

#: the longest line a process may print (a large plugin_results line, say).
MAX_LINE = 64 * 1024 * 1024
#: lines read in a row before other work of the server gets its turn.
YIELD_EVERY = 64
#: how long a process group gets between SIGTERM and SIGKILL.
TERMINATE_GRACE = 3.0
#: how long output may stall after the command exits before it is cut (a process that
#: left the job's group holds the pipes), and the longest it is read after the exit.
OUTPUT_DRAIN = 2.0
OUTPUT_DRAIN_MAX = 60.0


class SubprocessHostConfig(BaseModel):
    """The `host:` section of a subprocess process file."""

    model_config = ConfigDict(extra="forbid")
    type: str
    command: list[str] = Field(min_length=1)
    #: names of server environment variables the process may see.
    envVars: list[str] = []


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class SubprocessHost(HostBase):
    def __init__(
        self,
        base_env: Mapping[str, str],
        server_env: Callable[[list[str]], dict[str, str]],
        max_jobs: int,
    ) -> None:
        """`base_env`: variables every job gets (PATH, …); `server_env` looks up envVars;
        `max_jobs`: processes that may run at once (the others wait their turn)."""
        self._base_env = dict(base_env)
        self._server_env = server_env
        self._capacity = jobs_only(max_jobs)

    def capacity(self) -> Resources:
        return self._capacity

    async def budget_name(self) -> str:
        return f"subprocess:{this_machine()}"

    def resources(self, process: Process) -> Resources:
        return Resources(0.0, 0.0)

    def check(self, config: ProcessConfig, directory: Path) -> list[ConfigProblem]:
        try:
            host = SubprocessHostConfig.model_validate(config.host.model_dump())
        except ValidationError as exc:
            return pydantic_problems(exc, SubprocessHostConfig, ("host",))
        return self._program_problems(host.command[0], directory)

    def _program_problems(self, program: str, directory: Path) -> list[ConfigProblem]:
        """A warning if the command's program will not be found when a job starts: it runs
        in the process file's directory, and a bare name is looked up on the job's PATH."""
        if "/" in program:
            path = directory / program
            if not path.is_file():
                why = f"program {program!r} is not a file (relative to {directory})"
            elif not os.access(path, os.X_OK):
                why = f"program {program!r} is not executable"
            else:
                return []
        elif shutil.which(program, path=self._base_env.get("PATH", os.defpath)) is None:
            why = f"program {program!r} is not on the PATH"
            if (directory / program).is_file():
                why += f"; write ./{program} to run the file beside the process file"
        else:
            return []
        return [ConfigProblem("host.command", why, warning=True)]

    def admit(self, run: JobRun) -> None:
        admit_argument(run, "subprocess")

    def _config(self, run: JobRun) -> SubprocessHostConfig:
        return SubprocessHostConfig.model_validate(run.process.config.host.model_dump())

    async def run(self, run: JobRun, events: HostEvents) -> HostOutcome:
        config = self._config(run)
        env = {**self._base_env, **self._server_env(config.envVars), **run.env}
        try:
            proc = await spawn(
                [*config.command, *run.arguments], run.process.directory, env, MAX_LINE
            )
        except OSError as exc:
            return HostOutcome(None, f"cannot start {config.command[0]!r}: {exc.strerror or exc}")
        output = _Output(proc, events)
        try:
            handle = {
                "pid": proc.pid,
                "start": process_started(proc.pid),
                "command": config.command,
            }
            await events.started(handle)
            code = await proc.wait()
        except BaseException:  # dismissed, timed out, shut down, or the job store failed
            # A second cancellation (a timeout during a dismiss) must not leave it half-stopped.
            await despite_cancellation(_stop(proc, output, events))
            raise
        await despite_cancellation(_end(proc, output, events))
        return HostOutcome(code)

    async def reattach(
        self, run: JobRun, handle: dict[str, Any], events: HostEvents
    ) -> HostOutcome:
        # A process whose parent died cannot be followed (its pipes are gone): stop it.
        await self.stop(run.job_id, handle)
        raise RunLost(
            "the server instance that ran the job stopped or restarted while it was running; "
            "its process was stopped"
        )

    async def stop(self, job_id: str, handle: dict[str, Any]) -> None:
        """Kills the process group, if the pid still names the job's process (its start
        time tells it apart from a later process given the same pid)."""
        pid = handle.get("pid")
        if isinstance(pid, int) and handle.get("start") == process_started(pid):
            _kill_group(pid, signal.SIGKILL)


class _Output:
    """The readers of a process's stdout and stderr, and how many lines they have read."""

    def __init__(self, proc: Spawned, events: HostEvents) -> None:
        self.proc = proc
        self.lines = 0
        self.done = asyncio.gather(
            self._pump(proc.stdout, "stdout", events), self._pump(proc.stderr, "stderr", events)
        )

    async def _pump(self, reader: asyncio.StreamReader, stream: Stream, events: HostEvents) -> None:
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # a line over MAX_LINE: keep what fits, go on
                line = await reader.read(MAX_LINE)
            if not line:
                return
            events.output(stream, line.decode("utf-8", errors="replace").rstrip("\r\n"))
            self.lines += 1
            if self.lines % YIELD_EVERY == 0:
                # readline does not wait while whole lines are buffered: let requests in.
                await asyncio.sleep(0)

    async def ended(self) -> bool:
        """Waits for the end of the output while lines keep coming (a long log still being
        read); False once it stalls for OUTPUT_DRAIN seconds, or after OUTPUT_DRAIN_MAX."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + OUTPUT_DRAIN_MAX
        while True:
            seen = self.lines
            try:
                await asyncio.wait_for(asyncio.shield(self.done), OUTPUT_DRAIN)
                return True
            except TimeoutError:
                if self.lines == seen or loop.time() > deadline:
                    return False
            except Exception:
                return True

    async def drain(self, events: HostEvents) -> None:
        """The rest of the output; a process outside the group (setsid) may hold the pipes
        open for ever, so its output is cut rather than the job held."""
        if await self.ended():
            return
        self.done.cancel()
        await asyncio.gather(self.done, return_exceptions=True)
        self.proc.close_output()
        events.output("stderr", "[process-api: output cut: a process left the job's group]")


async def _stop(proc: Spawned, output: _Output, events: HostEvents) -> None:
    await _terminate(proc)
    await output.drain(events)


async def _end(proc: Spawned, output: _Output, events: HostEvents) -> None:
    """After the command exited: children left in the group may hold the pipes open, and
    they end with the job."""
    await output.ended()
    _kill_group(proc.pid, signal.SIGKILL)
    await output.drain(events)


async def _terminate(proc: Spawned) -> None:
    """SIGTERM to the whole group, SIGKILL after a grace period."""
    _kill_group(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), TERMINATE_GRACE)
    except TimeoutError:
        pass
    _kill_group(proc.pid, signal.SIGKILL)
    await proc.wait()
