"""The rule that makes an output a file of the job's results location, and how the job
record keeps files apart from values."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from process_api.api.files import byte_range
from process_api.jobs.files import (
    FileError,
    FileResult,
    read_results,
    resolve_files,
    safe_name,
    stored_results,
)
from process_api.processes.config import ProcessConfig
from process_api.processes.registry import Process
from process_api.storage.local import LocalStorage

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
