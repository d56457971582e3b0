"""Settings read from the environment the way the README's table writes them."""

from __future__ import annotations

import pytest

from process_api.settings import load_settings


def test_comma_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A comma list in the environment is a list of names, not JSON (it crashed the start)."""
    monkeypatch.setenv("JOB_ENV_PASSTHROUGH", "PATH, HOME")
    monkeypatch.setenv("TRUSTED_HOSTS", "api.example.org,localhost:5050")
    settings = load_settings(None)
    assert settings.job_env_passthrough == ("PATH", "HOME")
    assert settings.trusted_hosts == ("api.example.org", "localhost:5050")


def test_job_caps_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUBPROCESS_MAX_JOBS", "3")
    settings = load_settings(None)
    assert settings.subprocess_max_jobs == 3
    assert settings.docker_max_jobs >= 1 and settings.batch_max_jobs >= 1
    monkeypatch.setenv("SUBPROCESS_MAX_JOBS", "0")
    with pytest.raises(Exception, match="SUBPROCESS_MAX_JOBS"):
        load_settings(None)
