"""Host types this server knows but cannot run here: files load, execution answers 501."""

from __future__ import annotations

from typing import Any

from process_api.errors import NotSupported
from process_api.hosts.base import HostBase, HostEvents, HostOutcome, JobRun, RunLost
from process_api.processes.config import ProcessConfig


class UnavailableHost(HostBase):
    """Accepts any file of its type; refuses to run it, with the reason."""

    available = False

    def __init__(self, reason: str) -> None:
        self.unavailable_reason = reason

    def check(self, config: ProcessConfig) -> None:
        return None

    async def run(self, run: JobRun, events: HostEvents) -> HostOutcome:
        raise NotSupported(self.unavailable_reason)

    async def reattach(
        self, run: JobRun, handle: dict[str, Any], events: HostEvents
    ) -> HostOutcome:
        raise RunLost(self.unavailable_reason)
