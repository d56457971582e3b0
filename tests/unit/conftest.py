"""Fixtures of the unit tests: a real SQLite job store in the test's directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from process_api.store.sql import SqlJobStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlJobStore]:
    store = SqlJobStore.sqlite(tmp_path / "jobs.sqlite")
    await store.open()
    yield store
    await store.close()
