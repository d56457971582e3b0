"""What a process printed: progress reports, its results line and its log."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from process_api.jobs import log as job_log
from process_api.jobs.contract import (
    Progress,
    ResultsError,
    parse_progress,
    plugin_results,
)
from process_api.jobs.contract import map_results as map_value
from process_api.jobs.log import JobLog, file_page, parse_log
from process_api.processes.config import ProcessConfig
from process_api.processes.registry import Process

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def map_results(process: Process, line: str | None) -> dict[str, Any]:
    """The outputs of a process whose last stdout line is `line`."""
    return map_value(process, plugin_results(line))


def make_process(*outputs: dict[str, Any]) -> Process:
    config = ProcessConfig.model_validate(
        {
            "info": {"id": "p"},
            "host": {"type": "subprocess", "command": ["true"]},
            "outputs": list(outputs),
        }
    )
    return Process.from_config(config, Path("x.yml"))


def results_line(value: Any) -> str:
    return json.dumps({"plugin_results": value})


# -- progress --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"progress": 50}', Progress(50, None)),
        ('{"progress": 50, "message": "halfway"}', Progress(50, "halfway")),
        ('{"progress": 12.9, "message": "x"}', Progress(12, "x")),
        ('{"progress": 0}', Progress(0, None)),
        ('{"progress": 100}', Progress(100, None)),
        ('{"progress": 150}', Progress(100, None)),
        ('{"progress": -5}', Progress(0, None)),
        ('{"message": "m", "progress": 7}', Progress(7, "m")),
        ('{"progress": 5, "message": 42}', Progress(5, None)),
    ],
)
def test_progress_lines(line: str, expected: Progress) -> None:
    assert parse_progress(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "",
        "progress 50%",
        "50",
        '{"level": "INFO", "msg": "working"}',
        '{"progress": "50"}',
        '{"progress": null}',
        '{"progress": true}',
        '{"progress": false}',
        '{"progress": [50]}',
        '{"progress": 50',
        '{"plugin_results": {"progress": 50}}',
        '{"plugin_results": 1, "progress": 50}',
        '["progress", 50]',
    ],
)
def test_not_progress(line: str) -> None:
    assert parse_progress(line) is None


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_progress_does_not_raise(number: str) -> None:
    # A progress line is printed by the process; whatever it prints must not break the job.
    line = '{"progress": ' + number + "}"
    assert parse_progress(line) in (None, Progress(0, None), Progress(100, None))


# -- results ---------------------------------------------------------------------------


def test_single_output_gets_the_bare_value() -> None:
    process = make_process({"id": "message", "schema": {"type": "string"}})
    assert map_results(process, results_line("hello")) == {"message": "hello"}


def test_single_output_given_as_keyed_object() -> None:
    process = make_process({"id": "message", "schema": {"type": "string"}})
    assert map_results(process, results_line({"message": "hello"})) == {"message": "hello"}


def test_single_object_output_that_is_not_keyed_by_its_id() -> None:
    process = make_process({"id": "summary", "schema": {"type": "object"}})
    value = {"count": 2, "mean": 1.5}
    assert map_results(process, results_line(value)) == {"summary": value}


def test_single_output_without_schema_takes_any_value() -> None:
    process = make_process({"id": "anything"})
    assert map_results(process, results_line([1, "a", None])) == {"anything": [1, "a", None]}
    assert map_results(process, results_line(None)) == {"anything": None}


def test_several_outputs_from_an_object_keyed_by_output_ids() -> None:
    process = make_process(
        {"id": "count", "schema": {"type": "integer"}},
        {"id": "mean", "schema": {"type": "number"}},
    )
    assert map_results(process, results_line({"count": 3, "mean": 2.0})) == {
        "count": 3,
        "mean": 2.0,
    }
    # a subset of the outputs is fine
    assert map_results(process, results_line({"mean": 2.0})) == {"mean": 2.0}


@pytest.mark.parametrize("value", [{"count": 3, "other": 1}, {}, [3, 2.0], 3, "text", None])
def test_non_matching_value_for_several_outputs(value: Any) -> None:
    process = make_process({"id": "count"}, {"id": "mean"})
    with pytest.raises(ResultsError) as caught:
        map_results(process, results_line(value))
    assert "count" in str(caught.value) and "mean" in str(caught.value)


@pytest.mark.parametrize(
    "last_line",
    [None, "", "all done", '{"progress": 100}', '{"result": 1}', '{"plugin_results": 1'],
)
def test_no_plugin_results_line_with_declared_outputs(last_line: str | None) -> None:
    process = make_process({"id": "message"})
    with pytest.raises(ResultsError, match="plugin_results"):
        map_results(process, last_line)


def test_no_outputs_declared_and_no_results() -> None:
    assert map_results(make_process(), None) == {}
    assert map_results(make_process(), "finished") == {}


def test_no_outputs_declared_but_a_value_returned() -> None:
    # Go-era files often declare no outputs and still return something.
    assert map_results(make_process(), results_line("Hello World")) == {"result": "Hello World"}
    assert map_results(make_process(), results_line({"a": 1})) == {"result": {"a": 1}}


def test_value_invalid_against_the_output_schema() -> None:
    process = make_process({"id": "count", "schema": {"type": "integer", "minimum": 0}})
    with pytest.raises(ResultsError, match="'count'"):
        map_results(process, results_line(-1))
    with pytest.raises(ResultsError, match="'count'"):
        map_results(process, results_line({"count": "three"}))


def test_one_invalid_output_among_several() -> None:
    process = make_process(
        {"id": "count", "schema": {"type": "integer"}},
        {"id": "mean", "schema": {"type": "number"}},
    )
    with pytest.raises(ResultsError, match="'mean'"):
        map_results(process, results_line({"count": 3, "mean": "high"}))


def test_output_from_literal_data_domain_is_not_checked() -> None:
    # outputs have no literalDataDomain: without `schema:` any value is accepted
    process = make_process({"id": "out", "output": {"transmissionMode": ["value"]}})
    assert map_results(process, results_line(5)) == {"out": 5}


# -- the log ---------------------------------------------------------------------------


def _lines(log: JobLog) -> list[dict[str, str]]:
    path, size, kept = log.readable()
    if path is None:
        return kept
    return file_page(path, size, 0, 10**9, 10**9).lines


def test_log_keeps_lines_in_order_with_their_stream(tmp_path: Path) -> None:
    log = JobLog(tmp_path / "job.jsonl")
    log.add(T0, "stdout", "one")
    log.add(T0, "stderr", "two")
    assert _lines(log) == [
        {"time": T0.isoformat(), "stream": "stdout", "text": "one"},
        {"time": T0.isoformat(), "stream": "stderr", "text": "two"},
    ]
    log.close()


def test_log_keeps_last_stdout_and_last_stderr_lines() -> None:
    log = JobLog()
    log.add(T0, "stdout", "first out")
    log.add(T0, "stderr", "first err")
    log.add(T0, "stdout", results_line(1) + "  ")
    log.add(T0, "stderr", "last err\n")
    # blank lines do not hide the last real one
    log.add(T0, "stdout", "   ")
    log.add(T0, "stderr", "")
    assert log.last_stdout == results_line(1)
    assert log.last_stderr == "last err"
    assert map_results(make_process({"id": "x"}), log.last_stdout) == {"x": 1}


def test_empty_log(tmp_path: Path) -> None:
    log = JobLog(tmp_path / "job.jsonl")
    assert (log.last_stdout, log.last_stderr) == (None, None)
    log.close()
    assert not log.written
    assert not (tmp_path / "job.jsonl").exists()


def test_lines_printed_out_of_order_are_kept_in_time_order(tmp_path: Path) -> None:
    log = JobLog(tmp_path / "job.jsonl")
    log.add(T0, "stdout", "start")  # written at once
    log.add(T0.replace(second=5), "stdout", "second")
    log.add(T0.replace(second=2), "stderr", "first")
    assert [r["text"] for r in _lines(log)] == ["start", "first", "second"]
    log.close()


def test_finding_7_a_long_log_keeps_memory_bounded_and_its_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the size cap, lines are left out (counted) and the last ones kept."""
    monkeypatch.setattr(job_log, "MAX_LOG_BYTES", 2000)
    monkeypatch.setattr(job_log, "TAIL_LINES", 3)
    log = JobLog(tmp_path / "job.jsonl")
    for n in range(300_000):
        log.add(T0, "stdout", f"line {n}")
    # what waits in memory is a short buffer and the tail, whatever was printed
    assert len(log._pending) < job_log.FLUSH_LINES and len(log._tail) <= 3
    assert log.last_stdout == "line 299999"
    log.close()
    records = parse_log((tmp_path / "job.jsonl").read_bytes())
    assert records[0]["text"] == "line 0"
    note = records[-4]
    assert note["stream"] == "server" and "lines left out" in note["text"]
    assert [r["text"] for r in records[-3:]] == ["line 299997", "line 299998", "line 299999"]
    assert (tmp_path / "job.jsonl").stat().st_size < 3000


def test_a_very_long_line_is_cut_in_the_log_but_kept_for_the_results(tmp_path: Path) -> None:
    log = JobLog(tmp_path / "job.jsonl")
    big = json.dumps({"plugin_results": "x" * 200_000})
    log.add(T0, "stdout", big)
    assert log.results_line == big
    (record,) = _lines(log)
    assert len(record["text"]) < 70_000 and "characters cut" in record["text"]
    log.close()


def test_log_pages_by_line_and_size(tmp_path: Path) -> None:
    log = JobLog(tmp_path / "job.jsonl")
    for n in range(25):
        log.add(T0, "stdout", f"line {n}")
    log.close()
    path = tmp_path / "job.jsonl"
    first = file_page(path, None, 0, 10, 10**6)
    assert [r["text"] for r in first.lines] == [f"line {n}" for n in range(10)] and first.more
    last = file_page(path, None, 20, 10, 10**6)
    assert [r["text"] for r in last.lines] == [f"line {n}" for n in range(20, 25)]
    assert not last.more
    # a size cap cuts the page short, but never below one line
    small = file_page(path, None, 0, 10, 1)
    assert len(small.lines) == 1 and small.more


def test_log_round_trips_through_jsonl(tmp_path: Path) -> None:
    log = JobLog(tmp_path / "job.jsonl")
    texts = ["plain", 'quotes " and \\ backslash', "unicode: é ✓", "", "  indented  "]
    for n, text in enumerate(texts):
        log.add(T0, "stdout" if n % 2 else "stderr", text)
    log.close()
    data = (tmp_path / "job.jsonl").read_bytes()
    assert data.count(b"\n") == len(texts)
    assert [r["text"] for r in parse_log(data)] == texts
