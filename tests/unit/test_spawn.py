"""Programs started from the event loop (hosts/spawn.py): their output, their exit status
to every waiter, and their end seen with or without a pidfd."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from process_api.hosts import spawn as spawning


async def run(command: str) -> tuple[list[bytes], list[bytes], int]:
    proc = await spawning.spawn(["sh", "-c", command], "/", dict(os.environ), 1024)
    out = await proc.stdout.read()
    err = await proc.stderr.read()
    return out.splitlines(), err.splitlines(), await proc.wait()


@pytest.mark.parametrize("pidfd", [True, False])
def test_output_and_exit_status(pidfd: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not pidfd:
        monkeypatch.delattr(os, "pidfd_open")
    out, err, code = asyncio.run(run("echo one; echo two >&2; echo three; exit 3"))
    assert (out, err, code) == ([b"one", b"three"], [b"two"], 3)


def test_every_waiter_gets_the_status_and_a_cancelled_one_leaves_the_others() -> None:
    async def scenario() -> tuple[int, int, int | None]:
        proc = await spawning.spawn(["sleep", "30"], "/", dict(os.environ), 1024)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(proc.wait(), 0.1)
        waiters = [asyncio.create_task(proc.wait()) for _ in range(2)]
        await asyncio.sleep(0.05)
        assert proc.returncode is None
        os.killpg(proc.pid, signal.SIGTERM)  # a session and process group of its own
        first, second = await asyncio.gather(*waiters)
        return first, second, proc.returncode

    assert asyncio.run(scenario()) == (-signal.SIGTERM, -signal.SIGTERM, -signal.SIGTERM)


def test_a_missing_program_is_an_os_error() -> None:
    with pytest.raises(FileNotFoundError):
        asyncio.run(run_missing())


async def run_missing() -> None:
    await spawning.spawn(["/nonexistent/program"], "/", dict(os.environ), 1024)


#: many programs started at once under uvloop while another thread opens and closes files.
CONCURRENT = """
import asyncio, os, sys, threading
import uvloop
from process_api.hosts import spawn as spawning

bad, stop = [], False

def holder():
    while not stop:
        fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(4)]
        for fd in fds:
            try:
                os.fstat(fd)
                os.close(fd)
            except OSError as exc:
                bad.append(exc)

async def one():
    proc = await spawning.spawn(["true"], "/", {}, 1 << 16)
    await proc.stdout.read()
    await proc.stderr.read()
    return await proc.wait()

async def main():
    global stop
    thread = threading.Thread(target=holder)
    thread.start()
    failed = []
    for _ in range(40):
        done = await asyncio.gather(*[one() for _ in range(8)], return_exceptions=True)
        failed += [repr(r) for r in done if not isinstance(r, int)]
    stop = True
    thread.join()
    print(len(failed), len(bad), failed[:3], bad[:3])

uvloop.run(main())
"""


def test_programs_started_at_once_never_close_another_threads_descriptors() -> None:
    """With uvloop's pipe transports, a descriptor was closed twice, the second time when
    another thread had been given its number: jobs failed with "cannot start 'sh': Bad
    file descriptor", and this scenario aborted the interpreter."""
    env = {**os.environ, "PYTHONPATH": str(Path(spawning.__file__).parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", CONCURRENT], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[:2] == ["0", "0"], done.stdout


def test_output_no_longer_read_closes_its_pipes_while_a_left_behind_program_prints() -> None:
    """A program that left the job's group holds the pipes open and goes on printing: once
    the job's output is cut, the server keeps neither the descriptors nor what it prints."""

    async def scenario() -> tuple[int, bytes, bytes]:
        before = len(os.listdir("/proc/self/fd"))
        command = "setsid sh -c 'while :; do echo left; sleep 0.01; done' & echo mine"
        proc = await spawning.spawn(["sh", "-c", command], "/", dict(os.environ), 1024)
        try:
            first = await proc.stdout.readline()
            await proc.wait()
            await asyncio.sleep(0.2)  # the left-behind program prints on
            proc.close_output()
            opened = len(os.listdir("/proc/self/fd")) - before
            rest = await asyncio.wait_for(proc.stdout.read(), 5)  # what was read, then the end
            await asyncio.sleep(0.2)
            assert not await asyncio.wait_for(proc.stdout.read(), 1)  # nothing more is kept
            return opened, first, rest
        finally:
            subprocess.run(["pkill", "-f", "while :; do echo left"], check=False)

    opened, first, rest = asyncio.run(scenario())
    assert opened == 0
    assert first == b"mine\n" and rest.startswith(b"left")
