"""AWS clients, configured once from the settings: region, endpoint (MinIO, moto) and retries.

Credentials come from boto3's standard chain (environment, shared files, instance
roles). Retries follow AWS's standard mode, which backs off on throttling.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from process_api.settings import Settings

RETRIES = Config(
    retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30
)


def aws_client(settings: Settings, service: str, config: Config | None = None) -> Any:
    """A boto3 client for the service; blocking, so callers run it in worker threads.
    `config`: more settings of the client, besides the retries."""
    session = boto3.session.Session(region_name=settings.aws_region or "us-east-1")
    merged = RETRIES.merge(config) if config is not None else RETRIES
    return session.client(service, endpoint_url=settings.aws_endpoint_url, config=merged)
