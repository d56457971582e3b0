"""Starting a program from the event loop without copying the server.

asyncio's own subprocesses start with `fork` under uvloop (the loop uvicorn runs
on): the kernel copies the server's memory map, tens of milliseconds in a server
of some size, during which the event loop answers no request. `subprocess.Popen`
starts the program with vfork or posix_spawn instead (half a millisecond). Its
output pipes are then read by the event loop (their descriptors its own: see _Pipe),
and its end is seen through a pidfd (Linux 5.3), or by polling where there is none.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

#: how often the end of a program is looked for where there is no pidfd.
POLL = 0.05
#: bytes read from a pipe at a time.
CHUNK = 256 * 1024


class Spawned:
    """A running program, as much of asyncio's Process as the hosts use."""

    def __init__(self, popen: subprocess.Popen[bytes], stdout: _Pipe, stderr: _Pipe) -> None:
        self._popen = popen
        self.pid = popen.pid
        self._pipes = (stdout, stderr)
        self.stdout = stdout.reader
        self.stderr = stderr.reader
        self._ended: asyncio.Future[int] | None = None
        self._polling: asyncio.Task[None] | None = None

    def close_output(self) -> None:
        """Stops reading its output: a program that left its group may hold the pipes open
        and go on printing, which nobody would read but the readers would keep."""
        for pipe in self._pipes:
            pipe.close()

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    async def wait(self) -> int:
        """Its exit status (a negative signal number if a signal ended it), once it ends;
        several may wait, and a waiter cancelled leaves the others waiting."""
        if self._ended is None:
            self._ended = asyncio.get_running_loop().create_future()
            self._watch(self._ended)
        return await asyncio.shield(self._ended)

    def _watch(self, ended: asyncio.Future[int]) -> None:
        loop = asyncio.get_running_loop()
        try:
            pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self._polling = loop.create_task(self._poll(ended))
            return

        def exited() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            if not ended.done():
                ended.set_result(self._popen.wait())  # it has ended: the wait is a reaping

        loop.add_reader(pidfd, exited)

    async def _poll(self, ended: asyncio.Future[int]) -> None:
        while (code := self._popen.poll()) is None:
            await asyncio.sleep(POLL)
        if not ended.done():
            ended.set_result(code)


async def spawn(
    command: Sequence[str], cwd: Path | str, env: Mapping[str, str], limit: int
) -> Spawned:
    """Starts `command` in a session (and process group) of its own, its stdin empty, its
    stdout and stderr read by lines of at most `limit` bytes. OSError if it cannot start."""
    popen = subprocess.Popen(
        list(command),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        close_fds=True,
    )
    pipes: list[_Pipe] = []
    try:
        assert popen.stdout is not None and popen.stderr is not None
        loop = asyncio.get_running_loop()
        for pipe in (popen.stdout, popen.stderr):
            pipes.append(_Pipe(os.dup(pipe.fileno()), asyncio.StreamReader(limit, loop), loop))
            pipe.close()
    except BaseException:
        for made in pipes:
            made.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()
        raise
    return Spawned(popen, *pipes)


class _Pipe:
    """Reads a pipe into a StreamReader, which pauses it when its buffer is full (as a
    transport). The descriptor is this object's alone and closed once, by it: uvloop's
    pipe transports close a file object's descriptor, then the file object closes the
    same number again, which another thread may have been given meanwhile."""

    def __init__(
        self, fd: int, reader: asyncio.StreamReader, loop: asyncio.AbstractEventLoop
    ) -> None:
        os.set_blocking(fd, False)
        self._fd = fd
        self.reader = reader
        self._loop = loop
        self._paused = False
        reader.set_transport(self)  # type: ignore[arg-type]
        loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._close_descriptor()
            self.reader.set_exception(exc)
            return
        if not data:
            self.close()
            return
        self.reader.feed_data(data)

    def pause_reading(self) -> None:
        if self._fd >= 0 and not self._paused:
            self._paused = True
            self._loop.remove_reader(self._fd)

    def resume_reading(self) -> None:
        if self._fd >= 0 and self._paused:
            self._paused = False
            self._loop.add_reader(self._fd, self._readable)

    def close(self) -> None:
        """Reads no more: what was read stays to be read, then the end."""
        self._close_descriptor()
        self.reader.feed_eof()

    def _close_descriptor(self) -> None:
        if self._fd >= 0:
            if not self._paused:
                self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
