"""Whether a directory can be written: what /ready reports of the data directories."""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path

#: what a write probe writes: enough to need a new block of a full disk.
_PROBE = b"\0" * 4096


def reason(exc: OSError) -> str:
    """An OSError in plain words, without the path (which clients need not see)."""
    if exc.errno == errno.ENOENT:
        return "it does not exist"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "it is read-only"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "its disk is full"
    return exc.strerror or type(exc).__name__


def write_problem(directory: Path, name: str) -> str | None:
    """Why no file can be written in the directory (missing, read-only, full), or None.

    Writes and removes a small file: only a real write finds a full disk."""
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".ready-") as probe:
            probe.write(_PROBE)
            probe.flush()
    except OSError as exc:
        return f"{name} cannot be written: {reason(exc)}"
    return None
