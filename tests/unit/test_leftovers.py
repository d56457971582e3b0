"""A starting instance removes what earlier runs left, never what another live instance's
run has just made (several workers start together, and one may already run a job while
another is still starting). A real job store, a real Docker Engine, real files."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import pytest

from process_api.hosts import build_hosts
from process_api.hosts.docker import LABEL_INSTANCE, LABEL_JOB, LABEL_PROCESS, container_name
from process_api.jobs import lifecycle
from process_api.jobs.instances import new_instance
from process_api.jobs.model import Job, JobStatus
from process_api.jobs.running import JobRunner
from process_api.processes.registry import Process
from process_api.settings import Settings
from process_api.storage import build_storage
from process_api.store.sql import SqlJobStore
from tests.images import busybox_image
from tests.unit.test_instances import LEASE
from tests.unit.test_job_store import make_job

REASON = "the server instance that had it stopped or restarted"


async def _no_process(_job: Job) -> Process | None:
    return None


@pytest.fixture
def engine(docker_engine: None) -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


class Leftovers:
    """What a run leaves on this machine: its container and its inputs file."""

    def __init__(self, client: docker.DockerClient, settings: Settings, runner: JobRunner):
        self.client = client
        self.settings = settings
        self.runner = runner
        self.image = busybox_image()
        self.made: list[str] = []

    def make(self, job_id: str) -> None:
        """As a host does for a run, before it records the run's handle."""
        self.client.containers.create(
            self.image,
            ["sleep", "60"],
            name=container_name(job_id),
            labels={
                LABEL_JOB: job_id,
                LABEL_PROCESS: "echo",
                LABEL_INSTANCE: self.settings.instance,
            },
            network_mode="none",
        )
        self.made.append(job_id)
        inputs = self.runner.workspace.inputs_file(job_id)
        inputs.parent.mkdir(parents=True, exist_ok=True)
        inputs.write_text("{}")

    def left(self, job_id: str) -> tuple[bool, bool]:
        """Whether its container, and its inputs file, are still there."""
        try:
            self.client.containers.get(container_name(job_id))
            container = True
        except docker.errors.NotFound:
            container = False
        return container, self.runner.workspace.inputs_file(job_id).exists()

    def remove(self) -> None:
        for job_id in self.made:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.api.remove_container(container_name(job_id), force=True)


@pytest.fixture
async def leftovers(
    engine: docker.DockerClient, store: SqlJobStore, tmp_path: Path
) -> AsyncIterator[Leftovers]:
    settings = Settings(DATA_DIR=tmp_path / "data", INSTANCE_ID=f"test-{tmp_path.name}")
    hosts = build_hosts(settings)
    storage = build_storage(settings)
    runner = JobRunner(store, storage, hosts, settings.data_dir / "spool")
    made = Leftovers(engine, settings, runner)
    yield made
    made.remove()
    for host in set(hosts.values()):
        await host.close()
    await storage.close()


async def test_a_starting_instance_leaves_the_container_of_a_run_whose_handle_is_not_recorded_yet(
    leftovers: Leftovers, store: SqlJobStore
) -> None:
    live = new_instance(LEASE)
    await store.register(live)
    await store.create(make_job("starting", host_type="docker", owner=live.id))
    leftovers.make("starting")
    await store.create(
        make_job("ended", host_type="docker", owner=live.id, status=JobStatus.FAILED)
    )
    leftovers.make("ended")

    await lifecycle.settle(leftovers.runner, _no_process, [], REASON)

    assert leftovers.left("starting") == (True, True)
    assert leftovers.left("ended") == (False, False)  # what ended jobs left still goes


async def test_a_starting_instance_leaves_what_a_run_begun_meanwhile_made(
    leftovers: Leftovers, store: SqlJobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = new_instance(LEASE)
    await store.register(live)
    read_active = store.active

    async def active_then_accepted() -> list:  # type: ignore[type-arg]
        # Another instance accepts a job and makes its run's container and inputs file
        # just after this one read the active jobs: a stand-in for the moment two
        # processes interleave, which cannot be made to happen on demand.
        found = await read_active()
        if not leftovers.made:
            await store.create(make_job("meanwhile", host_type="docker", owner=live.id))
            leftovers.make("meanwhile")
        return found

    monkeypatch.setattr(store, "active", active_then_accepted)
    await lifecycle.settle(leftovers.runner, _no_process, [], REASON)

    assert leftovers.left("meanwhile") == (True, True)
