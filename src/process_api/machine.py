"""This machine and its processes, named so that other server instances can tell them apart."""

from __future__ import annotations

import socket
from pathlib import Path


def this_machine() -> str:
    """This machine: its name, and its boot (a pid means nothing across reboots)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return f"{socket.gethostname()}/{boot}"[:300]


def _stat(pid: int) -> list[str]:
    """The fields of the process's /proc stat after its name; none once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def process_started(pid: int) -> str | None:
    """When the process started (in clock ticks since boot): with the pid, names it."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else None


def parent_of(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if len(fields) > 1 else None
