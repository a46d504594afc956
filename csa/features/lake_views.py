"""DuckDB views over the lake's canonical tables, typed for feature computation.

Feature SQL reads the lake's Parquet files in place, so a year of usage events never passes
through pandas. Every view casts its columns explicitly: a file written from a batch whose
nullable column was all empty carries a null type, which would otherwise break comparisons.
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb

from csa.errors import LakeError
from csa.ingestion.lake import table_exists, table_files

logger = logging.getLogger(__name__)

# The columns feature computation reads, with the type each is read as.
_COLUMNS: dict[str, dict[str, str]] = {
    "accounts": {
        "account_id": "VARCHAR",
        "size_band": "VARCHAR",
        "contract_start": "TIMESTAMPTZ",
        "churned_at": "TIMESTAMPTZ",
    },
    "subscriptions": {
        "change_id": "VARCHAR",
        "subscription_id": "VARCHAR",
        "account_id": "VARCHAR",
        "change_type": "VARCHAR",
        "plan_tier": "VARCHAR",
        "billing_period": "VARCHAR",
        "seats": "BIGINT",
        "mrr": "DOUBLE",
        "effective_at": "TIMESTAMPTZ",
        "period_end": "TIMESTAMPTZ",
        "status": "VARCHAR",
    },
    "billing_events": {
        "event_id": "VARCHAR",
        "account_id": "VARCHAR",
        "event_type": "VARCHAR",
        "occurred_at": "TIMESTAMPTZ",
    },
    "usage_events": {
        "account_id": "VARCHAR",
        "user_id": "VARCHAR",
        "event": "VARCHAR",
        "quantity": "BIGINT",
        "occurred_at": "TIMESTAMPTZ",
    },
    "tickets": {
        "ticket_id": "VARCHAR",
        "account_id": "VARCHAR",
        "priority": "VARCHAR",
        "status": "VARCHAR",
        "created_at": "TIMESTAMPTZ",
        "updated_at": "TIMESTAMPTZ",
        "solved_at": "TIMESTAMPTZ",
        "resolution_hours": "DOUBLE",
    },
    "survey_responses": {
        "response_id": "VARCHAR",
        "account_id": "VARCHAR",
        "score": "BIGINT",
        "submitted_at": "TIMESTAMPTZ",
    },
}

# Without these two there is nothing to snapshot; the others may legitimately be absent.
REQUIRED_TABLES = ("accounts", "subscriptions")


def open_lake(lake_dir: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one typed view per canonical table.

    Raises:
        LakeError: ``accounts`` or ``subscriptions`` was never loaded into ``lake_dir``.
    """
    for name in REQUIRED_TABLES:
        if not table_exists(lake_dir, name):
            raise LakeError(
                f"lake table {name!r} does not exist under {lake_dir}; "
                "run `csa ingest` (after `csa simulate` for demo data) first."
            )
    con = duckdb.connect()
    # Interval arithmetic and day truncation follow the session time zone: pin it to UTC so
    # snapshots fall on UTC midnights whatever the machine's zone.
    con.execute("SET TimeZone = 'UTC'")
    for name, columns in _COLUMNS.items():
        _create_view(con, lake_dir, name, columns)
    return con


def _create_view(
    con: duckdb.DuckDBPyConnection, lake_dir: Path, name: str, columns: dict[str, str]
) -> None:
    files = table_files(lake_dir, name)
    casts = ", ".join(f"CAST({col} AS {kind}) AS {col}" for col, kind in columns.items())
    if files:
        file_list = ", ".join("'" + path.replace("'", "''") + "'" for path in files)
        source = f"read_parquet([{file_list}], union_by_name = true)"
        con.execute(f"CREATE VIEW {name} AS SELECT {casts} FROM {source}")
        return
    logger.info("lake table %s is empty or absent; its features will be zero or null", name)
    nulls = ", ".join(f"CAST(NULL AS {kind}) AS {col}" for col, kind in columns.items())
    con.execute(f"CREATE VIEW {name} AS SELECT {nulls} WHERE false")
