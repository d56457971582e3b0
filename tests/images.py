"""Container images for the tests, built locally: no registry is reachable or assumed.

Each image is a root filesystem tarball given to `docker import`: busybox (from
Debian's busybox-static) for shell processes, and the machine's own Debian
Python (its binary, the libraries it links and its standard library) for
processes written in Python, as the Go server's example images were.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

BUSYBOX = "process-api-test/busybox:1"
PYTHON = "process-api-test/python:1"
BUSYBOX_APPLETS = (
    *("sh", "echo", "cat", "sleep", "env", "printf", "id", "ls", "grep", "test", "["),
    *("seq", "stat"),
)
SYSTEM_PYTHON = Path("/usr/bin/python3")


def image_exists(tag: str) -> bool:
    result = subprocess.run(["docker", "image", "inspect", tag], capture_output=True)
    return result.returncode == 0


def docker_import(tar: bytes, tag: str, *changes: str) -> None:
    command = ["docker", "import"]
    for change in changes:
        command += ["--change", change]
    subprocess.run([*command, "-", tag], input=tar, check=True, capture_output=True)


def _add_file(archive: tarfile.TarFile, source: Path, name: str) -> None:
    archive.add(str(source.resolve()), arcname=name, recursive=False)


def _add_symlink(archive: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    archive.addfile(info)


def _add_text(archive: tarfile.TarFile, name: str, text: str, mode: int = 0o755) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    archive.addfile(info, io.BytesIO(data))


def _busybox(archive: tarfile.TarFile) -> None:
    busybox = Path("/bin/busybox") if Path("/bin/busybox").exists() else Path("/usr/bin/busybox")
    _add_file(archive, busybox, "bin/busybox")
    for applet in BUSYBOX_APPLETS:
        _add_symlink(archive, f"bin/{applet}", "busybox")
    _add_dir(archive, "tmp", 0o1777)


def _add_dir(archive: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    archive.addfile(info)


def busybox_image(
    extra_files: dict[str, str] | None = None, tag: str = BUSYBOX, changes: tuple[str, ...] = ()
) -> str:
    """A busybox image; `extra_files` are path → text (scripts, made executable); `changes`
    are Dockerfile instructions for `docker import` (`USER worker`, say)."""
    if image_exists(tag):
        return tag
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        _busybox(archive)
        for name, text in (extra_files or {}).items():
            _add_text(archive, name, text)
    docker_import(buffer.getvalue(), tag, *changes)
    return tag


def _linked_libraries(binary: Path) -> list[Path]:
    output = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    libraries = []
    for line in output.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if path.startswith("/"):
            libraries.append(Path(path))
    return libraries


def python_image(
    extra_files: dict[str, str] | None = None, tag: str = PYTHON, workdir: str = "/app"
) -> str:
    """An image with the machine's Debian Python as `python` and `python3`."""
    if image_exists(tag):
        return tag
    binary = SYSTEM_PYTHON.resolve()
    version = binary.name.removeprefix("python")  # e.g. 3.11
    stdlib = Path(f"/usr/lib/python{version}")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        _busybox(archive)
        _add_file(archive, binary, f"usr/bin/{binary.name}")
        for name in ("python", "python3"):
            _add_symlink(archive, f"usr/bin/{name}", binary.name)
        for library in _linked_libraries(binary):
            _add_file(archive, library, str(library).lstrip("/"))
        skip = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "__pycache__"}
        archive.add(
            str(stdlib),
            arcname=str(stdlib).lstrip("/"),
            filter=lambda info: None if skip & set(Path(info.name).parts) else info,
        )
        for name, text in (extra_files or {}).items():
            _add_text(archive, name, text)
    changes = ["ENV PATH=/usr/bin:/bin", f"WORKDIR {workdir}"]
    docker_import(buffer.getvalue(), tag, *changes)
    return tag


def remove_image(tag: str) -> None:
    subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True)
