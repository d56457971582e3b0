"""Fixtures the end-to-end modules share."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import chromium
from tests.conftest import ROOT
from tests.e2e.test_callbacks import Receiver
from tests.e2e.test_instances import RECORDER_PY, RECORDER_YML, SLEEPER_PY, SLEEPER_YML


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def sleeper_plugins(tmp_path: Path) -> Path:
    """A `sleeper` subprocess process that says its pid and machine, then sleeps; and a
    `recorder` that appends its job id to `runs.txt` there."""
    folder = tmp_path / "sleeper-plugins"
    folder.mkdir()
    (folder / "sleeper.yml").write_text(SLEEPER_YML)
    (folder / "sleeper.py").write_text(SLEEPER_PY)
    (folder / "recorder.yml").write_text(RECORDER_YML)
    (folder / "recorder.py").write_text(RECORDER_PY)
    return folder


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium, one per test module (its pages' state stays in that module)."""
    with chromium(tmp_path_factory.mktemp("chromium")) as driver:
        yield driver


@pytest.fixture(scope="module")
def scriptless_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium with JavaScript off: the pages must still read."""
    with chromium(tmp_path_factory.mktemp("chromium"), scripts=False) as driver:
        yield driver


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where the browser tests photograph the pages: the run's artifacts, kept after it
    (TEST_ARTIFACTS, by default test-artifacts/ in the checkout, which git ignores)."""
    folder = Path(os.environ.get("TEST_ARTIFACTS") or ROOT / "test-artifacts") / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
