"""Deploying, replacing and undeploying processes over the API (OGC API - Processes Part 2).

What is deployed is checked exactly as a process file is (`process-api validate`),
then kept in the job store as the next version of its id: a replace keeps the
versions before it, an undeploy adds a mark. Jobs record the version they run,
so those accepted before a replace or an undeploy finish under theirs.
Processes of the processes directory are not mutable: their files say what they are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from process_api.errors import (
    DuplicatedProcess,
    Forbidden,
    ImmutableProcess,
    InvalidPackage,
    NoSuchProcess,
    UnsupportedPackage,
)
from process_api.jobs.model import utcnow
from process_api.processes.catalog import Catalog
from process_api.processes.loader import HostChecks, check_document
from process_api.processes.package import from_package
from process_api.processes.problems import LoadProblem
from process_api.processes.registry import Process
from process_api.processes.yaml_source import parse_yaml
from process_api.store.base import JobStore, ProcessVersion

log = logging.getLogger(__name__)

PACKAGE = "application/ogcapppkg+json"
#: the media types of a process file: YAML, and its JSON form.
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
JSON = "application/json"
MEDIA_TYPES = (PACKAGE, "application/yaml", JSON)
#: how the body is named in the problems of what was sent.
BODY = Path("request body")


@dataclass(frozen=True)
class Candidate:
    """A process sent to be deployed, checked: what will be served, and what was sent."""

    process: Process
    package: str
    media_type: str
    #: a field of the process file -> its place in what was sent.
    place: Callable[[str], str]


def _essence(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _check_text(document: Any) -> None:
    """Refuses text that UTF-8 cannot hold (a lone surrogate, from a JSON or YAML escape):
    stored, it would break every answer that shows the process."""
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPackage(
            "the process holds an escape of a lone UTF-16 surrogate (such as \\ud800), "
            "which is not text"
        ) from None
    except ValueError as exc:  # a YAML alias that refers to itself: a circular reference
        raise RecursionError from exc


def _problem_text(problem: LoadProblem, place: Callable[[str], str]) -> str:
    where = place(problem.field) if problem.field else ""
    if problem.line is not None:
        where += f" (line {problem.line}" + (
            f", column {problem.column})" if problem.column is not None else ")"
        )
    return f"{where.strip()}: {problem.message}" if where else problem.message


class Deployment:
    def __init__(
        self,
        store: JobStore,
        catalog: Catalog,
        host_checks: HostChecks,
        deployable_hosts: Collection[str],
        shared_variables: Collection[str] = (),
    ) -> None:
        """`deployable_hosts`: the host types processes deployed over the API may name;
        `shared_variables`: the server variables and secrets they may be given."""
        self.store = store
        self.catalog = catalog
        self.host_checks = host_checks
        self.deployable_hosts = frozenset(deployable_hosts)
        self.shared_variables = frozenset(shared_variables)

    # -- reading what is sent ----------------------------------------------------------

    def candidate(self, body: bytes, content_type: str | None) -> Candidate:
        """What was sent as a process to serve: 415 for another media type, checked first;
        400 naming each field that is wrong; 403 for a host type not deployable here, or for
        server variables or secrets it may not have. Blocks (parsing, the hosts' look-ups of
        images and job definitions): call it in a thread."""
        essence = _essence(content_type)
        if essence != PACKAGE and essence not in YAML_TYPES and essence != JSON:
            sent = f"{essence!r}" if essence else "no Content-Type"
            raise UnsupportedPackage(
                f"a process to deploy is an OGC application package ({PACKAGE}) or a process "
                f"file (application/yaml, or its JSON form as {JSON}), not {sent}"
            )
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidPackage("the request body is not UTF-8 text") from None
        if not text.strip():
            raise InvalidPackage("the request body is empty: send the process to deploy")
        try:
            document, root, place = self._document(text, essence)
            _check_text(document)
            parsed = check_document(document, root, BODY, self.catalog.directory, self.host_checks)
        except RecursionError:
            raise InvalidPackage(
                "the request body nests too deeply, or a YAML alias refers to itself"
            ) from None
        errors = [p for p in parsed.problems if not p.warning]
        if errors or parsed.process is None:
            details = "; ".join(_problem_text(p, place) for p in errors)
            raise InvalidPackage(f"the process is not valid: {details}")
        process = parsed.process
        if process.host_type not in self.deployable_hosts:
            allowed = ", ".join(sorted(self.deployable_hosts)) or "none"
            raise Forbidden(
                f"{place('host.type')}: processes of host type {process.host_type!r} cannot be "
                f"deployed over the API on this server (DEPLOY_HOSTS: {allowed})"
            )
        self._check_variables(process, place)
        return Candidate(process, text, essence, place)

    def _check_variables(self, process: Process, place: Callable[[str], str]) -> None:
        """A deployer chooses the image: it gets none of the server's variables or secrets
        but those DEPLOY_ENV_VARS names."""
        container = process.config.container
        named = {
            "container.envVars": container.envVars if container else [],
            "container.secrets": container.secrets if container else [],
            "host.envVars": process.config.host.model_dump().get("envVars") or [],
        }
        for field, names in named.items():
            refused = sorted(set(names) - self.shared_variables)
            if refused:
                raise Forbidden(
                    f"{place(field)}: a deployed process may not be given {refused}: only the "
                    "server variables and secrets DEPLOY_ENV_VARS names"
                )

    def _document(
        self, text: str, essence: str
    ) -> tuple[dict[str, Any], Any, Callable[[str], str]]:
        """The process file sent (or that a package stands for), its YAML node tree (for
        lines) and how its fields are named in what was sent."""
        if essence in (PACKAGE, JSON):
            try:
                sent = json.loads(text)
            except ValueError as exc:
                raise InvalidPackage(f"the request body is not valid JSON: {exc}") from None
            if essence == PACKAGE or (isinstance(sent, dict) and "executionUnit" in sent):
                converted = from_package(sent)
                return converted.document, None, converted.place
            if not isinstance(sent, dict):
                raise InvalidPackage(
                    "the request body must be a process file: an object with info and host"
                )
            return sent, None, str
        read = parse_yaml(text, BODY)
        if isinstance(read, LoadProblem):
            raise InvalidPackage(_problem_text(read, str))
        root, document = read
        if not isinstance(document, dict):
            raise InvalidPackage(
                "the request body must be a process file: a mapping with info and host"
            )
        return document, root, str

    async def package(self, process: Process) -> tuple[bytes, str]:
        """What was deployed, as it was sent, and its media type; a file's process: its file
        as it is now."""
        if process.source is not None:
            try:
                return await asyncio.to_thread(process.source.read_bytes), "application/yaml"
            except OSError:
                raise NoSuchProcess(f"the file of process {process.id!r} is gone") from None
        assert process.revision is not None
        stored = await self.store.process_version(process.id, process.revision)
        if stored is None or stored.package is None or stored.media_type is None:
            raise NoSuchProcess(f"process {process.id!r} has no package")
        return stored.package.encode(), stored.media_type

    # -- changing what is served ---------------------------------------------------------

    def _version(self, candidate: Candidate, user: str | None) -> ProcessVersion:
        process = candidate.process
        return ProcessVersion(
            id=process.id,
            revision=0,  # the store gives the next of the id
            version=process.version,
            document=process.config.model_dump(mode="json", by_alias=True, exclude_unset=True),
            package=candidate.package,
            media_type=candidate.media_type,
            deployed=utcnow(),
            deployed_by=user,
        )

    def _check_mutable(self, process_id: str) -> None:
        """A file's process may not be changed over the API (a deployed one of the same id,
        served instead of the file, may)."""
        if process_id in self.catalog.file_ids and process_id not in self.catalog.deployed_ids:
            raise ImmutableProcess(
                f"process {process_id!r} comes from a file of the processes directory: change "
                "the file instead (the server reloads it)"
            )

    def _served(self, candidate: Candidate, revision: int) -> Process:
        process = dataclasses.replace(candidate.process, source=None, revision=revision)
        self.catalog.set_deployed(process)
        return process

    async def deploy(self, candidate: Candidate, user: str | None) -> Process:
        process_id = candidate.process.id
        if process_id in self.catalog.file_ids:
            raise DuplicatedProcess(
                f"process {process_id!r} exists: a file of the processes directory has that id"
            )
        revision = await self.store.add_process_version(self._version(candidate, user), False)
        if revision is None:
            raise DuplicatedProcess(
                f"process {process_id!r} is deployed already: replace it with PUT "
                f"/processes/{process_id}, or give this one another id"
            )
        log.info("process %s deployed (version %d) by %s", process_id, revision, user or "-")
        return self._served(candidate, revision)

    async def replace(self, process_id: str, candidate: Candidate, user: str | None) -> Process:
        self._check_mutable(process_id)
        if candidate.process.id != process_id:
            raise InvalidPackage(
                f"{candidate.place('info.id')}: {candidate.process.id!r} is not the id of the "
                f"process replaced, {process_id!r}"
            )
        revision = await self.store.add_process_version(self._version(candidate, user), True)
        if revision is None:
            raise NoSuchProcess(f"process {process_id!r} is not deployed: deploy it with POST")
        log.info("process %s replaced (version %d) by %s", process_id, revision, user or "-")
        return self._served(candidate, revision)

    async def undeploy(self, process_id: str, user: str | None) -> None:
        self._check_mutable(process_id)
        mark = ProcessVersion(
            id=process_id,
            revision=0,
            version="",
            document=None,
            package=None,
            media_type=None,
            deployed=utcnow(),
            deployed_by=user,
        )
        revision = await self.store.add_process_version(mark, True)
        if revision is None:
            raise NoSuchProcess(f"process {process_id!r} is not deployed")
        self.catalog.drop_deployed(process_id)
        log.info("process %s undeployed by %s", process_id, user or "-")
