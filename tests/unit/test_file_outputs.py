"""The rule that makes an output a file of the job's results location, and how the job
record keeps files apart from values."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from process_api.api.files import byte_range
from process_api.errors import ServiceUnavailable
from process_api.hosts.docker import RESULTS_MOUNT
from process_api.jobs.files import (
    CONTAINER_RESULTS_DIR,
    FileError,
    FileResult,
    media_type,
    read_results,
    resolve_files,
    safe_name,
    stored_results,
)
from process_api.jobs.model import Job, JobStatus, utcnow
from process_api.jobs.retention import Retention
from process_api.processes.config import ProcessConfig
from process_api.processes.registry import Process
from process_api.storage.base import Layout, ObjectChanged
from process_api.storage.local import LocalStorage
from process_api.storage.s3 import REFUSED_HEAD, S3Storage
from process_api.store.sql import SqlJobStore

JOB = "job-1"
OUTPUTS = [
    {"id": "csv", "schema": {"type": "string", "contentMediaType": "text/csv"}},
    {"id": "png", "schema": {"type": "string", "contentMediaType": "image/png"}},
    {
        "id": "b64",
        "schema": {"type": "string", "contentMediaType": "image/png", "contentEncoding": "base64"},
    },
    {
        "id": "raw",
        "schema": {"type": "string", "contentMediaType": "text/plain", "contentEncoding": "binary"},
    },
    {"id": "any", "schema": {}},
    {"id": "text", "schema": {"type": "string"}},
]


@pytest.fixture
def process() -> Process:
    config = ProcessConfig.model_validate(
        {
            "info": {"id": "p"},
            "host": {"type": "subprocess", "command": ["true"]},
            "outputs": OUTPUTS,
        }
    )
    return Process.from_config(config, Path("p.yml"))


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    storage = LocalStorage(tmp_path / "storage")
    folder = storage.local_path(storage.layout.results_of(JOB))
    (folder / "sub").mkdir(parents=True)
    (folder / "table.csv").write_text("a,b\n")
    (folder / "sub" / "plot.png").write_bytes(b"\x89PNG")
    (tmp_path / "outside.csv").write_text("secret")
    (folder / "link.csv").symlink_to(tmp_path / "outside.csv")
    (folder / "dirlink").symlink_to(tmp_path)
    os.mkfifo(folder / "fifo.csv")
    return storage


async def resolve(process: Process, storage: LocalStorage, **results: Any) -> dict[str, Any]:
    resolved, _ = await resolve_files(process, results, storage, JOB)
    return resolved


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("table.csv", "table.csv"),
        ("./sub//plot.png", "sub/plot.png"),
        ("../x", None),
        ("sub/../../x", None),
        ("/etc/passwd", None),
        ("a\\..\\b", None),
        ("c:/x", None),
        ("a\x00b", None),
        ("", None),
        (".", None),
    ],
)
def test_only_relative_paths_that_stay_inside_are_names(name: str, safe: str | None) -> None:
    assert safe_name(name) == safe


async def test_a_string_of_a_media_type_output_naming_a_written_file_is_that_file(
    process: Process, storage: LocalStorage
) -> None:
    resolved = await resolve(process, storage, csv="table.csv", png="sub/plot.png", text="t")
    assert resolved["csv"] == FileResult("table.csv", 4, "text/csv")
    assert resolved["png"] == FileResult("sub/plot.png", 4, "image/png")
    assert resolved["text"] == "t"


async def test_a_string_output_without_a_media_type_is_never_a_file(
    process: Process, storage: LocalStorage
) -> None:
    assert await resolve(process, storage, text="table.csv", any="table.csv") == {
        "text": "table.csv",
        "any": "table.csv",
    }


async def test_a_text_output_naming_no_file_stays_its_string(
    process: Process, storage: LocalStorage
) -> None:
    for name in ("missing.csv", "link.csv", "fifo.csv", "dirlink/outside.csv", "../x.csv"):
        assert await resolve(process, storage, csv=name) == {"csv": name}
    # base64 content may be a string: it is no file unless it names one
    assert await resolve(process, storage, b64="iVBORw0K") == {"b64": "iVBORw0K"}


@pytest.mark.parametrize(
    "results",
    [
        {"png": "missing.png"},
        {"png": "../outside.csv"},
        {"raw": "missing.txt"},
        {"any": {"href": "link.csv"}},
        {"any": {"href": "missing.csv"}},
        {"any": {"href": "dirlink/outside.csv"}},
    ],
)
async def test_an_output_that_must_be_a_file_fails_the_job_when_it_is_none(
    process: Process, storage: LocalStorage, results: dict[str, Any]
) -> None:
    with pytest.raises(FileError, match=f"output '{next(iter(results))}' names the file"):
        await resolve(process, storage, **results)


async def test_a_link_to_a_written_file_is_that_file_and_other_links_are_values(
    process: Process, storage: LocalStorage
) -> None:
    resolved = await resolve(process, storage, any={"href": "sub/plot.png", "title": "plot"})
    assert resolved["any"] == FileResult("sub/plot.png", 4, "image/png")
    elsewhere = {"href": "https://example.org/x.csv"}
    assert await resolve(process, storage, any=elsewhere) == {"any": elsewhere}
    # s3:// links are files only inside the job's own prefix of the bucket (not local storage)
    assert await resolve(process, storage, any={"href": "s3://b/x"}) == {
        "any": {"href": "s3://b/x"}
    }
    with_more = {"href": "table.csv", "extra": 1}
    assert await resolve(process, storage, any=with_more) == {"any": with_more}


def test_stored_files_and_values_never_mix() -> None:
    lookalike = {"$process-api:file": {"name": "x", "size": 1, "type": "a/b"}}
    wrapped = {"$process-api:value": 3}
    results = {
        "file": FileResult("t.csv", 4, "text/csv"),
        "lookalike": lookalike,
        "wrapped": wrapped,
        "plain": {"a": 1},
    }
    stored = stored_results(results)
    assert stored["plain"] == {"a": 1}
    assert read_results(stored) == results
    # results stored before files were served read as they are
    assert read_results({"x": "rating.csv", "y": [1]}) == {"x": "rating.csv", "y": [1]}


@pytest.mark.parametrize(
    ("header", "wanted"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=5-", (5, 99)),
        ("bytes=90-200", (90, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-200", (0, 99)),
        ("bytes=100-", "unsatisfiable"),
        ("bytes=-0", "unsatisfiable"),
        ("bytes=9-5", None),
        ("bytes=0-1,5-6", None),
        ("items=0-5", None),
        ("bytes=-", None),
        ("bytes= 1-2", None),
    ],
)
def test_byte_ranges(header: str | None, wanted: object) -> None:
    assert byte_range(header, 100) == wanted


# -- media types ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "media",
    [
        "application/yaml",
        "application/x-yaml",
        "application/javascript",
        "application/x-ndjson",
        "application/wkt",
        "application/sql",
        "application/geo+json",
        "image/svg+xml",
        "application/x-some-text",
    ],
)
async def test_a_text_of_a_type_of_no_binary_kind_may_be_returned_inline(
    tmp_path: Path, media: str
) -> None:
    process = one_output_process({"type": "string", "contentMediaType": media})
    storage = LocalStorage(tmp_path)
    resolved, files = await resolve_files(process, {"out": "a: 1\n"}, storage, JOB)
    assert resolved == {"out": "a: 1\n"} and not files


@pytest.mark.parametrize(
    "media",
    [
        "image/tiff; application=geotiff",
        "application/octet-stream",
        "application/zip",
        "application/x-netcdf",
        "application/x-hdf5",
        "application/pdf",
        "application/vnd.apache.parquet",
        "audio/wav",
    ],
)
async def test_an_output_of_a_binary_type_must_be_a_file(tmp_path: Path, media: str) -> None:
    process = one_output_process({"type": "string", "contentMediaType": media})
    with pytest.raises(FileError, match="output 'out' names the file"):
        await resolve_files(process, {"out": "AAAA"}, LocalStorage(tmp_path), JOB)


def one_output_process(schema: dict[str, Any]) -> Process:
    config = ProcessConfig.model_validate(
        {
            "info": {"id": "p"},
            "host": {"type": "subprocess", "command": ["true"]},
            "outputs": [{"id": "out", "schema": schema}],
        }
    )
    return Process.from_config(config, Path("p.yml"))


@pytest.mark.parametrize(
    ("linked", "served"),
    [
        ("text/csv; charset=utf-8", "text/csv; charset=utf-8"),
        ("application/vnd.geo+json", "application/vnd.geo+json"),
        ("text/csv\r\nSet-Cookie: x=1", "image/png"),
        ("text/csv\n", "image/png"),
        ("tëxt/csv", "image/png"),
        ('text/csv"; rel="x', "image/png"),
        ('text/csv; a="b"', "image/png"),
        ("text/", "image/png"),
        ("text/csv;", "image/png"),
        ("a/" + "b" * 300, "image/png"),
        (7, "image/png"),
    ],
)
def test_only_a_plain_media_type_chosen_by_a_process_is_kept(linked: Any, served: str) -> None:
    assert media_type(None, "plot.png", linked) == served
    # a type recorded before types were checked is checked when it is read
    stored = {"x": {"$process-api:file": {"name": "plot.png", "size": 1, "type": linked}}}
    assert read_results(stored)["x"].type == served


# -- absolute paths ------------------------------------------------------------------


async def test_an_absolute_path_in_the_results_directory_names_its_file(
    process: Process, storage: LocalStorage
) -> None:
    folder = str(storage.local_path(storage.layout.results_of(JOB)))
    resolved = await resolve(process, storage, csv=f"{folder}/table.csv")
    assert resolved["csv"] == FileResult("table.csv", 4, "text/csv")
    linked = await resolve(process, storage, any={"href": f"{folder}//sub/plot.png"})
    assert linked["any"] == FileResult("sub/plot.png", 4, "image/png")
    for outside in (f"{folder}/../x.csv", f"{folder}x/table.csv", f"{folder}/link.csv"):
        assert await resolve(process, storage, csv=outside) == {"csv": outside}
        with pytest.raises(FileError):
            await resolve(process, storage, any={"href": outside})


async def test_a_containers_results_mount_names_a_file_of_a_docker_run(
    process: Process, storage: LocalStorage
) -> None:
    assert CONTAINER_RESULTS_DIR == RESULTS_MOUNT
    staged = "/srv/staging/job-1"  # a run's directory here, as with S3 storage
    dirs = [staged, CONTAINER_RESULTS_DIR]
    results = {"csv": "/results/table.csv", "png": f"{staged}/sub/plot.png"}
    resolved, files = await resolve_files(process, results, storage, JOB, dirs)
    assert resolved["csv"] == FileResult("table.csv", 4, "text/csv")
    assert resolved["png"] == FileResult("sub/plot.png", 4, "image/png")
    assert files == {"csv", "png"}
    # without the mount (another host), /results/ is just an absolute path
    assert (await resolve(process, storage, csv="/results/table.csv"))["csv"] == (
        "/results/table.csv"
    )


# -- local storage ---------------------------------------------------------------------


async def test_a_local_listing_cut_short_holds_the_first_names(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    folder = storage.local_path("results/j/")
    for name in ("b.txt", "a/z.txt", "a.txt", "c/d/e.txt", "a-b.txt"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("x")
    keys = [info.key.removeprefix("results/j/") for info in await storage.objects("results/j/", 3)]
    assert keys == ["a-b.txt", "a.txt", "a/z.txt"]


async def test_a_local_file_replaced_since_its_stat_is_not_streamed_as_it(
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path)
    storage.local_path("results/j").mkdir(parents=True)
    path = storage.local_path("results/j/f.txt")
    path.write_text("old")
    info = await storage.stat("results/j/f.txt")
    assert info is not None
    path.write_text("newer")
    with pytest.raises(ObjectChanged):
        await anext(storage.stream("results/j/f.txt", 0, info.size, info.etag))


def open_descriptors(path: Path) -> int:
    """This process's descriptors open on the file (others come and go with other threads)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
    return count


async def test_a_stream_cancelled_while_opening_or_reading_leaves_no_descriptor_open(
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path)
    storage.local_path("results/j").mkdir(parents=True)
    storage.local_path("results/j/f.txt").write_bytes(b"x" * 1_000_000)
    opened = storage.local_path("results/j/f.txt").resolve()
    for _ in range(50):
        chunks = storage.stream("results/j/f.txt", 0, 1_000_000)
        task = asyncio.create_task(anext(chunks))
        await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await task
        # a read that ended before the cancel left the stream at its first chunk: closed by
        # its reader, as the file route does, not by the garbage collector some time later
        await chunks.aclose()
    # what the worker threads still held is closed once they end
    for _ in range(100):
        if open_descriptors(opened) == 0:
            break
        await asyncio.sleep(0.05)
    assert open_descriptors(opened) == 0


async def test_what_local_storage_cannot_remove_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = LocalStorage(tmp_path / "storage")
    kept = storage.local_path("results/j/f.txt")
    kept.parent.mkdir(parents=True)
    kept.write_text("x")
    # an immutable file: even root cannot remove it (chattr needs ext2/3/4, xfs or btrfs)
    if subprocess.run(["chattr", "+i", str(kept)], capture_output=True).returncode != 0:
        pytest.skip("this file system has no immutable files (chattr +i)")
    try:
        await storage.delete("results/j/")
        assert kept.exists()
    finally:
        subprocess.run(["chattr", "-i", str(kept)], check=True)
    assert "f.txt could not be removed" in caplog.text


# -- S3 errors -------------------------------------------------------------------------
# moto answers every request it is given: a refused HEAD, throttling and a partly failed
# delete cannot be produced with it, so these tests give the real S3Storage a real boto3
# client whose answers come from botocore's Stubber (an in-process fake of S3's replies).


@pytest.fixture
def stubbed() -> Iterator[tuple[S3Storage, Stubber]]:
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}),
    )
    with Stubber(client) as stubber:
        yield S3Storage(client, "bucket", Layout()), stubber


async def test_a_head_the_bucket_refuses_says_which_permission_may_lack(
    stubbed: tuple[S3Storage, Stubber],
) -> None:
    storage, stubber = stubbed
    stubber.add_client_error("head_object", "403", http_status_code=403)
    with pytest.raises(ServiceUnavailable) as refused:
        await storage.stat("results/j/f.txt")
    assert refused.value.detail == REFUSED_HEAD
    assert "s3:ListBucket / s3:GetObject" in REFUSED_HEAD


async def test_throttled_reads_and_listings_are_503s_saying_to_try_again(
    stubbed: tuple[S3Storage, Stubber],
) -> None:
    storage, stubber = stubbed
    stubber.add_client_error("get_object", "SlowDown", http_status_code=503)
    with pytest.raises(ServiceUnavailable, match=r"refuses to read an object \(SlowDown\)"):
        await anext(storage.stream("results/j/f.txt", 0, 10, '"tag"'))
    stubber.add_client_error("get_object", "SlowDown", http_status_code=503)
    with pytest.raises(ServiceUnavailable, match="try again later"):
        await storage.get("metadata/j.json")
    stubber.add_client_error("list_objects_v2", "AccessDenied", http_status_code=403)
    with pytest.raises(ServiceUnavailable, match="refuses to list objects: access denied"):
        await storage.objects("results/j/", 10)


async def test_objects_s3_keeps_on_delete_leave_the_job_to_the_next_retention_pass(
    stubbed: tuple[S3Storage, Stubber], sqlite_store: SqlJobStore
) -> None:
    storage, stubber = stubbed
    ended = utcnow() - timedelta(hours=2)
    job = Job(
        id="j",
        process_id="p",
        process_version="1",
        host_type="subprocess",
        mode="async",
        status=JobStatus.SUCCESSFUL,
        created=ended,
        updated=ended,
        finished=ended,
    )
    await sqlite_store.create(job)
    listed = {"Contents": [{"Key": "results/j/f.txt"}], "IsTruncated": False, "KeyCount": 1}
    stubber.add_response("list_objects_v2", listed)
    refused = {"Key": "results/j/f.txt", "Code": "AccessDenied", "Message": "Access Denied"}
    stubber.add_response("delete_objects", {"Errors": [refused]})
    retention = Retention(sqlite_store, storage, timedelta(hours=1))
    with pytest.raises(ServiceUnavailable, match=r"did not remove 1 object.*results/j/f.txt"):
        await retention.expire()
    kept = await sqlite_store.get("j")
    assert kept is not None and not kept.expired


@pytest.mark.parametrize("name", ["a" * 256, "x/" * 2100 + "y", "é" * 200])
def test_a_string_too_long_to_name_a_file_is_no_name(name: str) -> None:
    """A long text output (an HTML page) is a value; looking it up as a file failed the job."""
    assert safe_name(name) is None
