"""What the docker host puts on the engine's machine for a container: its results
directory, its inputs file and its secrets, all belonging to the user the container runs as.

The user is the process file's `container.user`, else the image's, else root; a
name is looked up in the image's own /etc/passwd and /etc/group (the host's mean
nothing inside a container). Secrets are files on a tmpfs (never on a disk, never
in the container's configuration that `docker inspect` shows), one directory per
job, mounted read-only.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

#: name or number, then optionally `:` and a group name or number (docker's --user).
USER_PATTERN = re.compile(
    r"^(?:[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?|[0-9]{1,10})(?::(?:[A-Za-z_][A-Za-z0-9_.-]{0,31}|[0-9]{1,10}))?$"
)
#: the largest uid or gid Linux knows (2**32 - 1 means "none").
MAX_ID = 2**32 - 2
#: where the results directory is made the container user's; shared with all where it cannot be.
RESULTS_MODE, RESULTS_SHARED_MODE = 0o750, 0o777
#: the inputs file, mounted read-only: the container user's to read.
INPUTS_MODE, INPUTS_SHARED_MODE = 0o400, 0o444
SECRETS_DIR_MODE, SECRETS_DIR_SHARED_MODE = 0o500, 0o555
SECRET_MODE, SECRET_SHARED_MODE = 0o400, 0o444
#: the largest /etc/passwd or /etc/group read from an image.
MAX_ACCOUNTS_FILE = 2**20

#: reads a file of the container's image (bytes, or None if it has none).
ReadFile = Callable[[str], bytes | None]
Ids = tuple[int, int]


def user_problem(user: str) -> str | None:
    """Why `container.user` is not a user docker could run as, or None."""
    if not USER_PATTERN.match(user):
        return "must be a user name or uid, optionally followed by :group or :gid"
    if any(part.isdigit() and int(part) > MAX_ID for part in user.split(":")):
        return f"uids and gids go up to {MAX_ID}"
    return None


def _entries(data: bytes | None) -> list[list[str]]:
    text = (data or b"").decode("utf-8", errors="replace")
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _number(field: str) -> int | None:
    return int(field) if field.isdigit() else None


def resolve_user(user: str, read: ReadFile) -> Ids | None:
    """The uid and gid the container's process gets for `user`, as the engine finds them;
    None when a name is not in the image's accounts (the engine refuses to start it then)."""
    if not user:
        return 0, 0
    name, _, group = user.partition(":")
    uid, gid = _number(name), _number(group)
    if uid is not None and gid is not None:
        return uid, gid
    found_uid: int | None = uid
    found_gid: int | None = 0  # docker's default for a uid not in the image's passwd
    for entry in _entries(read("/etc/passwd")):
        if len(entry) >= 4 and (entry[0] == name or (uid is not None and entry[2] == name)):
            found_uid, found_gid = _number(entry[2]), _number(entry[3])
            break
    else:
        if uid is None:
            return None
    if group and gid is None:
        matches = [e for e in _entries(read("/etc/group")) if len(e) >= 3 and e[0] == group]
        found_gid = _number(matches[0][2]) if matches else None
    elif gid is not None:
        found_gid = gid
    if found_uid is None or found_gid is None:
        return None
    return found_uid, found_gid


def file_of_archive(archive: bytes, name: str) -> bytes | None:
    """A file of the tar stream the engine gives for one path (`docker cp`)."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = tar.next()
        if member is None or not member.isfile() or member.size > MAX_ACCOUNTS_FILE:
            return None
        extracted = tar.extractfile(member)
        return extracted.read() if extracted else None


def hand_over(path: Path, ids: Ids, mode: int, shared_mode: int) -> None:
    """Makes the path the container user's. A server that may not change owners (not root)
    keeps it, and opens it to all instead when the container runs as another user."""
    try:
        os.chown(path, *ids, follow_symlinks=False)
        path.chmod(mode)
    except PermissionError:
        path.chmod(mode if os.geteuid() == ids[0] else shared_mode)


class SecretFiles:
    """Each job's secrets as files in a directory of its own, under `root/instance`."""

    def __init__(self, root: Path, instance: str) -> None:
        self.root = root
        self.base = root / re.sub(r"[^A-Za-z0-9_.-]", "_", instance)

    def of(self, job_id: str) -> Path:
        return self.base / job_id

    def _safe_base(self) -> None:
        """The directories above the jobs' are this server's alone (/dev/shm is shared by all
        users: another could have made them first)."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.base.mkdir(mode=0o700, exist_ok=True)
        for path in (self.root, self.base):
            info = path.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
                raise PermissionError(f"{path} is not a directory of this server's user")
            if info.st_mode & 0o077:
                path.chmod(0o700)

    def write(self, job_id: str, values: dict[str, str]) -> Path:
        """The job's directory with one file per secret, readable by this server only for now."""
        self._safe_base()
        directory = self.of(job_id)
        self.remove(job_id)
        directory.mkdir(mode=0o700)
        for name, value in values.items():
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            descriptor = os.open(directory / name, flags, SECRET_MODE)
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(value)
        return directory

    def hand_over(self, job_id: str, ids: Ids) -> None:
        directory = self.of(job_id)
        if not directory.is_dir():
            return
        for path in directory.iterdir():
            hand_over(path, ids, SECRET_MODE, SECRET_SHARED_MODE)
        hand_over(directory, ids, SECRETS_DIR_MODE, SECRETS_DIR_SHARED_MODE)

    def remove(self, job_id: str) -> None:
        directory = self.of(job_id)
        if not directory.exists():
            return
        with contextlib.suppress(OSError):
            directory.chmod(0o700)  # a server that is not root needs to write it to empty it
        shutil.rmtree(directory, ignore_errors=True)

    def tidy(self) -> None:
        """Removes this instance's directory once no job's secrets are left in it."""
        with contextlib.suppress(OSError):
            self.base.rmdir()

    def jobs(self) -> list[str]:
        """The ids of the jobs whose secrets are here."""
        if not self.base.is_dir():
            return []
        return [path.name for path in self.base.iterdir()]
