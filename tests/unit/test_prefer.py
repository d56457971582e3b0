"""The Prefer header (RFC 7240) and the execution mode it leads to."""

from __future__ import annotations

from pathlib import Path

import pytest

from process_api.api.prefer import MAX_WAIT, Decision, Preferences, decide_mode, parse_prefer
from process_api.processes.config import ProcessConfig
from process_api.processes.registry import Process


def make_process(*job_control: str) -> Process:
    config = ProcessConfig.model_validate(
        {
            "info": {"id": "p", "jobControlOptions": list(job_control)},
            "host": {"type": "subprocess", "command": ["true"]},
        }
    )
    return Process.from_config(config, Path("x.yml"))


BOTH = make_process("sync-execute", "async-execute")
SYNC_ONLY = make_process("sync-execute")
ASYNC_ONLY = make_process("async-execute")


# -- parse_prefer ----------------------------------------------------------------------


def test_no_header() -> None:
    assert parse_prefer([]) == Preferences(respond_async=False, wait=None)
    assert parse_prefer([""]) == Preferences(respond_async=False, wait=None)


@pytest.mark.parametrize("header", ["respond-async", "Respond-Async", "  respond-async  "])
def test_respond_async(header: str) -> None:
    assert parse_prefer([header]) == Preferences(respond_async=True, wait=None)


@pytest.mark.parametrize(
    ("header", "wait"),
    [("wait=10", 10.0), ("wait=0", 0.0), ("wait = 5", 5.0), ('wait="7"', 7.0), ("WAIT=3", 3.0)],
)
def test_wait(header: str, wait: float) -> None:
    assert parse_prefer([header]) == Preferences(respond_async=False, wait=wait)


def test_wait_is_capped() -> None:
    assert parse_prefer(["wait=99999999"]).wait == MAX_WAIT
    assert parse_prefer(["wait=inf"]).wait == MAX_WAIT
    assert parse_prefer(["wait=-5"]).wait == 0.0


def test_several_preferences_in_one_header() -> None:
    assert parse_prefer(["respond-async, wait=10"]) == Preferences(True, 10.0)
    assert parse_prefer(["handling=lenient,wait=3,respond-async"]) == Preferences(True, 3.0)


def test_preferences_over_several_headers() -> None:
    assert parse_prefer(["wait=4", "respond-async"]) == Preferences(True, 4.0)
    assert parse_prefer(["return=minimal", "wait=4"]) == Preferences(False, 4.0)


def test_parameters_after_semicolon_are_ignored() -> None:
    assert parse_prefer(["respond-async; foo=bar"]) == Preferences(True, None)
    assert parse_prefer(["wait=10;unit=ms, respond-async;x"]) == Preferences(True, 10.0)
    # a parameter is not a preference of its own
    assert parse_prefer(["return=minimal; wait=10"]) == Preferences(False, None)


@pytest.mark.parametrize("header", ["wait=soon", "wait=", "wait", "wait=10s", "wait=1.5.2"])
def test_malformed_wait_is_ignored(header: str) -> None:
    assert parse_prefer([header]).wait is None


def test_malformed_wait_does_not_hide_the_other_preferences() -> None:
    assert parse_prefer(["wait=soon, respond-async"]) == Preferences(True, None)


def test_nan_wait_is_ignored() -> None:
    assert parse_prefer(["wait=nan"]).wait is None


def test_unknown_preferences_are_ignored() -> None:
    assert parse_prefer(["return=representation, handling=strict"]) == Preferences(False, None)


# -- decide_mode -----------------------------------------------------------------------


def test_async_only_process_runs_async_without_preference_applied() -> None:
    assert decide_mode(ASYNC_ONLY, Preferences()) == Decision("async", None, None)
    assert decide_mode(ASYNC_ONLY, Preferences(wait=5.0)) == Decision("async", None, None)


def test_async_only_process_with_respond_async() -> None:
    # asked for and allowed: the preference was honoured
    decision = decide_mode(ASYNC_ONLY, Preferences(respond_async=True))
    assert decision.mode == "async"


def test_sync_only_process_ignores_respond_async() -> None:
    assert decide_mode(SYNC_ONLY, Preferences(respond_async=True)) == Decision("sync", None, None)


def test_sync_only_process_ignores_wait() -> None:
    # it cannot turn into an async job when the wait runs out
    assert decide_mode(SYNC_ONLY, Preferences(wait=5.0)) == Decision("sync", None, None)


def test_both_allowed_with_respond_async() -> None:
    decision = decide_mode(BOTH, Preferences(respond_async=True))
    assert decision == Decision("async", None, "respond-async")


def test_both_allowed_without_preference_is_sync() -> None:
    assert decide_mode(BOTH, Preferences()) == Decision("sync", None, None)


@pytest.mark.parametrize(("wait", "applied"), [(10.0, "wait=10"), (2.5, "wait=2.5"), (0, "wait=0")])
def test_both_allowed_with_wait(wait: float, applied: str) -> None:
    assert decide_mode(BOTH, Preferences(wait=wait)) == Decision("sync", wait, applied)


def test_respond_async_wins_over_wait() -> None:
    decision = decide_mode(BOTH, parse_prefer(["wait=10, respond-async"]))
    assert decision == Decision("async", None, "respond-async")


def test_header_to_decision() -> None:
    assert decide_mode(BOTH, parse_prefer(["wait=30"])).applied == "wait=30"
