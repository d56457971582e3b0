"""The Prefer request header (RFC 7240) and the execution mode it leads to."""

from __future__ import annotations

import math
from dataclasses import dataclass

from process_api.jobs.model import Mode
from process_api.processes.registry import Process

#: the longest `wait=N` honoured, in seconds.
MAX_WAIT = 3600.0


@dataclass(frozen=True)
class Preferences:
    respond_async: bool = False
    wait: float | None = None


def parse_prefer(values: list[str]) -> Preferences:
    """Reads every Prefer header; unknown or malformed preferences are ignored, as the RFC says."""
    respond_async = False
    wait: float | None = None
    for header in values:
        for item in header.split(","):
            token, _, value = item.split(";")[0].strip().partition("=")
            token = token.strip().lower()
            if token == "respond-async":
                respond_async = True
            elif token == "wait":
                try:
                    seconds = float(value.strip().strip('"'))
                except ValueError:
                    continue
                if not math.isnan(seconds):
                    wait = min(max(seconds, 0.0), MAX_WAIT)
    return Preferences(respond_async, wait)


@dataclass(frozen=True)
class Decision:
    mode: Mode
    #: how long a sync request waits before answering as async (wait=N), if at all.
    wait: float | None
    applied: str | None


def decide_mode(process: Process, prefs: Preferences) -> Decision:
    """Async when asked and allowed or when sync is not allowed; sync otherwise."""
    if prefs.respond_async and process.allows_async:
        return Decision("async", None, "respond-async")
    if not process.allows_sync:
        return Decision("async", None, None)
    if prefs.wait is not None and process.allows_async:
        return Decision("sync", prefs.wait, f"wait={prefs.wait:g}")
    return Decision("sync", None, None)
