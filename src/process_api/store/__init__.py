"""Where job records live: PostgreSQL when DB_URL is set, else an SQLite file (DB_PATH)."""

from __future__ import annotations

from process_api.settings import Settings
from process_api.store.sql import SqlJobStore


def build_store(settings: Settings) -> SqlJobStore:
    url = settings.database_url
    if url is not None:
        from process_api.store.postgres import PostgresJobStore

        return PostgresJobStore(url)
    return SqlJobStore.sqlite(settings.database_file)
