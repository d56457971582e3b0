"""Loading process files: what registers, and what each broken file is reported as."""

from __future__ import annotations

from pathlib import Path

import pytest

from process_api.processes.loader import HostChecks, load_directory, load_processes
from process_api.processes.problems import LoadProblem
from process_api.processes.registry import Process
from tests.unit.conftest import write

ROOT = Path(__file__).resolve().parents[2]
DEWBERRY = ROOT / "tests" / "data" / "dewberry-plugins"
EXAMPLES = ROOT / "plugins"

VALID = """\
info:
  id: {id}
host:
  type: subprocess
  command: [python3, run.py]
"""


def load(directory: Path, checks: HostChecks) -> tuple[dict[str, Process], list[LoadProblem]]:
    processes, problems = load_processes(directory, checks)
    return {p.id: p for p in processes}, problems


def only_problem(directory: Path, checks: HostChecks) -> LoadProblem:
    processes, problems = load(directory, checks)
    assert processes == {}
    assert len(problems) == 1, problems
    return problems[0]


# -- files that load -----------------------------------------------------------------


def test_every_dewberry_file_loads_unchanged(checks: HostChecks) -> None:
    processes, problems = load(DEWBERRY, checks)
    assert problems == []
    assert set(processes) == {"dfc", "logHelloWorld", "pyecho", "pywrite", "runner", "aepGrid"}
    assert {p.source.name for p in processes.values()} == {
        "dfc.yml",
        "logHelloWorld.yml",
        "pyecho.yml",
        "pywrite.yml",
        "runner.yml",
        "template_process.yaml",
    }
    hosts = {pid: p.host_type for pid, p in processes.items()}
    assert hosts == {
        "dfc": "aws-batch",
        "logHelloWorld": "aws-batch",
        "aepGrid": "aws-batch",
        "pyecho": "local",
        "pywrite": "local",
        "runner": "local",
    }


def test_dewberry_file_details_survive(checks: HostChecks) -> None:
    processes, _ = load(DEWBERRY, checks)
    dfc = processes["dfc"]
    assert dfc.version == "0.0.1"
    assert dfc.allows_async and not dfc.allows_sync
    assert [i.id for i in dfc.config.inputs] == ["crs", "tile", "epoch", "points"]
    assert dfc.config.inputs[3].maxOccurs == 999999
    # `inputs:` and `outputs:` with nothing after them mean none.
    hello = processes["logHelloWorld"]
    assert hello.config.inputs == [] and hello.config.outputs == []
    # an empty `outputTransmission:` falls back to the default.
    assert processes["pyecho"].config.info.outputTransmission == ["value"]
    assert processes["pyecho"].allows_sync and not processes["pyecho"].allows_async
    # the Go server's own keys on outputs (inputId) are ignored, not refused.
    assert [o.id for o in processes["aepGrid"].config.outputs] == ["aepGrid"]
    assert processes["aepGrid"].input_schemas["tile"] == {"type": "string"}


def test_bundled_examples_load(checks: HostChecks) -> None:
    processes, problems = load(EXAMPLES, checks)
    assert problems == []
    assert set(processes) == {"echo", "stats", "fail", "rating"}
    assert {p.host_type for p in processes.values()} == {"subprocess"}
    echo = processes["echo"]
    assert echo.input_schemas["choiceInput"] == {
        "type": "string",
        "enum": ["red", "green", "blue"],
    }
    assert echo.source == EXAMPLES / "examples" / "echo.yml"


def test_numeric_version_becomes_text(tmp_path: Path, checks: HostChecks) -> None:
    # YAML reads `version: 2.5` as a number; the process description needs text.
    write(tmp_path, "p.yml", VALID.format(id="p").replace("  id: p\n", "  id: p\n  version: 2.5\n"))
    processes, problems = load(tmp_path, checks)
    assert problems == []
    assert processes["p"].version == "2.5"


# -- broken files --------------------------------------------------------------------


def test_bad_yaml(tmp_path: Path, checks: HostChecks) -> None:
    path = write(tmp_path, "bad.yml", "info: [unclosed\n")
    problem = only_problem(tmp_path, checks)
    assert problem.file == path
    assert "invalid YAML" in problem.message
    assert "\n" not in problem.message
    assert str(problem).startswith(str(path))


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", ""])
def test_not_a_mapping_is_skipped_and_named(tmp_path: Path, checks: HostChecks, text: str) -> None:
    path = write(tmp_path, "list.yml", text)
    loaded = load_directory(tmp_path, checks)
    assert loaded.problems == [] and loaded.processes == []
    assert [str(s) for s in loaded.skipped] == [
        f"{path}: skipped: not a process file (empty, or not a mapping)"
    ]


def test_missing_info_id(tmp_path: Path, checks: HostChecks) -> None:
    path = write(
        tmp_path,
        "noid.yml",
        """\
        info:
          title: No id
        host:
          type: subprocess
          command: [python3, run.py]
        """,
    )
    problem = only_problem(tmp_path, checks)
    assert (problem.file, problem.field) == (path, "info.id")
    assert str(problem) == f"{path}:1:1: info.id: missing required key"


@pytest.mark.parametrize("bad_id", ["has space", "a/b", "-leading", "_leading", "x" * 129])
def test_invalid_id_characters(tmp_path: Path, checks: HostChecks, bad_id: str) -> None:
    path = write(tmp_path, "badid.yml", VALID.format(id=f'"{bad_id}"'))
    problem = only_problem(tmp_path, checks)
    assert (problem.file, problem.field) == (path, "info.id")


@pytest.mark.parametrize("good_id", ["a", "A1", "with.dots-and_underscores", "9lives"])
def test_valid_id_characters(tmp_path: Path, checks: HostChecks, good_id: str) -> None:
    write(tmp_path, "ok.yml", VALID.format(id=f'"{good_id}"'))
    processes, problems = load(tmp_path, checks)
    assert problems == []
    assert list(processes) == [good_id]


def test_unknown_host_type(tmp_path: Path, checks: HostChecks) -> None:
    path = write(
        tmp_path,
        "k8s.yml",
        """\
        info:
          id: k8s
        host:
          type: kubernetes
        """,
    )
    problem = only_problem(tmp_path, checks)
    assert (problem.file, problem.field) == (path, "host.type")
    assert "kubernetes" in problem.message
    # it lists the types that would work
    for known in ("aws-batch", "docker", "local", "subprocess"):
        assert known in problem.message


def test_invalid_json_schema_of_an_input(tmp_path: Path, checks: HostChecks) -> None:
    path = write(
        tmp_path,
        "schema.yml",
        VALID.format(id="s")
        + """\
inputs:
  - id: fine
    schema: {type: string}
  - id: broken
    schema: {type: 12}
""",
    )
    problem = only_problem(tmp_path, checks)
    assert (problem.file, problem.field) == (path, "inputs[1].schema")
    assert "JSON Schema" in problem.message


def test_invalid_json_schema_of_an_output(tmp_path: Path, checks: HostChecks) -> None:
    path = write(
        tmp_path,
        "schema.yml",
        VALID.format(id="s")
        + """\
outputs:
  - id: broken
    schema: {type: [string, nonsense]}
""",
    )
    problem = only_problem(tmp_path, checks)
    assert (problem.file, problem.field) == (path, "outputs[0].schema")


def test_duplicate_input_ids(tmp_path: Path, checks: HostChecks) -> None:
    path = write(
        tmp_path,
        "dup.yml",
        VALID.format(id="d")
        + """\
inputs:
  - id: same
  - id: other
  - id: same
""",
    )
    problem = only_problem(tmp_path, checks)
    assert (problem.file, problem.field) == (path, "inputs[2].id")
    assert "duplicate id 'same'" in problem.message


def test_same_id_for_an_input_and_an_output_is_allowed(tmp_path: Path, checks: HostChecks) -> None:
    write(
        tmp_path,
        "p.yml",
        VALID.format(id="p") + "inputs:\n  - id: text\noutputs:\n  - id: text\n",
    )
    processes, problems = load(tmp_path, checks)
    assert problems == []
    assert "p" in processes


def test_duplicate_process_id_across_files(tmp_path: Path, checks: HostChecks) -> None:
    first = write(tmp_path, "a.yml", VALID.format(id="twice"))
    second = write(tmp_path, "b.yml", VALID.format(id="twice"))
    processes, problems = load(tmp_path, checks)
    assert list(processes) == ["twice"]
    assert processes["twice"].source == first
    assert len(problems) == 1
    assert (problems[0].file, problems[0].field) == (second, "info.id")
    assert "twice" in problems[0].message
    assert str(first) in problems[0].message


def test_subprocess_host_without_command(tmp_path: Path, checks: HostChecks) -> None:
    path = write(
        tmp_path,
        "nocmd.yml",
        """\
        info:
          id: nocmd
        host:
          type: subprocess
        """,
    )
    problem = only_problem(tmp_path, checks)
    assert (problem.file, problem.field) == (path, "host.command")


@pytest.mark.parametrize("command", ["[]", "python3 run.py"])
def test_subprocess_host_with_unusable_command(
    tmp_path: Path, checks: HostChecks, command: str
) -> None:
    write(tmp_path, "cmd.yml", f"info:\n  id: c\nhost:\n  type: subprocess\n  command: {command}\n")
    problem = only_problem(tmp_path, checks)
    assert problem.field == "host.command"


def test_unknown_top_level_section(tmp_path: Path, checks: HostChecks) -> None:
    path = write(tmp_path, "typo.yml", VALID.format(id="t") + "inptus:\n  - id: a\n")
    problem = only_problem(tmp_path, checks)
    assert (problem.file, problem.field) == (path, "inptus")


def test_job_control_options_with_only_dismiss(tmp_path: Path, checks: HostChecks) -> None:
    path = write(
        tmp_path,
        "dismiss.yml",
        """\
        info:
          id: dm
          jobControlOptions: [dismiss]
        host:
          type: subprocess
          command: [python3, run.py]
        """,
    )
    problem = only_problem(tmp_path, checks)
    assert (problem.file, problem.field) == (path, "info.jobControlOptions")
    assert "sync-execute" in problem.message


def test_max_occurs_below_min_occurs(tmp_path: Path, checks: HostChecks) -> None:
    path = write(
        tmp_path,
        "occurs.yml",
        VALID.format(id="o") + "inputs:\n  - id: a\n    minOccurs: 3\n    maxOccurs: 2\n",
    )
    problem = only_problem(tmp_path, checks)
    assert problem.file == path
    assert problem.field.startswith("inputs[0]")
    assert "maxOccurs" in problem.message


def test_max_occurs_zero_is_refused(tmp_path: Path, checks: HostChecks) -> None:
    write(
        tmp_path,
        "occurs.yml",
        VALID.format(id="o") + "inputs:\n  - id: a\n    minOccurs: 0\n    maxOccurs: 0\n",
    )
    problem = only_problem(tmp_path, checks)
    assert problem.field.startswith("inputs[0]")


def test_max_occurs_unbounded_loads(tmp_path: Path, checks: HostChecks) -> None:
    write(
        tmp_path,
        "occurs.yml",
        VALID.format(id="o") + "inputs:\n  - id: a\n    minOccurs: 2\n    maxOccurs: unbounded\n",
    )
    processes, problems = load(tmp_path, checks)
    assert problems == []
    assert processes["o"].config.inputs[0].maxOccurs == "unbounded"


# -- directories ---------------------------------------------------------------------


def test_problems_of_several_files_are_reported_at_once(tmp_path: Path, checks: HostChecks) -> None:
    good = write(tmp_path, "good.yml", VALID.format(id="good"))
    yaml_error = write(tmp_path, "a-bad-yaml.yml", "info: [\n")
    no_command = write(tmp_path, "b-no-command.yml", "info:\n  id: b\nhost:\n  type: subprocess\n")
    typo = write(tmp_path, "c-typo.yml", VALID.format(id="c") + "outptus: []\n")
    processes, problems = load(tmp_path, checks)
    assert list(processes) == ["good"]
    assert processes["good"].source == good
    assert {(p.file, p.field) for p in problems} == {
        (yaml_error, ""),
        (no_command, "host.command"),
        (typo, "outptus"),
    }


def test_several_problems_in_one_file_are_all_reported(tmp_path: Path, checks: HostChecks) -> None:
    write(
        tmp_path,
        "many.yml",
        """\
        info:
          id: "bad id"
          jobControlOptions: [dismiss]
        host:
          type: subprocess
          command: [python3, run.py]
        """,
    )
    _, problems = load(tmp_path, checks)
    assert {p.field for p in problems} == {"info.id", "info.jobControlOptions"}


def test_missing_directory_is_reported(tmp_path: Path, checks: HostChecks) -> None:
    missing = tmp_path / "nowhere"
    processes, problems = load_processes(missing, checks)
    assert processes == []
    assert len(problems) == 1
    assert problems[0].file == missing
    assert "not found" in problems[0].message


def test_a_file_instead_of_a_directory_is_reported(tmp_path: Path, checks: HostChecks) -> None:
    path = write(tmp_path, "p.yml", VALID.format(id="p"))
    processes, problems = load_processes(path, checks)
    assert processes == []
    assert [p.file for p in problems] == [path]


def test_files_in_subdirectories_and_extensions(tmp_path: Path, checks: HostChecks) -> None:
    write(tmp_path, "top.yml", VALID.format(id="top"))
    write(tmp_path, "one/nested.yaml", VALID.format(id="nested"))
    write(tmp_path, "one/two/deeper.yml", VALID.format(id="deeper"))
    # neither of these is a process file, even though the content would load
    write(tmp_path, "one/notes.txt", VALID.format(id="txt"))
    write(tmp_path, "one/config.json", VALID.format(id="json"))
    write(tmp_path, "one/old.yml.bak", VALID.format(id="bak"))
    write(tmp_path, "run.py", "print('not yaml: [')\n")
    processes, problems = load(tmp_path, checks)
    assert problems == []
    assert set(processes) == {"top", "nested", "deeper"}
    assert processes["deeper"].source == tmp_path / "one" / "two" / "deeper.yml"


def test_empty_directory_loads_nothing(tmp_path: Path, checks: HostChecks) -> None:
    assert load_processes(tmp_path, checks) == ([], [])
