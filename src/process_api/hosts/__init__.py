"""Execution platforms, by the `host.type` names process files use."""

from __future__ import annotations

from process_api.hosts.base import Host
from process_api.hosts.subprocess import SubprocessHost
from process_api.hosts.unavailable import UnavailableHost
from process_api.processes.loader import HostChecks
from process_api.settings import Settings


def build_hosts(settings: Settings) -> dict[str, Host]:
    """Every host type a process file may name, ready to run (or to refuse with a reason)."""
    docker = UnavailableHost("the docker host (host.type: docker or local) is not available yet")
    batch = UnavailableHost("the aws-batch host is not available yet")
    return {
        "aws-batch": batch,
        "docker": docker,
        "local": docker,
        "subprocess": SubprocessHost(
            settings.server_variables(settings.job_env_passthrough), settings.server_variables
        ),
    }


def host_checks(hosts: dict[str, Host]) -> HostChecks:
    return {name: host.check for name, host in hosts.items()}
