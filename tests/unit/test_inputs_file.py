"""Where an AWS Batch job finds its inputs when it takes them as a file (only in S3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from process_api.errors import ServiceUnavailable
from process_api.hosts.aws_batch import BatchHost
from process_api.jobs.contract import job_run
from process_api.processes.config import ProcessConfig
from process_api.processes.registry import Process
from process_api.storage.base import Layout
from process_api.storage.local import LocalStorage


def batch_host() -> BatchHost:
    return BatchHost(
        batch=lambda: None,
        logs=lambda: None,
        log_group="/aws/batch/job",
        poll_interval=1.0,
        configured=True,
        server_env=lambda names: {},
    )


def batch_process(inputs_as: str) -> Process:
    config = ProcessConfig.model_validate(
        {
            "info": {"id": "big"},
            "host": {"type": "aws-batch", "jobDefinition": "jd", "jobQueue": "q"},
            "container": {"command": ["run"]},
            "inputsAs": inputs_as,
        }
    )
    return Process.from_config(config, Path("big.yml"))


def test_a_batch_process_taking_its_inputs_as_a_file_is_refused_without_s3(
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path, Layout())
    run = job_run(batch_process("file"), "j1", {"x": 1}, storage, inputs_in_storage=True)
    with pytest.raises(ServiceUnavailable, match="S3_BUCKET"):
        batch_host().admit(run)
    # Taking them as an argument, it runs as before (the local path is never given to it).
    argument = job_run(batch_process("argument"), "j2", {"x": 1}, storage, inputs_in_storage=True)
    batch_host().admit(argument)
    assert argument.arguments == ['{"x": 1}']
