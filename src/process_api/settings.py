"""The server's settings: the one place that reads the environment.

Precedence, highest first: command-line flags, environment variables, the dotenv
file named by `-e` (default `.env`), the defaults below. Names follow the Go
process-api where it had one (`PLUGINS_DIR`, `API_PORT`, `DB_PATH`, `LOG_LEVEL`),
so existing `.env` files keep working.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from dotenv import dotenv_values
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from process_api.server_log import LogFormat

#: the SQLAlchemy drivers DB_URL may name.
DATABASE_DRIVERS = ("postgresql+asyncpg", "postgresql+psycopg")

#: the signature algorithms a token may be signed with: public-key ones only, so that a
#: public key can never serve as a shared secret.
PUBLIC_KEY_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip

#: the host types of process files (see hosts/__init__.py).
HOST_TYPES = ("aws-batch", "docker", "local", "subprocess")

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    """Everything the server can be configured with; see the README's table."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    plugins_dir: Path = Field(Path("plugins"), alias="PLUGINS_DIR")
    host: str = Field("127.0.0.1", alias="API_HOST")
    port: int = Field(5050, alias="API_PORT", ge=0, le=65535)
    log_level: LogLevel = Field("INFO", alias="LOG_LEVEL")
    #: server processes answering on the port, sharing the job store (1: no supervisor).
    workers: int = Field(1, alias="WORKERS", ge=1, le=256)
    #: `json`: one JSON object per line, with job_id and process_id on lines about a job.
    log_format: LogFormat = Field("text", alias="LOG_FORMAT")
    data_dir: Path = Field(Path(".data"), alias="DATA_DIR")
    db_path: Path | None = Field(None, alias="DB_PATH")
    #: a PostgreSQL job database (an SQLAlchemy URL); SQLite at DB_PATH when unset.
    db_url: SecretStr | None = Field(None, alias="DB_URL")
    skip_invalid: bool = Field(False, alias="SKIP_INVALID")
    api_name: str = Field("process-api", alias="API_NAME")
    public_url: str | None = Field(None, alias="PUBLIC_URL")
    docker_network: str = Field("none", alias="DOCKER_NETWORK")
    #: whether containers may share the host's network (`network: host`); refused by default.
    docker_allow_host_network: bool = Field(False, alias="DOCKER_ALLOW_HOST_NETWORK")
    #: the most processes and threads one container may run (a process may ask for fewer).
    docker_pids_limit: int = Field(1024, alias="DOCKER_PIDS_LIMIT", ge=1)
    #: capabilities a process file may keep beyond Docker's default set, comma-separated.
    docker_allowed_capabilities: str = Field("", alias="DOCKER_ALLOWED_CAPABILITIES")
    #: where containers' secrets are written as files (a tmpfs: they never reach a disk).
    docker_secrets_dir: Path = Field(
        Path("/dev/shm/process-api-secrets"), alias="DOCKER_SECRETS_DIR"
    )
    docker_pull_policy: Literal["if-not-present", "always", "never"] = Field(
        "if-not-present", alias="DOCKER_PULL_POLICY"
    )
    #: what local containers may use together; the machine's CPUs and memory if unset.
    local_cpus: float | None = Field(None, alias="LOCAL_CPUS", gt=0)
    local_memory: float | None = Field(None, alias="LOCAL_MEMORY", gt=0)
    #: what a container counts for (and is limited to) when its process sets no maxResources.
    docker_default_cpus: float = Field(1.0, alias="DOCKER_DEFAULT_CPUS", gt=0)
    docker_default_memory: float = Field(1024.0, alias="DOCKER_DEFAULT_MEMORY", gt=0)
    #: callbacks to loopback, private and link-local addresses (refused by default).
    #: jobs that may run at once on each host; later ones wait, first come first served.
    subprocess_max_jobs: int = Field(
        default_factory=lambda: 4 * (os.cpu_count() or 1), alias="SUBPROCESS_MAX_JOBS", ge=1
    )
    docker_max_jobs: int = Field(64, alias="DOCKER_MAX_JOBS", ge=1)
    batch_max_jobs: int = Field(1000, alias="BATCH_MAX_JOBS", ge=1)
    callback_allow_private: bool = Field(False, alias="CALLBACK_ALLOW_PRIVATE")
    callback_timeout: float = Field(10.0, alias="CALLBACK_TIMEOUT", gt=0)
    callback_attempts: int = Field(4, alias="CALLBACK_ATTEMPTS", ge=1, le=20)
    secrets_file: Path | None = Field(None, alias="SECRETS_FILE")
    # AWS, in the names of the Go server's .env files; credentials come from the standard chain.
    aws_region: str | None = Field(None, alias="AWS_DEFAULT_REGION", validate_default=True)
    aws_endpoint_url: str | None = Field(None, alias="AWS_ENDPOINT_URL")
    #: storage in this S3 bucket when set (else the local directory).
    s3_bucket: str | None = Field(None, alias="S3_BUCKET")
    s3_results_dir: str = Field("results", alias="S3_RESULTS_DIR")
    s3_logs_dir: str = Field("logs", alias="S3_LOGS_DIR")
    s3_meta_dir: str = Field("metadata", alias="S3_META_DIR")
    batch_log_group: str = Field("/aws/batch/job", alias="BATCH_LOG_STREAM_GROUP")
    batch_poll_interval: float = Field(5.0, alias="BATCH_POLL_INTERVAL", gt=0)
    #: how file results are handed out: by the server, or by a redirect to a presigned S3 URL.
    results_redirect: Literal["none", "presigned"] = Field("none", alias="RESULTS_REDIRECT")
    #: seconds a presigned URL of a file result stays valid (S3 allows at most 7 days).
    results_url_expiry: int = Field(3600, alias="RESULTS_URL_EXPIRY", ge=1, le=604800)
    #: days after which the results, logs and metadata of finished jobs expire; none if unset.
    expiry_days: float | None = Field(None, alias="EXPIRY_DAYS", gt=0)
    #: seconds after which the jobs of an instance that stopped renewing its lease are taken
    #: over by another instance (one on the same machine whose process is gone, at once).
    instance_lease: float = Field(30.0, alias="INSTANCE_LEASE", ge=3, le=3600)
    instance_id: str | None = Field(None, alias="INSTANCE_ID")
    job_env_passthrough: Annotated[tuple[str, ...], NoDecode] = Field(
        ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR"), alias="JOB_ENV_PASSTHROUGH"
    )
    #: the largest request body accepted, in bytes (413 above it).
    max_request_bytes: int = Field(1024 * 1024, alias="MAX_REQUEST_BYTES", ge=1)
    #: the `Host` values the server answers for (`name`, `name:port`, `*.domain`); any if empty.
    trusted_hosts: Annotated[tuple[str, ...], NoDecode] = Field((), alias="TRUSTED_HOSTS")

    # Authentication, in the names of the Go server's settings where it had them.
    #: "" (none), "oidc" (any OpenID Connect provider), "keycloak" (the Go server's settings),
    #: "keys" (API keys only).
    auth_service: Literal["", "oidc", "keycloak", "keys"] = Field("", alias="AUTH_SERVICE")
    #: 0: nothing protected; 1: execution, dismiss and the job list; 2 (the default once
    #: authentication is on): every route but those of discovery and health.
    auth_level: int | None = Field(None, alias="AUTH_LEVEL", ge=0, le=2)
    oidc_issuer: str | None = Field(None, alias="OIDC_ISSUER")
    oidc_audience: str | None = Field(None, alias="OIDC_AUDIENCE")
    #: the signature algorithms accepted; only public-key ones may be named.
    oidc_algorithms: Annotated[tuple[str, ...], NoDecode] = Field(
        ("RS256", "ES256"), alias="OIDC_ALGORITHMS"
    )
    #: the fewest seconds between two fetches of the provider's keys for an unknown key id.
    oidc_keys_refresh: float = Field(30.0, alias="OIDC_KEYS_REFRESH", ge=0)
    keycloak_public_keys_url: str | None = Field(None, alias="KEYCLOAK_PUBLIC_KEYS_URL")
    #: the client the HTML pages sign in as (authorization code flow with PKCE); no browser
    #: sign-in if unset. A confidential client also has a secret.
    oidc_client_id: str | None = Field(None, alias="OIDC_CLIENT_ID")
    oidc_client_secret: SecretStr | None = Field(None, alias="OIDC_CLIENT_SECRET")
    #: seconds a browser stays signed in.
    session_lifetime: int = Field(8 * 3600, alias="SESSION_LIFETIME", ge=60)
    #: where roles are in a token: dotted claim paths, comma-separated.
    auth_roles_claims: Annotated[tuple[str, ...], NoDecode] = Field(
        ("realm_access.roles",), alias="AUTH_ROLES_CLAIMS"
    )
    #: the role that sees and dismisses every job and may use every process.
    auth_admin_role: str = Field("admin", alias="AUTH_ADMIN_ROLE")
    #: the role of a service that may act for a user named in X-ProcessAPI-User-Email.
    auth_service_role: str | None = Field(None, alias="AUTH_SERVICE_ROLE")
    #: the origins whose scripts may call the API from a browser (CORS); none if empty.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field((), alias="CORS_ORIGINS")
    #: the job list counts its matches (numberMatched) up to this many, and leaves the
    #: number out above: a count of every match reads them all, so it grows with the store.
    #: The default is the largest page: a count reads no more than a page may.
    job_list_count_max: int = Field(1000, alias="JOB_LIST_COUNT_MAX", ge=1)
    #: the most jobs one user may have accepted or running at once; no limit if unset.
    user_max_active_jobs: int | None = Field(None, alias="USER_MAX_ACTIVE_JOBS", ge=1)
    #: whether processes may be deployed over the API: by admins once authentication is on,
    #: by nobody without it unless set to true (deploying means running any image).
    allow_deploy: bool | None = Field(None, alias="ALLOW_DEPLOY")
    #: the host types a deployed process may name; `subprocess` runs commands on this machine.
    deploy_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        ("docker", "aws-batch"), alias="DEPLOY_HOSTS"
    )
    #: the server variables and secrets a deployed process may name (envVars, secrets): none
    #: by default, since a deployer chooses the image that would read them.
    deploy_env_vars: Annotated[tuple[str, ...], NoDecode] = Field((), alias="DEPLOY_ENV_VARS")
    #: job status and log streams (Server-Sent Events, followed logs) open at once.
    max_streams: int = Field(200, alias="MAX_STREAMS", ge=1)
    #: whether the processes directory is watched and read again when its files change.
    watch_processes: bool = Field(True, alias="WATCH_PROCESSES")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_format(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("job_env_passthrough", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @field_validator(
        "trusted_hosts",
        "oidc_algorithms",
        "auth_roles_claims",
        "cors_origins",
        "deploy_hosts",
        "deploy_env_vars",
        mode="before",
    )
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(host.strip() for host in value.split(",") if host.strip())
        return value

    @field_validator("deploy_hosts")
    @classmethod
    def _known_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in HOST_TYPES]
        if unknown:
            raise ValueError(f"unknown host type(s) {unknown}: known are {', '.join(HOST_TYPES)}")
        return value

    @field_validator("aws_region", mode="before")
    @classmethod
    def _region(cls, value: Any) -> Any:
        # AWS_REGION is the other name the SDKs and the Go server's files use.
        return value or os.environ.get("AWS_REGION") or None

    @field_validator("s3_results_dir", "s3_logs_dir", "s3_meta_dir")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.strip("/"):
            raise ValueError("must name a folder")
        return value.strip("/")

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Processes run elsewhere (their file's directory, a container): the paths they are
        # given below the data directory must not depend on where the server started.
        return value.expanduser().absolute()

    @field_validator("expiry_days", mode="before")
    @classmethod
    def _no_expiry(cls, value: Any) -> Any:
        return None if value in ("", "0", 0) else value

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _host_network_allowed(self) -> Settings:
        if self.docker_network == "host" and not self.docker_allow_host_network:
            raise ValueError("DOCKER_NETWORK=host needs DOCKER_ALLOW_HOST_NETWORK=true")
        return self

    @field_validator("auth_level", "user_max_active_jobs", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("oidc_algorithms")
    @classmethod
    def _public_key_algorithms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        refused = [name for name in value if name not in PUBLIC_KEY_ALGORITHMS]
        if refused or not value:
            raise ValueError(
                f"accepts only public-key algorithms ({', '.join(PUBLIC_KEY_ALGORITHMS)}), "
                f"not {', '.join(refused) or 'none'}"
            )
        return value

    @model_validator(mode="after")
    def _auth_complete(self) -> Settings:
        if self.auth_service == "oidc" and not (self.oidc_issuer and self.oidc_audience):
            raise ValueError("AUTH_SERVICE=oidc needs OIDC_ISSUER and OIDC_AUDIENCE")
        if self.auth_service == "keycloak":
            url = self.keycloak_public_keys_url or ""
            if "/realms/" not in url:
                raise ValueError(
                    "AUTH_SERVICE=keycloak needs KEYCLOAK_PUBLIC_KEYS_URL, the certs URL of "
                    "a realm: https://…/realms/<realm>/protocol/openid-connect/certs"
                )
        return self

    @property
    def browser_sign_in(self) -> bool:
        return self.auth_service in ("oidc", "keycloak") and bool(self.oidc_client_id)

    @property
    def deploying(self) -> bool:
        """Whether processes may be deployed over the API (by admins, when auth is on)."""
        if self.allow_deploy is None:
            return self.protection > 0
        return self.allow_deploy

    @property
    def deployable_hosts(self) -> frozenset[str]:
        """DEPLOY_HOSTS, with `local` and `docker` standing for each other (one host)."""
        hosts = set(self.deploy_hosts)
        if hosts & {"docker", "local"}:
            hosts |= {"docker", "local"}
        return frozenset(hosts)

    @property
    def protection(self) -> int:
        """What AUTH_LEVEL protects: 0 when authentication is off."""
        if not self.auth_service:
            return 0
        return 2 if self.auth_level is None else self.auth_level

    @property
    def database_file(self) -> Path:
        """SQLite database path; `DB_PATH` wins, else a file in the data directory."""
        return self.db_path or self.data_dir / "jobs.sqlite"

    @property
    def database_url(self) -> str | None:
        """The PostgreSQL URL of DB_URL with its driver (asyncpg unless it names psycopg),
        or None for SQLite. A bad URL is refused without repeating it: it holds a password."""
        if self.db_url is None or not self.db_url.get_secret_value().strip():
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        example = "postgresql+asyncpg://user:password@host:5432/database"
        try:
            url = make_url(self.db_url.get_secret_value().strip())
        except ArgumentError:
            raise SettingsError(f"DB_URL is not a database URL such as {example}") from None
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+asyncpg")
        if url.drivername not in DATABASE_DRIVERS:
            raise SettingsError(
                f"DB_URL names {url.drivername!r}: use {example} (or postgresql+psycopg://…); "
                "for SQLite, unset DB_URL and set DB_PATH"
            )
        return url.render_as_string(hide_password=False)

    @property
    def storage_dir(self) -> Path:
        """Root of the local storage of logs and results."""
        return self.data_dir / "storage"

    @property
    def instance(self) -> str:
        """Names this server's containers; stable across restarts on the same database."""
        if self.instance_id:
            return self.instance_id
        database = str(self.database_file.resolve())
        if self.database_url is not None:
            from sqlalchemy.engine import make_url

            database = make_url(self.database_url).render_as_string(hide_password=True)
        digest = hashlib.sha256(database.encode()).hexdigest()
        return f"{self.api_name}-{digest[:12]}"

    def docker_environment(self) -> dict[str, str]:
        """The standard Docker client variables (DOCKER_HOST, …) of the server's environment."""
        return {k: v for k, v in os.environ.items() if k.startswith("DOCKER_")}

    def secret_values(self, names: list[str]) -> dict[str, str]:
        """Secret values by name: the secrets file first, then the server's environment."""
        from_file: dict[str, str | None] = {}
        if self.secrets_file is not None and self.secrets_file.is_file():
            from_file = dotenv_values(self.secrets_file)
        found = {}
        for name in names:
            value = from_file.get(name) or os.environ.get(name)
            if value is not None:
                found[name] = value
        return found

    def server_variables(self, names: tuple[str, ...] | list[str]) -> dict[str, str]:
        """Those of the server's environment variables that a job is allowed to see."""
        return {name: os.environ[name] for name in names if name in os.environ}


class SettingsError(Exception):
    """A setting or the dotenv file is unusable; the message says which."""


def load_settings(env_file: str | None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Builds the settings from a dotenv file, the environment and flag overrides.

    Values from the dotenv file are also exported to the process environment (as
    the Go server did), so processes that copy variables by name find them; a
    variable already set in the environment wins over the file.
    """
    path = Path(env_file) if env_file else Path(".env")
    if path.is_file():
        for name, value in dotenv_values(path).items():
            if value is not None:
                os.environ.setdefault(name, value)
    elif env_file:
        raise SettingsError(f"dotenv file not found: {env_file}")
    values = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        settings = Settings(**values)
    except ValueError as exc:
        raise SettingsError(str(exc)) from exc
    settings.database_url  # noqa: B018 -- refuses a bad DB_URL now, not at the first job
    return settings
