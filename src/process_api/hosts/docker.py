"""The `docker` host (`local` in the Go server's files): each job is a container.

The image runs with the process's command plus the inputs JSON as its last
argument (appended to the image's entrypoint; none with `inputsAs: file`), the
inputs file mounted read-only at INPUTS_MOUNT, hardened by default (no
privileges, no new privileges, every capability dropped unless asked for and
only those of Docker's default set, no network, a bounded number of processes,
no swap beyond the memory limit) and limited to the process's maxResources.
Containers carry labels naming the job, the process and this server instance,
which is how a restarted server finds the containers it left behind. A container
that ended by itself stays until its job's end is recorded (`release`): a crash
in between finds it again and concludes the job from it. The Docker SDK blocks,
so every call runs in this host's own thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import tarfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container
from docker.models.images import Image
from docker.utils import parse_repository_tag
from pydantic import BaseModel, ConfigDict, ValidationError

from process_api.asyncs import despite_cancellation
from process_api.errors import ServiceUnavailable
from process_api.hosts.base import (
    HostBase,
    HostEvents,
    HostOutcome,
    JobRun,
    Keep,
    RunLost,
    Stream,
    admit_argument,
)
from process_api.hosts.docker_files import (
    INPUTS_MODE,
    INPUTS_SHARED_MODE,
    RESULTS_MODE,
    RESULTS_SHARED_MODE,
    Ids,
    SecretFiles,
    file_of_archive,
    hand_over,
    resolve_user,
    user_problem,
)
from process_api.hosts.docker_log import Batches, LineSplitter, Resume, masker
from process_api.jobs.budget import Resources
from process_api.processes.config import ProcessConfig, PullPolicy
from process_api.processes.problems import ConfigProblem, pydantic_problems
from process_api.processes.registry import Process

log = logging.getLogger(__name__)

LABEL_JOB = "process-api.job"
LABEL_PROCESS = "process-api.process"
LABEL_INSTANCE = "process-api.instance"
#: where the job's results directory appears inside the container.
RESULTS_MOUNT = "/results"
#: where the job's secrets appear inside the container, one file each (Docker's convention).
SECRETS_MOUNT = "/run/secrets"
#: where the job's inputs file appears inside the container (PROCESS_API_INPUTS_FILE).
INPUTS_MOUNT = "/run/process-api/inputs.json"
#: Docker's default capability set: what a process file may keep (the setting adds more).
DEFAULT_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "NET_RAW",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
#: a network's name (`container:<id>` and the like, which join another's, are not one).
NETWORK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: how long output is still waited for after the container exits, when none comes.
OUTPUT_DRAIN = 5.0
#: how long a successful engine check is trusted.
READY_TTL = 3.0

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
    #: the most processes one container may run; a process may ask for fewer.
    pids_limit: int = 1024
    allow_host_network: bool = False
    #: capabilities allowed beyond DEFAULT_CAPABILITIES.
    extra_capabilities: frozenset[str] = frozenset()
    #: a tmpfs directory for the secrets files.
    secrets_dir: Path = Path("/dev/shm/process-api-secrets")


class DockerHostConfig(BaseModel):
    """The `host:` section of a docker (or local) process file."""

    model_config = ConfigDict(extra="forbid")
    type: str
    #: the Go server's host fields, which its files may carry whatever the type.
    jobDefinition: str | None = None
    jobQueue: str | None = None


IGNORED_HOST_FIELD = "ignored: only the aws-batch host uses it"
#: seconds the engine gets to answer the checks of process files.
CHECK_TIMEOUT = 10


class _CannotStart(Exception):
    """The job cannot start: its image or a secret is missing."""


def capability_name(name: str) -> str:
    """Docker's spelling of a capability: CHOWN for cap_chown, CAP_CHOWN or chown."""
    upper = name.strip().upper()
    return upper[4:] if upper.startswith("CAP_") else upper


def container_name(job_id: str) -> str:
    return f"process-api-{job_id}"


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
        self._engine_id: str | None = None
        self._engine_id_asked = -READY_TTL
        self._secret_files = SecretFiles(options.secrets_dir, options.instance)
        #: the engine did not answer a check of a process file: no more checks ask it.
        self._engine_down_at_check = False

    # -- configuration ---------------------------------------------------------

    def check(self, config: ProcessConfig, directory: Path) -> list[ConfigProblem]:
        fields = config.host.model_dump()
        problems = [
            ConfigProblem(f"host.{name}", IGNORED_HOST_FIELD, warning=True)
            for name in ("jobDefinition", "jobQueue")
            if fields.get(name)
        ]
        try:
            DockerHostConfig.model_validate(fields)
        except ValidationError as exc:
            problems += pydantic_problems(exc, DockerHostConfig, ("host",))
        container = config.container
        if container is None or not container.image:
            return [*problems, ConfigProblem("container.image", "a docker process needs an image")]
        if container.network is not None:
            problems += self._network_problems(container.network)
        allowed = DEFAULT_CAPABILITIES | self.options.extra_capabilities
        problems += [
            ConfigProblem(
                "container.capabilities",
                f"capability {capability!r} is not allowed: only Docker's default set"
                " and those of the server's DOCKER_ALLOWED_CAPABILITIES setting",
            )
            for capability in container.capabilities
            if capability_name(capability) not in allowed
        ]
        if container.user is not None:
            problem = user_problem(container.user)
            if problem:
                problems.append(ConfigProblem("container.user", f"{container.user!r}: {problem}"))
        pids = container.maxResources.pids if container.maxResources else None
        if pids is not None and pids > self.options.pids_limit:
            problems.append(
                ConfigProblem(
                    "container.maxResources.pids",
                    f"{pids} is more than the server's DOCKER_PIDS_LIMIT of {self.options.pids_limit}",
                )
            )
        if (container.pullPolicy or self.options.pull_policy) == "never":
            problems += self._local_image_problems(container.image)
        return problems

    def _network_problems(self, network: str) -> list[ConfigProblem]:
        if network == "host" and not self.options.allow_host_network:
            why = "the host network is not allowed: the server's DOCKER_ALLOW_HOST_NETWORK setting is off"
            return [ConfigProblem("container.network", why)]
        if not NETWORK_NAME.match(network):
            why = f"{network!r} is not none, bridge, host or a network's name"
            return [ConfigProblem("container.network", why)]
        return []

    def _local_image_problems(self, image: str) -> list[ConfigProblem]:
        """An image that is not on the engine, and will never be pulled, can never run.
        Only said when the engine answers: with the engine down the server starts anyway."""
        if self._engine_down_at_check:
            return []
        try:
            client = docker.DockerClient.from_env(
                environment=self.options.environment, timeout=CHECK_TIMEOUT
            )
        except (DockerException, *_UNREACHABLE):
            self._engine_down_at_check = True
            return []
        try:
            client.images.get(image)
        except ImageNotFound:
            why = f"image {image!r} is not on the Docker Engine and the pull policy is never"
            return [ConfigProblem("container.image", why)]
        except (DockerException, *_UNREACHABLE):
            self._engine_down_at_check = True
        finally:
            client.close()
        return []

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

    async def budget_name(self) -> str | None:
        """The engine's own id: instances that reach one engine (by whatever address) share
        its budget. While the engine does not answer, it is asked again every READY_TTL."""
        if self._engine_id is None:
            if time.monotonic() < self._engine_id_asked + READY_TTL:
                return None
            self._engine_id_asked = time.monotonic()
            try:
                client = await self._engine()
                info = await self._call(client.info)
            except (DockerException, *_UNREACHABLE):
                return None
            self._engine_id = str(info.get("ID") or "")
        return f"docker:{self._engine_id}"

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
        self._secret_files.tidy()
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
        """The container, with its secrets written (for this server's eyes only until
        `_hand_over` gives them to the container's user)."""
        process = run.process
        container = process.config.container
        assert container is not None
        need = self.resources(process)
        memory = f"{int(need.memory)}m"
        wanted_pids = container.maxResources.pids if container.maxResources else None
        env = self.options.server_env(container.envVars)
        volumes: dict[str, dict[str, str]] = {}
        secrets = self._secrets(run)
        if secrets:
            try:
                directory = self._secret_files.write(run.job_id, secrets)
            except OSError as exc:
                raise _CannotStart(f"cannot write the job's secrets: {exc}") from None
            volumes[str(directory)] = {"bind": SECRETS_MOUNT, "mode": "ro"}
            env.update({f"{name}_FILE": f"{SECRETS_MOUNT}/{name}" for name in secrets})
        env.update(run.env)
        if run.results_dir is not None:
            volumes[str(run.results_dir)] = {"bind": RESULTS_MOUNT, "mode": "rw"}
            env["PROCESS_API_RESULTS_DIR"] = RESULTS_MOUNT
        if run.inputs_file is not None:
            volumes[str(run.inputs_file)] = {"bind": INPUTS_MOUNT, "mode": "ro"}
            env["PROCESS_API_INPUTS_FILE"] = INPUTS_MOUNT
        return client.containers.create(
            image,
            command=[*container.command, *run.arguments],
            name=container_name(run.job_id),
            environment=env,
            labels={
                LABEL_JOB: run.job_id,
                LABEL_PROCESS: process.id,
                LABEL_INSTANCE: self.options.instance,
            },
            network_mode=container.network or self.options.network,
            nano_cpus=int(need.cpus * 1e9),
            mem_limit=memory,
            memswap_limit=memory,  # no swap beyond the memory limit
            pids_limit=wanted_pids or self.options.pids_limit,
            privileged=False,
            security_opt=["no-new-privileges"],
            cap_drop=["ALL"],
            cap_add=[capability_name(c) for c in container.capabilities] or None,
            user=container.user,
            init=True,
            volumes=volumes,
        )

    def _hand_over(self, container: Container, run: JobRun, image: Image) -> str | None:
        """Gives the results directory, the inputs file and the secrets to the user the container runs as;
        says what was chosen when that user cannot be known."""
        config = run.process.config.container
        user = (
            (config.user if config else None) or (image.attrs.get("Config") or {}).get("User") or ""
        )

        def read(path: str) -> bytes | None:
            try:
                chunks, _ = container.get_archive(path)
                return file_of_archive(b"".join(chunks), path)
            except (NotFound, APIError, tarfile.TarError):
                return None

        ids: Ids | None = resolve_user(user, read)
        notice = None
        if ids is None:
            ids = (0, 0)
            notice = (
                f"[process-api: user {user!r} is not in the image's /etc/passwd or /etc/group:"
                " the results directory and the secrets belong to root]"
            )
            log.warning("job %s: %s", run.job_id, notice)
        if run.results_dir is not None:
            hand_over(run.results_dir, ids, RESULTS_MODE, RESULTS_SHARED_MODE)
        if run.inputs_file is not None:
            hand_over(run.inputs_file, ids, INPUTS_MODE, INPUTS_SHARED_MODE)
        self._secret_files.hand_over(run.job_id, ids)
        return notice

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
                await despite_cancellation(self._discard_created(run.job_id, creating))
                raise
        except _CannotStart as exc:
            await despite_cancellation(self._remove_secrets(run.job_id))
            return HostOutcome(None, str(exc))
        except (DockerException, *_UNREACHABLE) as exc:
            await despite_cancellation(self._remove_secrets(run.job_id))
            return HostOutcome(
                None, f"the Docker Engine could not create the container: {_reason(exc)}"
            )
        ended = False
        try:
            notice = await self._call(self._hand_over, container, run, image)
            try:
                await self._call(container.start)
            except APIError as exc:
                return HostOutcome(
                    None, f"the Docker Engine could not start the container: {_reason(exc)}"
                )
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
            if notice:
                events.output("stderr", notice)
            outcome = await self._follow(container, run, events)
            ended = True
            return outcome
        except (DockerException, *_UNREACHABLE) as exc:
            return HostOutcome(None, f"lost contact with the Docker Engine: {_reason(exc)}")
        except OSError as exc:  # the results directory, inputs or secrets could not be handed over
            return HostOutcome(None, f"cannot prepare the container's files: {exc}")
        finally:  # also on cancellation (dismissed, timed out, shut down), not after its end
            if not ended and not run.detach.is_set():  # detached: another instance follows it
                await despite_cancellation(self._discard(run.job_id, container))

    async def reattach(
        self, run: JobRun, handle: dict[str, Any], events: HostEvents
    ) -> HostOutcome:
        container_id = handle.get("container")
        if not isinstance(container_id, str):
            raise RunLost(
                "the server instance that ran the job stopped or restarted, and the job's "
                "container is unknown"
            )
        try:
            client = await self._engine()
            container = await self._call(client.containers.get, container_id)
        except NotFound:
            await self._remove_secrets(run.job_id)
            raise RunLost(
                "the server instance that ran the job stopped or restarted, and the job's "
                "container is gone"
            ) from None
        except (DockerException, *_UNREACHABLE) as exc:
            raise RunLost(
                "the server instance that ran the job stopped or restarted, and the container "
                f"cannot be reached: {_reason(exc)}"
            ) from None
        except asyncio.CancelledError:  # dismissed, or out of time, before it was found
            await despite_cancellation(self.release(run.job_id))
            raise
        ended = False
        try:
            # An exited container (the server died before recording its end) answers at once.
            outcome = await self._follow(container, run, events)
            ended = True
            return outcome
        except (DockerException, *_UNREACHABLE) as exc:
            return HostOutcome(None, f"lost contact with the Docker Engine: {_reason(exc)}")
        finally:
            if not ended and not run.detach.is_set():
                await despite_cancellation(self._discard(run.job_id, container))

    async def _follow(self, container: Container, run: JobRun, events: HostEvents) -> HostOutcome:
        """Streams the container's whole log into the job's log and waits for its exit."""
        loop = asyncio.get_running_loop()
        mask = masker(self._secrets_or_none(run))

        def emit(stream: str, stamp: bytes, line: bytes) -> None:
            when = _docker_time(stamp.decode(errors="replace"))
            events.output("stderr" if stream == "stderr" else "stdout", mask(_text(line)), when)

        batches = Batches(loop, emit)

        def pump(stream: Stream) -> None:
            client = self._new_client()
            try:
                source = client.containers.get(str(container.id))
                which = {"stdout": stream == "stdout", "stderr": stream == "stderr"}
                lines, resume = LineSplitter(), Resume()
                for frame in source.logs(**which, stream=True, follow=True, timestamps=True):
                    resume.seen(frame)
                    for stamp, line in lines.feed(frame):
                        batches.put(stream, stamp, line)
                # The engine may end a follow early when the container stops: read the rest.
                rest = source.logs(**which, stream=True, timestamps=True, since=resume.since())
                for frame in resume.skip(rest):
                    for stamp, line in lines.feed(frame):
                        batches.put(stream, stamp, line)
                for stamp, line in lines.end():
                    batches.put(stream, stamp, line)
            except NotFound:  # removed: the job was stopped
                pass
            finally:
                client.close()

        try:
            pumps = [loop.run_in_executor(self._following, pump, s) for s in ("stdout", "stderr")]
            waiting = functools.partial(container.wait, timeout=None)
            result = await loop.run_in_executor(self._following, waiting)
            await _drain(pumps, batches)
        finally:
            batches.close()  # the lines read so far reach the log; a stuck reader is let go
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

    async def _remove_secrets(self, job_id: str) -> None:
        try:
            await self._call(self._secret_files.remove, job_id)
        except OSError as exc:
            log.warning("job %s: cannot remove its secrets: %s", job_id, exc)

    async def _discard(self, job_id: str, container: Container) -> None:
        """What a run that is stopped (or failed) leaves: its container and its secrets."""
        await self._remove(container)
        await self._remove_secrets(job_id)

    async def _discard_created(self, job_id: str, creating: asyncio.Future[Container]) -> None:
        try:
            container = await creating
        except Exception:  # it was never created
            await self._remove_secrets(job_id)
            return
        await self._discard(job_id, container)

    async def release(self, job_id: str) -> None:
        """Removes the job's container (stopped by now) and its secrets, by the container's
        name: the job's end is recorded, nothing needs them any more."""
        with contextlib.suppress(DockerException, *_UNREACHABLE):
            client = await self._engine()
            await self._call(client.api.remove_container, container_name(job_id), force=True)
        await self._remove_secrets(job_id)

    async def stop(self, job_id: str, handle: dict[str, Any]) -> None:
        """Removes the job's container (found by its name, as `release` does) and secrets."""
        await self.release(job_id)

    async def prune(self, keep: Keep) -> None:
        secrets = await self._call(self._secret_files.jobs)
        try:
            client = await self._engine()
            found = await self._call(
                client.containers.list,
                all=True,
                filters={"label": f"{LABEL_INSTANCE}={self.options.instance}"},
            )
        except (DockerException, *_UNREACHABLE) as exc:
            log.warning("the Docker Engine is unreachable: %s", _reason(exc))
            found = None
        kept = await keep()
        for job_id in secrets:
            if job_id not in kept:
                await self._remove_secrets(job_id)
        for container in found or []:
            if container.labels.get(LABEL_JOB) not in kept:
                log.info("removing container %s left by an earlier run", container.name)
                await self._remove(container)


async def _drain(pumps: list[asyncio.Future[None]], batches: Batches) -> None:
    """Waits for the rest of the log after the exit, as long as it keeps coming (or waits
    for the loop): a long log takes its time, a stream the engine never ends is given up
    after OUTPUT_DRAIN."""
    while True:
        received = batches.received
        _, pending = await asyncio.wait(pumps, timeout=OUTPUT_DRAIN)
        if not pending or (batches.received == received and not batches.queued):
            break
    for pump in pumps:
        failure = pump.exception() if pump.done() else None
        if failure is not None:
            log.warning("reading a container's log failed: %s", _reason(failure))
    if pending:
        log.warning("a container's log was cut: none came for %s s", OUTPUT_DRAIN)


def _text(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r")


def _docker_time(stamp: str) -> datetime | None:
    """The engine's RFC 3339 timestamp with nanoseconds, to microseconds."""
    try:
        head, _, fraction = stamp.rstrip("Z").partition(".")
        return datetime.fromisoformat(f"{head}.{fraction[:6].ljust(6, '0')}+00:00")
    except ValueError:
        return None
