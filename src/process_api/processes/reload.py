"""Reading the processes directory again, without a restart: when its files change, and on
SIGHUP.

New and changed files take effect once valid; a broken file keeps its last valid
version serving (its problems are logged with the file, the line and the field);
a removed file's process is no longer served. Running jobs keep the process they
started with: they hold it, whatever the directory says since.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import watchfiles

from process_api.processes.catalog import Catalog
from process_api.processes.loader import HostChecks, Loaded, load_directory
from process_api.processes.registry import Process

log = logging.getLogger(__name__)

#: milliseconds of quiet after a change before the directory is read (an editor, or a
#: checkout, writes several files, some of them more than once).
DEBOUNCE_MS = 300
#: seconds before watching again once the directory could not be watched (it was removed).
WATCH_RETRY = 5.0


def _log_problems(loaded: Loaded) -> None:
    for problem in loaded.problems:
        if problem.warning:
            log.warning("process file: %s", problem)
        else:
            log.error("invalid process file: %s", problem)


class Reloader:
    def __init__(
        self,
        catalog: Catalog,
        directory: Path,
        host_checks: HostChecks,
        on_removed: Callable[[set[str]], Awaitable[None]] | None = None,
    ) -> None:
        """`on_removed`: told the ids of processes no longer served (for their queued jobs)."""
        self.catalog = catalog
        self.directory = directory
        self.host_checks = host_checks
        self.on_removed = on_removed
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()

    async def reload(self, why: str) -> None:
        """Reads the directory again and serves what it holds now; one reload at a time."""
        async with self._lock:
            if not self.directory.is_dir():
                log.error(
                    "processes directory %s not found (%s): the processes stay as they were",
                    self.directory,
                    why,
                )
                return
            loaded = await asyncio.to_thread(load_directory, self.directory, self.host_checks)
            _log_problems(loaded)
            removed = self._apply(loaded, why)
        if removed and self.on_removed is not None:
            await self.on_removed(removed)

    def _apply(self, loaded: Loaded, why: str) -> set[str]:
        """Serves what was loaded, keeping the last valid version of each broken file;
        the ids no longer served."""
        before = self.catalog.files
        now: dict[str, Process] = {p.id: p for p in loaded.processes}
        broken = {p.file.resolve() for p in loaded.errors}
        for process in before.values():
            source = process.source
            if process.id not in now and source is not None and source.resolve() in broken:
                log.warning(
                    "process %s: %s is not valid; its last valid version is served until the "
                    "file is fixed",
                    process.id,
                    source,
                )
                now[process.id] = process
        added = sorted(now.keys() - before.keys())
        removed = sorted(before.keys() - now.keys())
        changed = sorted(
            i
            for i in now.keys() & before.keys()
            if now[i].config != before[i].config or now[i].source != before[i].source
        )
        shadowed = sorted(now.keys() & self.catalog.deployed_ids)
        for process_id in shadowed:
            log.warning(
                "process %s: a file has the id of a process deployed over the API; the "
                "deployed one is served (undeploy it to serve the file's)",
                process_id,
            )
        if not (added or removed or changed):
            log.info("processes directory read again (%s): no process changed", why)
            return set()
        self.catalog.set_files(list(now.values()))
        log.info(
            "processes directory read again (%s): %d added %s, %d changed %s, %d removed %s",
            why,
            len(added),
            added,
            len(changed),
            changed,
            len(removed),
            removed,
        )
        return {i for i in removed if i not in self.catalog}

    async def watch(self) -> None:
        """Reloads whenever a process file of the directory changes, until stop()."""
        while not self._stop.is_set():
            try:
                # Any change: a folder moved in or out, a ConfigMap's symlink swapped, only
                # show as changes of directories.
                async for _changes in watchfiles.awatch(
                    self.directory,
                    debounce=DEBOUNCE_MS,
                    stop_event=self._stop,
                ):
                    try:
                        await self.reload("a file changed")
                    except Exception:
                        log.exception("reading the processes directory again failed")
            except Exception as exc:  # the directory went away: watch it again once back
                log.warning("cannot watch %s for changes: %s", self.directory, exc)
            if not self._stop.is_set():
                try:
                    await asyncio.wait_for(self._stop.wait(), WATCH_RETRY)
                except TimeoutError:
                    pass

    def stop(self) -> None:
        self._stop.set()

    @asynccontextmanager
    async def serving(self, watch: bool) -> AsyncIterator[None]:
        """While the server serves: the deployed processes read again every second, and the
        processes directory on SIGHUP and, if `watch`, whenever its files change."""
        loop = asyncio.get_running_loop()
        reloads: set[asyncio.Task[None]] = set()

        async def reloading() -> None:
            try:
                await self.reload("SIGHUP")
            except Exception:
                log.exception("reading the processes directory again failed")

        def reload() -> None:
            task = loop.create_task(reloading())
            reloads.add(task)  # referenced until it ends
            task.add_done_callback(reloads.discard)

        # Signals are handled in the main thread only (not by an app in a test's thread).
        with contextlib.suppress(ValueError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, reload)
        tasks = [asyncio.create_task(self.catalog.refresh_periodically())]
        if watch:
            tasks.append(asyncio.create_task(self.watch()))
        try:
            yield
        finally:
            self.stop()
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(signal.SIGHUP)
                # Jobs are still being stopped: a SIGHUP now must not end the process.
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
            for task in [*tasks, *reloads]:
                task.cancel()
            await asyncio.gather(*tasks, *reloads, return_exceptions=True)
