"""Where logs, results and metadata live: S3 when S3_BUCKET is set, else a local directory."""

from __future__ import annotations

from process_api.settings import Settings
from process_api.storage.base import Layout, Storage
from process_api.storage.local import LocalStorage


def build_storage(settings: Settings) -> Storage:
    layout = Layout(settings.s3_results_dir, settings.s3_logs_dir, settings.s3_meta_dir)
    if settings.s3_bucket:
        from process_api.aws import aws_client
        from process_api.storage.s3 import SIGNING, S3Storage

        return S3Storage(aws_client(settings, "s3", SIGNING), settings.s3_bucket, layout)
    return LocalStorage(settings.storage_dir, layout)
