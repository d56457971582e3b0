"""The aws-batch host without AWS: what its process files may say."""

from __future__ import annotations

from pathlib import Path

import pytest

from process_api.hosts import build_hosts, host_checks
from process_api.processes.loader import HostChecks, load_processes
from process_api.settings import Settings

DEWBERRY = Path(__file__).resolve().parents[1] / "data" / "dewberry-plugins"

# -- finding 9: what a Batch process file may not say ------------------------------------

BATCH_FILE = """\
info:
  id: onbatch
host:
  type: aws-batch
  jobDefinition: some-definition
  jobQueue: some-queue
container:
  command: [python, run.py]
"""


@pytest.fixture
def checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HostChecks:
    monkeypatch.chdir(tmp_path)
    return host_checks(build_hosts(Settings()))


@pytest.mark.parametrize(
    ("field", "yaml_value", "why"),
    [
        ("secrets", "[DB_PASSWORD]", "secrets in its containerProperties"),
        ("capabilities", "[NET_ADMIN]", "linuxParameters.capabilities"),
        ("network", "host", "network of their compute environment"),
        ("user", '"1000"', "user of the job definition"),
        ("pullPolicy", "always", "pulls the job definition's image"),
    ],
)
def test_finding_9_batch_files_with_container_fields_batch_ignores_are_refused(
    tmp_path: Path, checks: HostChecks, field: str, yaml_value: str, why: str
) -> None:
    path = tmp_path / "onbatch.yml"
    path.write_text(BATCH_FILE + f"  {field}: {yaml_value}\n")
    processes, problems = load_processes(tmp_path, checks)
    assert processes == []
    assert len(problems) == 1, problems
    problem = problems[0]
    assert (problem.file, problem.field) == (path, f"container.{field}")
    assert "AWS Batch" in problem.message and why in problem.message, problem.message
    assert "this server cannot" in problem.message, problem.message


def test_finding_9_empty_container_fields_and_the_go_servers_files_still_load(
    tmp_path: Path, checks: HostChecks
) -> None:
    empty = "  secrets: []\n  capabilities:\n  network:\n  user:\n  pullPolicy:\n"
    (tmp_path / "onbatch.yml").write_text(BATCH_FILE + empty)
    processes, problems = load_processes(tmp_path, checks)
    assert problems == [] and [p.id for p in processes] == ["onbatch"]
    processes, problems = load_processes(DEWBERRY, checks)
    assert problems == []
    batch = {p.id for p in processes if p.host_type == "aws-batch"}
    assert batch == {"dfc", "logHelloWorld", "aepGrid"}
