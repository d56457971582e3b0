"""The process file format: the Go process-api's YAML, extended with JSON Schemas.

Strict: an unknown key anywhere is an error, since a misspelt key (`minOcurs`)
would otherwise silently give the process a default. Every key of the Go
server's format is known, used or not (`inputId` on outputs, `possibleValues`),
so its files load unchanged. The `host:` section's fields beyond `type` belong
to the host type, and each host checks them (see Host.check).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from jsonschema import Draft202012Validator, SchemaError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

JobControl = Literal["sync-execute", "async-execute", "dismiss"]
Transmission = Literal["value", "reference"]

#: what an id may look like: it is a path segment of every process URL.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Info(Section):
    id: str = Field(pattern=ID_PATTERN, max_length=128)
    version: str = Field("0.0.0", max_length=64)  # a column of the job database
    title: str | None = None
    description: str | None = None
    keywords: list[str] = []
    jobControlOptions: list[JobControl] = ["sync-execute", "async-execute"]
    outputTransmission: list[Transmission] = ["value"]

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        # YAML reads `version: 1.0` as a number; the description needs a string.
        return str(value) if isinstance(value, int | float) else value

    @field_validator("keywords", "jobControlOptions", "outputTransmission", mode="before")
    @classmethod
    def _empty_list(cls, value: Any, info: Any) -> Any:
        # `outputTransmission:` with nothing after it is common in existing files.
        if value is None:
            return cls.model_fields[info.field_name].default
        return value

    @field_validator("jobControlOptions")
    @classmethod
    def _runnable(cls, value: list[str]) -> list[str]:
        if not {"sync-execute", "async-execute"} & set(value):
            raise ValueError("must allow sync-execute, async-execute or both")
        return value


class Host(Section):
    """The execution platform; its other fields belong to the host type."""

    model_config = ConfigDict(extra="allow")
    type: str


PullPolicy = Literal["if-not-present", "always", "never"]
#: names of environment variables (and of secrets).
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class MaxResources(Section):
    cpus: float | None = Field(None, gt=0, allow_inf_nan=False)
    #: megabytes
    memory: float | None = Field(None, gt=0, allow_inf_nan=False)
    #: processes and threads (docker: at most the server's DOCKER_PIDS_LIMIT, its default).
    pids: int | None = Field(None, gt=0)


class Container(Section):
    """How a container host runs the process; the fields after maxResources are ours."""

    image: str = ""
    command: list[str] = []
    envVars: list[Annotated[str, Field(pattern=ENV_NAME)]] = []
    maxResources: MaxResources | None = None
    #: names of secrets the container gets (docker: as files, NAME_FILE naming each one's path);
    #: never shown anywhere.
    secrets: list[Annotated[str, Field(pattern=ENV_NAME)]] = []
    #: Linux capabilities to keep (all others are dropped); docker allows its default set.
    capabilities: list[str] = []
    #: Docker network mode (none, bridge, a network name, or host if the server allows it);
    #: the server's default (none) if unset.
    network: str | None = None
    pullPolicy: PullPolicy | None = None
    user: str | None = None

    @field_validator("command", "envVars", "secrets", "capabilities", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("maxResources", mode="before")
    @classmethod
    def _empty_resources(cls, value: Any) -> Any:
        return None if value == {} else value


class ValueDefinition(Section):
    anyValue: bool | None = None
    allowedValues: list[Any] | None = None
    #: the Go server's; it never checked inputs against it, neither does this server.
    possibleValues: list[Any] | None = None


class LiteralDataDomain(Section):
    dataType: Any = None
    valueDefinition: ValueDefinition | None = None
    defaultValue: Any = None


class InputKind(Section):
    literalDataDomain: LiteralDataDomain | None = None


class OutputKind(Section):
    transmissionMode: list[Transmission] | None = None


def _check_schema(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None:
        try:
            Draft202012Validator.check_schema(value)
        except SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
    return value


class Described(Section):
    id: str = Field(pattern=ID_PATTERN, max_length=128)
    title: str | None = None
    description: str | None = None
    keywords: list[str] = []
    schema_: dict[str, Any] | None = Field(None, alias="schema")

    _valid_schema = field_validator("schema_")(_check_schema)


class Input(Described):
    minOccurs: int = Field(1, ge=0)
    maxOccurs: int | Literal["unbounded"] = 1
    input: InputKind | None = None

    @field_validator("maxOccurs", mode="before")
    @classmethod
    def _count_or_unbounded(cls, value: Any) -> Any:
        if value == "unbounded" or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise ValueError("must be a whole number or unbounded")

    @model_validator(mode="after")
    def _occurrences(self) -> Input:
        if isinstance(self.maxOccurs, int) and self.maxOccurs < max(self.minOccurs, 1):
            raise ValueError("maxOccurs must be at least minOccurs and at least 1")
        return self


class Output(Described):
    output: OutputKind | None = None
    #: the Go server's (the input naming where the output goes); unused here.
    inputId: str | None = None


class Access(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: users with one of these roles (and admins); everyone if empty.
    roles: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = []


class ProcessConfig(BaseModel):
    """One process file."""

    model_config = ConfigDict(extra="forbid")

    info: Info
    host: Host
    container: Container | None = None
    inputs: list[Input] = []
    outputs: list[Output] = []
    #: seconds after which a job of the process fails and is stopped.
    timeout: float | None = Field(None, gt=0)
    #: how the process receives its inputs: as the command's last argument (and a file), or
    #: only as the file PROCESS_API_INPUTS_FILE.
    inputsAs: Literal["argument", "file"] = "argument"
    #: who may see and execute the process when authentication is on: everyone by default.
    access: Access = Access()

    @field_validator("inputs", "outputs", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value
