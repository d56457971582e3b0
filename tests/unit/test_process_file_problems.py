"""A strict process-file format: every problem of every file, each with its line, column,
field and a message in plain words; files that are not process files left out, and named."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from process_api.processes.loader import HostChecks, Loaded, load_directory, load_paths
from tests.unit.conftest import write

ROOT = Path(__file__).resolve().parents[2]
DEWBERRY = ROOT / "tests" / "data" / "dewberry-plugins"
EXAMPLES = ROOT / "plugins"

SUBPROCESS = """\
info:
  id: p
host:
  type: subprocess
  command: [python3, run.py]
"""


def lines(loaded: Loaded, directory: Path) -> list[str]:
    """Each problem as printed, with paths relative to the directory."""
    return [str(p).removeprefix(f"{directory}/") for p in loaded.problems]


def problems_of(directory: Path, text: str, checks: HostChecks) -> list[str]:
    write(directory, "p.yml", text)
    loaded = load_directory(directory, checks)
    assert loaded.processes == [] or loaded.errors == []
    return lines(loaded, directory)


# -- unknown keys, at every level ------------------------------------------------------

TYPOS = [
    (
        "info:\n  id: p\n  jobControlOption: [async-execute]\n"
        "host:\n  type: subprocess\n  command: [python3, run.py]\n",
        "p.yml:3:3: info.jobControlOption: unknown key (did you mean 'jobControlOptions'?)",
    ),
    (
        SUBPROCESS + "inputs:\n  - id: a\n    minOcurs: 1\n",
        "p.yml:8:5: inputs[0].minOcurs: unknown key (did you mean 'minOccurs'?)",
    ),
    (
        SUBPROCESS + "inputs:\n  - id: a\n    shema: {type: integer}\n",
        "p.yml:8:5: inputs[0].shema: unknown key (did you mean 'schema'?)",
    ),
    (
        SUBPROCESS + "input:\n  - id: a\n",
        "p.yml:6:1: input: unknown key (did you mean 'inputs'?)",
    ),
    (
        SUBPROCESS + "outputs:\n  - id: o\n    output:\n      transmisionMode: [value]\n",
        "p.yml:9:7: outputs[0].output.transmisionMode: unknown key"
        " (did you mean 'transmissionMode'?)",
    ),
    (
        SUBPROCESS + "inputs:\n  - id: a\n    input:\n      literalDataDomain:\n"
        "        dataType: string\n        valueDefinition: {allowedValue: [a]}\n",
        "p.yml:11:27: inputs[0].input.literalDataDomain.valueDefinition.allowedValue:"
        " unknown key (did you mean 'allowedValues'?)",
    ),
    (
        "info: {id: p}\nhost: {type: docker}\ncontainer:\n  image: busybox\n"
        "  maxResources: {cpu: 2}\n",
        "p.yml:5:18: container.maxResources.cpu: unknown key (did you mean 'cpus'?)",
    ),
    (
        "info: {id: p}\nhost:\n  type: subprocess\n  comand: [python3, run.py]\n",
        "p.yml:4:3: host.comand: unknown key (did you mean 'command'?)",
    ),
    (
        "info: {id: p}\nhost:\n  type: aws-batch\n  jobDefinition: jd\n  jobQueue: q\n"
        "  jobname: x\ncontainer: {command: [run]}\n",
        "p.yml:6:3: host.jobname: unknown key (did you mean 'jobName'?)",
    ),
    (
        "info: {id: p}\nhost:\n  type: docker\n  image: busybox\n",
        "p.yml:4:3: host.image: unknown key (known keys here: jobDefinition, jobQueue, type)",
    ),
]


@pytest.mark.parametrize(("text", "expected"), TYPOS, ids=[t[1].split(": ")[1] for t in TYPOS])
def test_a_misspelt_key_anywhere_is_an_error_naming_the_key_it_resembles(
    tmp_path: Path, checks: HostChecks, text: str, expected: str
) -> None:
    assert expected in problems_of(tmp_path, text, checks)


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path, checks: HostChecks) -> None:
    text = """\
    info:
      id: many
      jobControlOptions: async-execute
    host:
      type: docker
    container:
      image: busybox
      capabilities: [SYS_ADMIN]
      maxResources: {cpus: 0}
    inputs:
      - id: a
        minOcurs: 1
      - id: b
        schema: {type: 12}
      - id: a
    timeout: soon
    """
    assert problems_of(tmp_path, text, checks) == [
        "p.yml:3:3: info.jobControlOptions: must be a list",
        "p.yml:8:3: container.capabilities: capability 'SYS_ADMIN' is not allowed:"
        " only Docker's default set and those of the server's DOCKER_ALLOWED_CAPABILITIES"
        " setting",
        "p.yml:9:18: container.maxResources.cpus: must be a number greater than 0",
        "p.yml:12:5: inputs[0].minOcurs: unknown key (did you mean 'minOccurs'?)",
        "p.yml:14:5: inputs[1].schema: not a valid JSON Schema:"
        " 12 is not valid under any of the given schemas",
        "p.yml:15:5: inputs[2].id: duplicate id 'a'",
        "p.yml:16:1: timeout: must be a number",
    ]


WRONG_VALUES = [
    (
        "info: {id: p, jobControlOptions: [run]}",
        "info.jobControlOptions[0]: must be one of sync-execute, async-execute, dismiss",
    ),
    ("info: text", "info: must be a mapping (key: value lines)"),
    ("info: {title: t}", "info.id: missing required key"),
    (
        "info: {id: 'a b'}",
        "info.id: may hold only letters, digits, _ . - and must start with a letter or digit",
    ),
    ("info: {id: p}\ninputs: {a: 1}", "inputs: must be a list"),
    (
        "info: {id: p}\ninputs: [{id: a, minOccurs: x}]",
        "inputs[0].minOccurs: must be a whole number",
    ),
    (
        "info: {id: p}\ninputs: [{id: a, minOccurs: -1}]",
        "inputs[0].minOccurs: must be a number of at least 0",
    ),
    (
        "info: {id: p}\ninputs: [{id: a, maxOccurs: many}]",
        "inputs[0].maxOccurs: must be a whole number or unbounded",
    ),
    ("info: {id: p}\ntimeout: 0", "timeout: must be a number greater than 0"),
    ("info: {id: p}\ninputsAs: stdin", "inputsAs: must be one of argument, file"),
]


@pytest.mark.parametrize(("text", "expected"), WRONG_VALUES)
def test_wrong_values_are_worded_plainly(
    tmp_path: Path, checks: HostChecks, text: str, expected: str
) -> None:
    host = "host: {type: subprocess, command: [python3, run.py]}\n"
    found = problems_of(tmp_path, host + text + "\n", checks)
    assert [line.split(": ", 1)[1] for line in found] == [expected]


def test_a_yaml_syntax_error_keeps_its_line_and_column(tmp_path: Path, checks: HostChecks) -> None:
    text = "info:\n  id: p\n  title: [unclosed\nhost: {type: subprocess}\n"
    assert problems_of(tmp_path, text, checks) == [
        "p.yml:4:5: invalid YAML: expected ',' or ']', but got ':'"
        " (while parsing a flow sequence that starts at line 3, column 10)"
    ]


def test_a_key_given_twice_is_an_error(tmp_path: Path, checks: HostChecks) -> None:
    text = SUBPROCESS + "inputs:\n  - id: a\n    minOccurs: 0\n    minOccurs: 1\n"
    assert problems_of(tmp_path, text, checks) == [
        "p.yml:9:5: inputs[0].minOccurs: key appears twice (first on line 8)"
    ]


def test_a_misspelt_json_schema_keyword_is_a_warning(tmp_path: Path, checks: HostChecks) -> None:
    text = SUBPROCESS + (
        "inputs:\n  - id: a\n    schema:\n      tpye: integer\n"
        "      properties: {n: {maximun: 3}}\n      x-unit: m\n"
    )
    write(tmp_path, "p.yml", text)
    loaded = load_directory(tmp_path, checks)
    assert [p.id for p in loaded.processes] == ["p"]
    assert lines(loaded, tmp_path) == [
        "p.yml:9:7: warning: inputs[0].schema.tpye: unknown JSON Schema keyword, ignored"
        " (did you mean 'type'?)",
        "p.yml:10:24: warning: inputs[0].schema.properties.n.maximun: unknown JSON Schema"
        " keyword, ignored (did you mean 'maximum'?)",
    ]


# -- host checks: reported with the rest, and cheap look-ups -------------------------


def test_a_program_missing_from_the_path_is_a_warning(tmp_path: Path, checks: HostChecks) -> None:
    write(tmp_path, "run-me", "#!/bin/sh\n")
    text = "info: {id: p}\nhost:\n  type: subprocess\n  command: [run-me, x]\n"
    write(tmp_path, "p.yml", text)
    loaded = load_directory(tmp_path, checks)
    assert [p.id for p in loaded.processes] == ["p"]
    assert lines(loaded, tmp_path) == [
        "p.yml:4:3: warning: host.command: program 'run-me' is not on the PATH;"
        " write ./run-me to run the file beside the process file"
    ]


def test_a_program_beside_the_process_file_is_found(tmp_path: Path, checks: HostChecks) -> None:
    script = write(tmp_path, "tools/run.sh", "#!/bin/sh\n")
    script.chmod(0o755)
    write(tmp_path, "tools/p.yml", "info: {id: p}\nhost: {type: subprocess, command: [./run.sh]}\n")
    write(tmp_path, "q.yml", "info: {id: q}\nhost: {type: subprocess, command: [./nothere.sh]}\n")
    loaded = load_directory(tmp_path, checks)
    assert sorted(p.id for p in loaded.processes) == ["p", "q"]
    assert lines(loaded, tmp_path) == [
        f"q.yml:2:26: warning: host.command: program './nothere.sh' is not a file"
        f" (relative to {tmp_path})"
    ]


def test_host_problems_come_with_the_format_problems(tmp_path: Path, checks: HostChecks) -> None:
    text = """\
    info: {id: p}
    host:
      type: aws-batch
      jobDefinition: jd
    container:
      network: bridge
      maxResources: {cpu: 1}
    """
    assert problems_of(tmp_path, text, checks) == [
        "p.yml:2:1: host.jobQueue: missing required key",
        "p.yml:6:3: container.network: AWS Batch processes use the network of their compute"
        " environment and job definition; this server cannot choose it",
        "p.yml:7:18: container.maxResources.cpu: unknown key (did you mean 'cpus'?)",
    ]


NEVER_PULLED = """\
info: {id: p}
host: {type: docker}
container:
  image: process-api-test/not-built:never
  pullPolicy: never
"""


def test_an_image_missing_on_the_engine_with_pull_policy_never_is_an_error(
    tmp_path: Path, checks: HostChecks, docker_engine: None
) -> None:
    assert problems_of(tmp_path, NEVER_PULLED, checks) == [
        "p.yml:4:3: container.image: image 'process-api-test/not-built:never' is not on the"
        " Docker Engine and the pull policy is never"
    ]


def test_go_host_fields_on_a_local_host_are_ignored_with_a_warning(
    tmp_path: Path, checks: HostChecks
) -> None:
    text = "info: {id: p}\nhost: {type: local, jobDefinition: jd, jobQueue: ''}\n"
    text += "container: {image: busybox}\n"
    write(tmp_path, "p.yml", text)
    loaded = load_directory(tmp_path, checks)
    assert [p.id for p in loaded.processes] == ["p"]
    assert lines(loaded, tmp_path) == [
        "p.yml:2:21: warning: host.jobDefinition: ignored: only the aws-batch host uses it"
    ]


# -- files that are not process files -------------------------------------------------

CONDA = """\
name: analysis
channels: [conda-forge]
dependencies:
  - python=3.11
"""


def test_a_conda_environment_file_is_skipped_and_named(tmp_path: Path, checks: HostChecks) -> None:
    write(tmp_path, "tool/environment.yml", CONDA)
    write(tmp_path, "tool/p.yml", SUBPROCESS)
    loaded = load_directory(tmp_path, checks)
    assert [p.id for p in loaded.processes] == ["p"]
    assert loaded.problems == []
    assert [str(s) for s in loaded.skipped] == [
        f"{tmp_path}/tool/environment.yml: skipped: not a process file (no info or host section)"
    ]


def test_yaml_that_is_no_mapping_is_skipped_and_tools_folders_are_not_searched(
    tmp_path: Path, checks: HostChecks
) -> None:
    write(tmp_path, "p.yml", SUBPROCESS)
    write(tmp_path, "ci.yml", "- name: build\n  run: make\n")  # a list: a playbook, a CI file
    write(tmp_path, "placeholder.yaml", "")
    openapi = "openapi: 3.0.0\ninfo: {title: x}\n"  # an info section, and no process file
    write(tmp_path, ".venv/lib/site-packages/pkg/openapi.yaml", openapi)
    write(tmp_path, "env/pyvenv.cfg", "home = /usr/bin\n")
    write(tmp_path, "env/lib/openapi.yaml", openapi)
    write(tmp_path, "web/node_modules/pkg/openapi.yml", openapi)
    loaded = load_directory(tmp_path, checks)
    assert [p.id for p in loaded.processes] == ["p"]
    assert loaded.problems == []
    assert sorted(s.file.name for s in loaded.skipped) == ["ci.yml", "placeholder.yaml"]


@pytest.mark.parametrize("section", ["info: {id: p}\n", "host: {type: subprocess}\n", "Info: {}\n"])
def test_a_broken_file_with_a_process_section_stays_an_error(
    tmp_path: Path, checks: HostChecks, section: str
) -> None:
    write(tmp_path, "p.yml", CONDA + section)
    loaded = load_directory(tmp_path, checks)
    assert loaded.skipped == [] and loaded.errors != []


def test_the_ignore_file_leaves_files_out(tmp_path: Path, checks: HostChecks) -> None:
    write(
        tmp_path,
        ".processignore",
        "# not process files\nci/\n*.template.yml\n/top-only.yml\n!keep.template.yml\n",
    )
    write(tmp_path, "ci/pipeline.yml", "stages: [test]\ninfo: not a process\n")
    write(tmp_path, "a.template.yml", "info: [\n")
    write(tmp_path, "deep/b.template.yml", "info: [\n")
    write(tmp_path, "top-only.yml", "info: [\n")
    write(tmp_path, "deep/top-only.yml", SUBPROCESS.replace("id: p", "id: deep"))
    write(tmp_path, "keep.template.yml", SUBPROCESS)
    loaded = load_directory(tmp_path, checks)
    assert sorted(p.id for p in loaded.processes) == ["deep", "p"]
    assert loaded.problems == []
    ignore = tmp_path / ".processignore"
    assert sorted(str(s) for s in loaded.skipped) == [
        f"{tmp_path}/{name}: skipped: listed in {ignore}"
        for name in ["a.template.yml", "ci/pipeline.yml", "deep/b.template.yml", "top-only.yml"]
    ]


def test_files_and_directories_load_together(tmp_path: Path, checks: HostChecks) -> None:
    one = write(tmp_path, "one/a.yml", SUBPROCESS.replace("id: p", "id: a"))
    two = write(tmp_path, "two/b.yml", SUBPROCESS.replace("id: p", "id: a"))
    loaded = load_paths([tmp_path / "one", two, one, tmp_path / "nowhere.yml"], checks)
    assert [p.source for p in loaded.processes] == [one]
    assert lines(loaded, tmp_path) == [
        "nowhere.yml: file or directory not found",
        f"two/b.yml:2:3: info.id: duplicate id 'a', also in {one}",
    ]


# -- files that must keep loading -----------------------------------------------------


def test_go_format_keys_load_without_problems(tmp_path: Path, checks: HostChecks) -> None:
    text = SUBPROCESS + textwrap.dedent(
        """\
        inputs:
          - id: colour
            input:
              literalDataDomain:
                dataType: string
                valueDefinition: {anyValue: false, possibleValues: [red, blue]}
        outputs:
          - id: file
            inputId: colour
            output: {transmissionMode: [reference]}
        """
    )
    write(tmp_path, "p.yml", text)
    loaded = load_directory(tmp_path, checks)
    assert loaded.problems == [] and [p.id for p in loaded.processes] == ["p"]


@pytest.mark.parametrize("directory", [DEWBERRY, EXAMPLES], ids=["go-server-files", "examples"])
def test_existing_files_load_with_no_problem_nor_warning(
    directory: Path, checks: HostChecks
) -> None:
    loaded = load_directory(directory, checks)
    assert loaded.problems == [] and loaded.skipped == []
    assert len(loaded.processes) == len(list(directory.rglob("*.y*ml")))


def test_a_yaml_alias_that_refers_to_itself_is_a_problem_of_its_file(
    tmp_path: Path, checks: HostChecks
) -> None:
    """It crashed the whole load (and a reload of the directory) with a RecursionError."""
    write(tmp_path, "good.yml", SUBPROCESS.replace("id: p", "id: good"))
    write(tmp_path, "p.yml", "info: &a [*a, *a]\nhost:\n  type: subprocess\n")
    loaded = load_directory(tmp_path, checks)
    assert [p.id for p in loaded.processes] == ["good"]
    assert lines(loaded, tmp_path) == ["p.yml: nests too deeply, or a YAML alias refers to itself"]
