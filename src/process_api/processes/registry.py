"""Loaded processes and the immutable registry that serves them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from process_api.errors import NoSuchProcess
from process_api.processes.config import ProcessConfig
from process_api.processes.schemas import schema_of


@dataclass(frozen=True, eq=False)
class Process:
    """A process as the server runs it: its file (or its stored version, if it was deployed
    over the API), and the schemas derived from it."""

    config: ProcessConfig
    #: its file; None for a process deployed over the API.
    source: Path | None
    #: where its commands run (subprocess host): its file's folder, or for a deployed
    #: process the processes directory.
    directory: Path
    input_schemas: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    output_schemas: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    #: the stored version of a deployed process (see store.ProcessVersion); None for a file's.
    revision: int | None = None

    @classmethod
    def from_config(
        cls,
        config: ProcessConfig,
        source: Path | None,
        directory: Path | None = None,
        revision: int | None = None,
    ) -> Process:
        folder = directory if directory is not None else source.parent if source else Path()
        return cls(
            config=config,
            source=source,
            directory=folder,
            input_schemas={i.id: schema_of(i) for i in config.inputs},
            output_schemas={o.id: schema_of(o) for o in config.outputs},
            revision=revision,
        )

    @property
    def mutable(self) -> bool:
        """Deployed over the API: it may be replaced and undeployed over the API too."""
        return self.revision is not None

    @property
    def id(self) -> str:
        return self.config.info.id

    @property
    def version(self) -> str:
        return self.config.info.version

    @property
    def host_type(self) -> str:
        return self.config.host.type

    @property
    def allows_sync(self) -> bool:
        return "sync-execute" in self.config.info.jobControlOptions

    @property
    def allows_async(self) -> bool:
        return "async-execute" in self.config.info.jobControlOptions


class ProcessRegistry(Mapping[str, Process]):
    """Processes by id, in id order; never changed once built."""

    def __init__(self, processes: list[Process] | tuple[Process, ...] = ()) -> None:
        self._by_id = {p.id: p for p in sorted(processes, key=lambda p: p.id.lower())}

    def __getitem__(self, process_id: str) -> Process:
        return self._by_id[process_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def require(self, process_id: str) -> Process:
        """The process, or the OGC no-such-process error."""
        try:
            return self._by_id[process_id]
        except KeyError:
            raise NoSuchProcess(f"process {process_id!r} is not registered") from None
