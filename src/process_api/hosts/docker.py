"""The `docker` host (`local` in the Go server's files): each job is a container.

The image runs with the process's command plus the inputs JSON as its last
argument (appended to the image's entrypoint), hardened by default (no
privileges, no new privileges, every capability dropped unless asked for) and
limited to the process's maxResources. Containers carry labels naming the job,
the process and this server instance, which is how a restarted server finds
the containers it left behind. The Docker SDK blocks, so every call runs in
this host's own thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Set
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container
from docker.models.images import Image
from docker.utils import parse_repository_tag

from process_api.asyncs import despite_cancellation
from process_api.errors import ServiceUnavailable
from process_api.hosts.base import (
    HostBase,
    HostEvents,
    HostOutcome,
    JobRun,
    RunLost,
    Stream,
    admit_argument,
)
from process_api.jobs.budget import Resources
from process_api.processes.config import ProcessConfig, PullPolicy
from process_api.processes.loader import HostConfigError
from process_api.processes.registry import Process

log = logging.getLogger(__name__)

LABEL_JOB = "process-api.job"
LABEL_PROCESS = "process-api.process"
LABEL_INSTANCE = "process-api.instance"
#: where the job's results directory appears inside the container.
RESULTS_MOUNT = "/results"
#: how long output is still read after the container exits.
OUTPUT_DRAIN = 5.0
#: how long a successful engine check is trusted.
READY_TTL = 3.0
#: what a secret value becomes in the job's log.
REDACTED = "********"

T = TypeVar("T")

#: the engine's errors that mean it cannot be reached.
_UNREACHABLE = (requests.exceptions.ConnectionError, requests.exceptions.Timeout)


@dataclass(frozen=True)
class DockerOptions:
    """The server-wide settings of the docker host."""

    environment: dict[str, str]
    instance: str
    network: str
    pull_policy: PullPolicy
    default_resources: Resources
    capacity: Resources
    #: looks up server environment variables by name (container.envVars).
    server_env: Callable[[list[str]], dict[str, str]]
    #: looks up secret values by name (container.secrets).
    secrets: Callable[[list[str]], dict[str, str]]


class _CannotStart(Exception):
    """The job cannot start: its image or a secret is missing."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, APIError) and exc.explanation:
        return str(exc.explanation)
    return str(exc) or type(exc).__name__


class DockerHost(HostBase):
    def __init__(self, options: DockerOptions) -> None:
        self.options = options
        # Following a container blocks a thread for its whole run (its wait and two log
        # streams); every other call is short and gets threads of its own, so a dismiss or
        # a timeout never queues behind running containers.
        self._following = ThreadPoolExecutor(max_workers=768, thread_name_prefix="docker-follow")
        self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="docker")
        self._client: docker.DockerClient | None = None
        self._ready_until = 0.0

    # -- configuration ---------------------------------------------------------

    def check(self, config: ProcessConfig) -> None:
        if config.container is None or not config.container.image:
            raise HostConfigError("container.image", "a docker process needs an image")

    def capacity(self) -> Resources:
        return self.options.capacity

    def resources(self, process: Process) -> Resources:
        default = self.options.default_resources
        wanted = process.config.container.maxResources if process.config.container else None
        if wanted is None:
            return default
        return Resources(wanted.cpus or default.cpus, wanted.memory or default.memory)

    def admit(self, run: JobRun) -> None:
        admit_argument(run, "docker")

    # -- engine ----------------------------------------------------------------

    async def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(function, *args, **kwargs)
        )

    def _new_client(self) -> docker.DockerClient:
        return docker.DockerClient.from_env(environment=self.options.environment)

    async def _engine(self) -> docker.DockerClient:
        if self._client is None:
            self._client = await self._call(self._new_client)
        return self._client

    async def ready(self) -> None:
        if time.monotonic() < self._ready_until:
            return
        try:
            client = await self._engine()
            await self._call(client.ping)
        except (DockerException, *_UNREACHABLE) as exc:
            raise ServiceUnavailable(f"the Docker Engine is unreachable: {_reason(exc)}") from None
        self._ready_until = time.monotonic() + READY_TTL

    async def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._call(self._client.close)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._following.shutdown(wait=False, cancel_futures=True)

    # -- runs ------------------------------------------------------------------

    def _image(self, client: docker.DockerClient, reference: str, policy: PullPolicy) -> Image:
        """The image, pulled as the policy says; _CannotStart names the image and the reason."""
        if policy != "always":
            try:
                return client.images.get(reference)
            except ImageNotFound:
                if policy == "never":
                    raise _CannotStart(
                        f"image {reference!r} is not on the Docker Engine and the pull policy is never"
                    ) from None
        repository, tag = parse_repository_tag(reference)
        try:
            return client.images.pull(repository, tag=tag or "latest")
        except (APIError, ImageNotFound) as exc:
            raise _CannotStart(f"cannot pull image {reference!r}: {_reason(exc)}") from None

    def _create(self, client: docker.DockerClient, run: JobRun, image: Image) -> Container:
        process = run.process
        container = process.config.container
        assert container is not None
        need = self.resources(process)
        env = {**self.options.server_env(container.envVars), **self._secrets(run)}
        env.update(run.env)
        volumes: dict[str, dict[str, str]] = {}
        if run.results_dir is not None:
            run.results_dir.chmod(0o777)  # the image's user may not be root
            volumes[str(run.results_dir)] = {"bind": RESULTS_MOUNT, "mode": "rw"}
            env["PROCESS_API_RESULTS_DIR"] = RESULTS_MOUNT
        return client.containers.create(
            image,
            command=[*container.command, run.inputs_json],
            name=f"process-api-{run.job_id}",
            environment=env,
            labels={
                LABEL_JOB: run.job_id,
                LABEL_PROCESS: process.id,
                LABEL_INSTANCE: self.options.instance,
            },
            network_mode=container.network or self.options.network,
            nano_cpus=int(need.cpus * 1e9),
            mem_limit=f"{int(need.memory)}m",
            privileged=False,
            security_opt=["no-new-privileges"],
            cap_drop=["ALL"],
            cap_add=container.capabilities or None,
            user=container.user,
            init=True,
            volumes=volumes,
        )

    def _secrets(self, run: JobRun) -> dict[str, str]:
        container = run.process.config.container
        names = container.secrets if container else []
        values = self.options.secrets(names)
        missing = [name for name in names if name not in values]
        if missing:
            raise _CannotStart(f"secret(s) {missing} are not set on the server")
        return values

    async def run(self, run: JobRun, events: HostEvents) -> HostOutcome:
        container_config = run.process.config.container
        assert container_config is not None
        reference = container_config.image
        policy = container_config.pullPolicy or self.options.pull_policy
        try:
            client = await self._engine()
            image = await self._call(self._image, client, reference, policy)
            creating = asyncio.ensure_future(self._call(self._create, client, run, image))
            try:
                container = await asyncio.shield(creating)
            except asyncio.CancelledError:  # it exists all the same: remove it
                await despite_cancellation(self._remove(await despite_cancellation(creating)))
                raise
        except _CannotStart as exc:
            return HostOutcome(None, str(exc))
        except (DockerException, *_UNREACHABLE) as exc:
            return HostOutcome(
                None, f"the Docker Engine could not create the container: {_reason(exc)}"
            )
        try:
            await self._call(container.start)
            digests = image.attrs.get("RepoDigests") or []
            await events.started(
                {
                    "container": container.id,
                    "image": reference,
                    "imageId": image.id,
                    "imageDigest": digests[0] if digests else None,
                    "command": container_config.command,
                }
            )
            return await self._follow(container, run, events)
        except (DockerException, *_UNREACHABLE) as exc:
            return HostOutcome(None, f"lost contact with the Docker Engine: {_reason(exc)}")
        finally:  # also on cancellation: dismissed, timed out, shut down
            await self._remove(container)

    async def reattach(
        self, run: JobRun, handle: dict[str, Any], events: HostEvents
    ) -> HostOutcome:
        container_id = handle.get("container")
        if not isinstance(container_id, str):
            raise RunLost("the server restarted and the job's container is unknown")
        try:
            client = await self._engine()
            container = await self._call(client.containers.get, container_id)
        except NotFound:
            raise RunLost("the server restarted and the job's container is gone") from None
        except (DockerException, *_UNREACHABLE) as exc:
            raise RunLost(
                f"the server restarted and cannot reach the container: {_reason(exc)}"
            ) from None
        except asyncio.CancelledError:  # dismissed, or out of time, before it was found
            await self._remove_id(container_id)
            raise
        try:
            return await self._follow(container, run, events)
        except (DockerException, *_UNREACHABLE) as exc:
            return HostOutcome(None, f"lost contact with the Docker Engine: {_reason(exc)}")
        finally:
            await self._remove(container)

    async def _follow(self, container: Container, run: JobRun, events: HostEvents) -> HostOutcome:
        """Streams the container's whole log into the job's log and waits for its exit."""
        loop = asyncio.get_running_loop()
        secrets = [v for v in self._secrets_or_none(run) if len(v) >= 4]

        def emit(stream: Stream, stamp: bytes, line: bytes) -> None:
            text = _text(line)
            for secret in secrets:
                text = text.replace(secret, REDACTED)
            events.output(stream, text, _docker_time(stamp.decode(errors="replace")))

        def pump(stream: Stream) -> None:
            client = self._new_client()
            try:
                source = client.containers.get(str(container.id))
                frames = source.logs(
                    stdout=stream == "stdout",
                    stderr=stream == "stderr",
                    stream=True,
                    follow=True,
                    timestamps=True,
                )
                # Each frame is "<timestamp> <text>"; the engine cuts lines over 16 KiB into
                # several frames, each with its own timestamp: a line is kept whole.
                pending, first_stamp = b"", b""
                for frame in frames:
                    stamp, _, text = frame.partition(b" ")
                    first_stamp = first_stamp or stamp
                    pending += text
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        loop.call_soon_threadsafe(emit, stream, first_stamp, line)
                        first_stamp = stamp if pending else b""
                if pending:
                    loop.call_soon_threadsafe(emit, stream, first_stamp, pending)
            finally:
                client.close()

        pumps = [loop.run_in_executor(self._following, pump, s) for s in ("stdout", "stderr")]
        waiting = functools.partial(container.wait, timeout=None)
        result = await loop.run_in_executor(self._following, waiting)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*pumps, return_exceptions=True), OUTPUT_DRAIN)
        await asyncio.sleep(0)  # let the last lines scheduled by the pumps reach the log
        status: dict[str, Any] = dict(result)
        error = (status.get("Error") or {}).get("Message")
        if error:
            return HostOutcome(None, f"the container failed: {error}")
        return HostOutcome(int(status.get("StatusCode", -1)))

    def _secrets_or_none(self, run: JobRun) -> list[str]:
        with contextlib.suppress(_CannotStart):
            return list(self._secrets(run).values())
        return []

    async def _remove(self, container: Container) -> None:
        """Kills and removes the container; it may be gone already."""
        with contextlib.suppress(DockerException, *_UNREACHABLE):
            await self._call(container.remove, force=True)

    async def _remove_id(self, container_id: str) -> None:
        with contextlib.suppress(DockerException, *_UNREACHABLE):
            client = await self._engine()
            await self._call(client.api.remove_container, container_id, force=True)

    async def prune(self, keep: Set[str]) -> None:
        try:
            client = await self._engine()
            found = await self._call(
                client.containers.list,
                all=True,
                filters={"label": f"{LABEL_INSTANCE}={self.options.instance}"},
            )
        except (DockerException, *_UNREACHABLE) as exc:
            log.warning("the Docker Engine is unreachable: %s", _reason(exc))
            return
        for container in found:
            if container.labels.get(LABEL_JOB) not in keep:
                log.info("removing container %s left by an earlier run", container.name)
                await self._remove(container)


def _text(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r")


def _docker_time(stamp: str) -> datetime | None:
    """The engine's RFC 3339 timestamp with nanoseconds, to microseconds."""
    try:
        head, _, fraction = stamp.rstrip("Z").partition(".")
        return datetime.fromisoformat(f"{head}.{fraction[:6].ljust(6, '0')}+00:00")
    except ValueError:
        return None
