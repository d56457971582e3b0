"""The processes a server serves now: those of its processes directory and those deployed.

Files are read at start and again when they change (see reload.py); deployed processes
live in the job store (see deployment.py), where every instance finds them. A lookup of
one process asks the store for the current version of a deployed id, so that a deploy,
replace or undeploy made through any instance holds at once for describe and execute;
the list is the view of the last refresh (every REFRESH_INTERVAL). A job runs the
version it was accepted for: a file's process as it is when the job starts, a deployed
process's stored version (its revision), whatever was deployed since.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from pydantic import ValidationError

from process_api.asyncs import Outage
from process_api.jobs.model import Job
from process_api.processes.config import ProcessConfig
from process_api.processes.registry import Process, ProcessRegistry
from process_api.store.base import JobStore, JobSummary, ProcessVersion

log = logging.getLogger(__name__)

#: seconds between two reads of which processes are deployed (for the process list).
REFRESH_INTERVAL = 1.0
#: how many stored versions are kept built in memory.
KEPT_VERSIONS = 256


class Catalog(Mapping[str, Process]):
    """Processes by id, in id order, as last known: a Mapping over a snapshot that is swapped
    whole, never changed in place, so that a request iterating it sees one state."""

    def __init__(
        self, files: Sequence[Process], directory: Path, store: JobStore | None = None
    ) -> None:
        """`directory`: where deployed processes' commands run (the processes directory);
        `store`: where deployed processes are kept (None: only files are served)."""
        self.directory = directory
        self.store = store
        self._files = {p.id: p for p in files}
        self._deployed: dict[str, Process] = {}
        self._versions: OrderedDict[tuple[str, int], Process] = OrderedDict()
        self._snapshot = ProcessRegistry(list(files))
        #: counts the changes of the deployed processes made here (a refresh that read the
        #: store before one of them is left out).
        self._changes = 0
        #: counts the changes of what is served (the API document is made again after one).
        self.generation = 0

    # -- the current view --------------------------------------------------------------

    def __getitem__(self, process_id: str) -> Process:
        return self._snapshot[process_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._snapshot)

    def __len__(self) -> int:
        return len(self._snapshot)

    @property
    def files(self) -> Mapping[str, Process]:
        """The processes of the processes directory, by id."""
        return dict(self._files)

    @property
    def file_ids(self) -> frozenset[str]:
        """The ids of the processes of the processes directory."""
        return frozenset(self._files)

    @property
    def deployed_ids(self) -> frozenset[str]:
        """The ids of the processes deployed over the API, as last known."""
        return frozenset(self._deployed)

    def _rebuild(self) -> None:
        # A file's process and a deployed one never share an id (deploy refuses it); should
        # a file appear with a deployed id, the deployed one keeps it (see reload.py).
        merged = {**self._files, **self._deployed}
        self._snapshot = ProcessRegistry(list(merged.values()))
        self.generation += 1

    def set_files(self, processes: Sequence[Process]) -> None:
        self._files = {p.id: p for p in processes}
        self._rebuild()

    def set_deployed(self, process: Process) -> None:
        """A process this instance has just deployed or replaced."""
        assert process.revision is not None
        self._keep(process)
        self._deployed[process.id] = process
        self._changes += 1
        self._rebuild()

    def drop_deployed(self, process_id: str) -> None:
        """A process this instance has just undeployed."""
        if self._deployed.pop(process_id, None) is not None:
            self._changes += 1
            self._rebuild()

    # -- lookups that see every instance's deploys at once -----------------------------

    async def current(self, process_id: str) -> Process | None:
        """The process of that id now: a file's, or the current version of a deployed one."""
        found = self._files.get(process_id)
        if found is not None and process_id not in self._deployed:
            return found
        if self.store is None:
            return None
        stored = await self.store.process_version(process_id, None)
        if stored is None or stored.document is None:
            self.drop_deployed(process_id)
            return found
        known = self._deployed.get(process_id)
        if known is not None and known.revision == stored.revision:
            return known
        process = self._built(stored)
        if process is not None:
            self.set_deployed(process)
        return process

    async def version(self, process_id: str, revision: int) -> Process | None:
        """A stored version of a deployed process, current or not (jobs keep theirs)."""
        kept = self._versions.get((process_id, revision))
        if kept is not None:
            self._versions.move_to_end((process_id, revision))
            return kept
        if self.store is None:
            return None
        stored = await self.store.process_version(process_id, revision)
        if stored is None or stored.document is None:
            return None
        return self._built(stored)

    def known_of_job(self, job: Job | JobSummary) -> Process | None:
        """The process of a job without asking the store: None for a stored version no longer
        kept in memory (of the KEPT_VERSIONS last used)."""
        if job.process_revision is not None:
            return self._versions.get((job.process_id, job.process_revision))
        return self._files.get(job.process_id)

    async def of_job(self, job: Job | JobSummary) -> Process | None:
        """The process a job runs (or ran): its stored version, or its file's process now."""
        if job.process_revision is not None:
            return await self.version(job.process_id, job.process_revision)
        return self._files.get(job.process_id)

    def _built(self, stored: ProcessVersion) -> Process | None:
        key = (stored.id, stored.revision)
        if key in self._versions:
            return self._versions[key]
        try:
            config = ProcessConfig.model_validate(stored.document)
        except ValidationError as exc:  # stored by a server whose format this one lacks
            log.error(
                "deployed process %s (version %d) cannot be read, and is not served: %s",
                stored.id,
                stored.revision,
                exc,
            )
            return None
        process = Process.from_config(config, None, self.directory, stored.revision)
        self._keep(process)
        return process

    def _keep(self, process: Process) -> None:
        assert process.revision is not None
        self._versions[(process.id, process.revision)] = process
        self._versions.move_to_end((process.id, process.revision))
        while len(self._versions) > KEPT_VERSIONS:
            self._versions.popitem(last=False)

    # -- keeping the list fresh --------------------------------------------------------

    async def refresh(self) -> None:
        """Reads which processes are deployed now, and builds those not known yet."""
        if self.store is None:
            return
        changes = self._changes
        revisions = await self.store.deployed_processes()
        deployed: dict[str, Process] = {}
        for process_id, revision in revisions.items():
            known = self._deployed.get(process_id)
            if known is not None and known.revision == revision:
                deployed[process_id] = known
                continue
            process = await self.version(process_id, revision)
            if process is not None:
                deployed[process_id] = process
        changed = deployed.keys() != self._deployed.keys() or any(
            deployed[i] is not self._deployed[i] for i in deployed
        )
        if changed and changes == self._changes:  # else the next refresh reads them anew
            self._deployed = deployed
            self._rebuild()

    async def refresh_periodically(self) -> None:
        outage = Outage("reading the deployed processes", log)
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # the store may be away a while: the view stays
                outage.failed(exc)
            else:
                outage.passed()
            await asyncio.sleep(REFRESH_INTERVAL)
