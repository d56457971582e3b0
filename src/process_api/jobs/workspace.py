"""What a job's run has on this machine: its inputs file and a results directory.

A process on the subprocess or docker host writes its result files to a directory
(PROCESS_API_RESULTS_DIR, /results in a container). With local storage that is the
job's results location itself; with S3 storage it is a directory here whose files
are put in S3 when the run ends, so that one process writes files the same way
whatever the storage. A host that runs elsewhere (AWS Batch) gets no directory:
its inputs are an object of the storage, and it writes its results there.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
import stat
from pathlib import Path

from process_api.asyncs import despite_cancellation, retrying
from process_api.hosts.base import JobRun, Keep
from process_api.jobs.files import media_type
from process_api.storage.base import Storage

log = logging.getLogger(__name__)

#: attempts at putting one file in storage.
PUT_ATTEMPTS = 4
#: the most files of one run put in storage (a runaway process must not flood it).
MAX_FILES = 10_000


class WorkspaceError(Exception):
    """A run's files could not be prepared or kept: the job fails, saying so."""


class Workspace:
    def __init__(self, root: Path, storage: Storage) -> None:
        """`root`: the server's data directory; runs' files go in folders below it."""
        self.storage = storage
        self.inputs_dir = root / "inputs"
        self.staging_dir = root / "results"

    def results_dir(self, job_id: str, runs_here: bool) -> Path | None:
        """Where the run writes its result files: the storage's own directory, or one here
        put in storage when the run ends; None for a run elsewhere with S3 storage."""
        own = self.storage.local_path(self.storage.layout.results_of(job_id))
        if own is not None or not runs_here:
            return own
        return self.staging_dir / job_id

    def inputs_file(self, job_id: str) -> Path:
        return self.inputs_dir / f"{job_id}.json"

    def _staged(self, run: JobRun) -> bool:
        return run.results_dir is not None and run.results_dir.parent == self.staging_dir

    async def prepare(self, run: JobRun) -> None:
        """The results directory and the inputs file (or storage object), before the run."""
        try:
            if run.results_dir is not None:
                await asyncio.to_thread(run.results_dir.mkdir, parents=True, exist_ok=True)
            if run.inputs_key is not None:
                key, data = run.inputs_key, run.inputs_json.encode()
                await retrying(
                    lambda: self.storage.put(key, data),
                    f"job {run.job_id}: keeping its inputs",
                    PUT_ATTEMPTS,
                )
            elif run.inputs_file is not None:
                await _write_file(run.inputs_file, run.inputs_json.encode())
        except Exception as exc:
            # The error's text may hold paths or addresses: the log has it, the job its kind.
            log.exception("job %s: its inputs could not be written", run.job_id)
            raise WorkspaceError(
                f"the job's inputs could not be written before its run ({type(exc).__name__})"
            ) from None

    async def publish(self, run: JobRun) -> None:
        """Puts the files a run wrote here in its results location in storage: regular files
        only, never through a symbolic link, at most MAX_FILES."""
        if not self._staged(run):
            return
        assert run.results_dir is not None
        files = await asyncio.to_thread(_regular_files, run.results_dir)
        if len(files) > MAX_FILES:
            log.warning("job %s: only the first %d files are kept", run.job_id, MAX_FILES)
        for name in files[:MAX_FILES]:
            try:
                await retrying(
                    functools.partial(self._put, run.job_id, run.results_dir, name),
                    f"job {run.job_id}: keeping its file {name}",
                    PUT_ATTEMPTS,
                )
            except Exception as exc:
                log.exception("job %s: its file %s could not be kept", run.job_id, name)
                raise WorkspaceError(
                    f"the file {name!r} the job wrote could not be kept ({type(exc).__name__})"
                ) from None

    async def _put(self, job_id: str, folder: Path, name: str) -> None:
        key = self.storage.layout.results_of(job_id) + name
        await self.storage.put_file(key, folder / name, media_type(None, name))

    async def clear(self, run: JobRun) -> None:
        """Removes the run's files here once its end is recorded; an object in storage stays
        as long as the job's other objects (retention)."""
        try:
            if run.inputs_file is not None:
                await asyncio.to_thread(run.inputs_file.unlink, missing_ok=True)
            if self._staged(run):
                assert run.results_dir is not None
                await asyncio.to_thread(shutil.rmtree, run.results_dir, True)
        except OSError:
            log.exception("job %s: removing its files failed", run.job_id)

    async def prune(self, keep: Keep) -> None:
        """Removes what runs of an earlier start left (it crashed), except for the jobs
        `keep` gives, which are still active. It is asked once the files are listed: a job
        is recorded before its files are written, so those of a run that another instance
        begins meanwhile stay."""

        def listed() -> list[Path]:
            found: list[Path] = []
            if self.inputs_dir.is_dir():
                found += [p for p in self.inputs_dir.iterdir() if p.suffix == ".json"]
            if self.staging_dir.is_dir():
                found += list(self.staging_dir.iterdir())
            return found

        def remove(paths: list[Path]) -> None:
            for path in paths:
                if path.parent == self.staging_dir:
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)

        try:
            paths = await asyncio.to_thread(listed)
            kept = await keep()
            job_of = {p: p.stem if p.parent == self.inputs_dir else p.name for p in paths}
            await asyncio.to_thread(remove, [p for p in paths if job_of[p] not in kept])
        except OSError:
            log.exception("removing the files of runs of an earlier start failed")


def _regular_files(top: Path) -> list[str]:
    """Relative POSIX names of the regular files below `top`, links neither listed nor
    followed, in a stable order."""
    found = []
    for folder, dirs, names in os.walk(top, followlinks=False):
        base = Path(folder).relative_to(top)
        dirs.sort()
        for name in sorted(names):
            if stat.S_ISREG(os.lstat(os.path.join(folder, name)).st_mode):
                found.append((base / name).as_posix())
    return found


async def _write_file(path: Path, data: bytes) -> None:
    """Writes the inputs file in a thread; a dismiss meanwhile waits for the write to end,
    so that removing the file comes after it."""
    writing = asyncio.ensure_future(asyncio.to_thread(_write_private, path, data))
    try:
        await asyncio.shield(writing)
    except asyncio.CancelledError:
        await despite_cancellation(asyncio.wait([writing]))
        raise


def _write_private(path: Path, data: bytes) -> None:
    """Writes a file only the server's user may read (inputs may be personal or secret)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
