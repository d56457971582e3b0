"""Execution platforms, by the `host.type` names process files use."""

from __future__ import annotations

import os

from process_api.aws import aws_client
from process_api.hosts.aws_batch import BatchHost
from process_api.hosts.base import Host
from process_api.hosts.docker import DockerHost, DockerOptions, capability_name
from process_api.hosts.subprocess import SubprocessHost
from process_api.jobs.budget import Resources
from process_api.processes.loader import HostChecks
from process_api.settings import Settings


def machine_resources() -> Resources:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    return Resources(float(os.cpu_count() or 1), memory)


def build_hosts(settings: Settings) -> dict[str, Host]:
    """Every host type a process file may name, ready to run (or to refuse with a reason)."""
    machine = machine_resources()
    docker = DockerHost(
        DockerOptions(
            environment=settings.docker_environment(),
            instance=settings.instance,
            network=settings.docker_network,
            pull_policy=settings.docker_pull_policy,
            default_resources=Resources(
                settings.docker_default_cpus, settings.docker_default_memory
            ),
            capacity=Resources(
                settings.local_cpus or machine.cpus,
                settings.local_memory or machine.memory,
                settings.docker_max_jobs,
            ),
            server_env=settings.server_variables,
            secrets=settings.secret_values,
            pids_limit=settings.docker_pids_limit,
            allow_host_network=settings.docker_allow_host_network,
            extra_capabilities=frozenset(
                capability_name(name)
                for name in settings.docker_allowed_capabilities.split(",")
                if name.strip()
            ),
            secrets_dir=settings.docker_secrets_dir,
        )
    )
    batch = BatchHost(
        batch=lambda: aws_client(settings, "batch"),
        logs=lambda: aws_client(settings, "logs"),
        log_group=settings.batch_log_group,
        poll_interval=settings.batch_poll_interval,
        configured=settings.aws_region is not None,
        server_env=settings.server_variables,
        max_jobs=settings.batch_max_jobs,
    )
    return {
        "aws-batch": batch,
        "docker": docker,
        "local": docker,
        "subprocess": SubprocessHost(
            settings.server_variables(settings.job_env_passthrough),
            settings.server_variables,
            settings.subprocess_max_jobs,
        ),
    }


def host_checks(hosts: dict[str, Host]) -> HostChecks:
    return {name: host.check for name, host in hosts.items()}
