"""Settings read from the environment the way the README's table writes them."""

from __future__ import annotations

import pytest

from process_api.settings import SettingsError, load_settings


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


def test_db_url_selects_postgresql_with_its_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DB_URL", raising=False)
    assert load_settings(None).database_url is None  # SQLite, at DB_PATH
    monkeypatch.setenv("DB_URL", "postgresql://jobs:p%40ss@db.internal:5432/jobs")
    settings = load_settings(None)
    # a libpq-style URL gets the async driver; the password keeps its escaping
    assert settings.database_url == "postgresql+asyncpg://jobs:p%40ss@db.internal:5432/jobs"
    assert "p%40ss" not in repr(settings) and "p@ss" not in repr(settings)
    monkeypatch.setenv("DB_URL", "postgresql+psycopg://jobs@db.internal/jobs")
    assert load_settings(None).database_url == "postgresql+psycopg://jobs@db.internal/jobs"


@pytest.mark.parametrize(
    "url", ["mysql://jobs:hunter2-secret@db/jobs", "sqlite:///jobs.sqlite", "jobs:hunter2-secret"]
)
def test_a_db_url_not_for_postgresql_is_refused_without_repeating_it(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("DB_URL", url)
    with pytest.raises(SettingsError, match="DB_URL") as caught:
        load_settings(None)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"AUTH_SERVICE": "oidc", "OIDC_ISSUER": "https://id.example.org"}, "OIDC_AUDIENCE"),
        ({"AUTH_SERVICE": "keycloak"}, "KEYCLOAK_PUBLIC_KEYS_URL"),
        ({"AUTH_SERVICE": "keycloak", "KEYCLOAK_PUBLIC_KEYS_URL": "https://kc/certs"}, "realms"),
        ({"AUTH_SERVICE": "keys", "OIDC_ALGORITHMS": "RS256,HS256"}, "HS256"),
        ({"AUTH_SERVICE": "keys", "OIDC_ALGORITHMS": "none"}, "none"),
        ({"AUTH_SERVICE": "ldap"}, "AUTH_SERVICE"),
        ({"AUTH_SERVICE": "keys", "AUTH_LEVEL": "3"}, "AUTH_LEVEL"),
    ],
)
def test_authentication_settings_that_cannot_work_stop_the_start(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=named):
        load_settings(None)


def test_authentication_protects_everything_but_discovery_once_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings(None).protection == 0
    monkeypatch.setenv("AUTH_SERVICE", "keys")
    assert load_settings(None).protection == 2
    monkeypatch.setenv("AUTH_LEVEL", "1")  # as the Go server's levels
    assert load_settings(None).protection == 1
    monkeypatch.setenv("AUTH_LEVEL", "")  # an empty line of a .env file: the default
    assert load_settings(None).protection == 2


def test_deploying_is_for_admins_once_signed_in_and_off_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AUTH_SERVICE", "ALLOW_DEPLOY", "DEPLOY_HOSTS", "OIDC_ISSUER", "OIDC_AUDIENCE"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(None)
    assert not settings.deploying
    assert settings.deployable_hosts == {"docker", "local", "aws-batch"}
    monkeypatch.setenv("ALLOW_DEPLOY", "true")
    assert load_settings(None).deploying
    monkeypatch.delenv("ALLOW_DEPLOY")
    monkeypatch.setenv("AUTH_SERVICE", "oidc")
    monkeypatch.setenv("OIDC_ISSUER", "http://127.0.0.1:1/realm")
    monkeypatch.setenv("OIDC_AUDIENCE", "process-api")
    assert load_settings(None).deploying
    monkeypatch.setenv("AUTH_LEVEL", "0")  # signed in, but nothing protected: nobody deploys
    assert not load_settings(None).deploying
    monkeypatch.setenv("DEPLOY_HOSTS", "local, subprocess")
    assert load_settings(None).deployable_hosts == {"docker", "local", "subprocess"}
    monkeypatch.setenv("DEPLOY_HOSTS", "docker,kubernetes")
    with pytest.raises(SettingsError, match="kubernetes"):
        load_settings(None)
