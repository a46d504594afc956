"""The lake: one Delta table per canonical table under ``data/lake/<table>``.

Delta's transaction log is what makes a load atomic: a write either commits a new table version
or leaves no trace a reader can see, even when the process is killed half-way. Readers go through
``read_table`` or ``table_files`` (for DuckDB) and so only ever see committed versions.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from csa.errors import LakeError
from csa.ingestion.contracts import table_spec


def table_path(lake_dir: Path, name: str) -> Path:
    return lake_dir / name


def table_exists(lake_dir: Path, name: str) -> bool:
    return (table_path(lake_dir, name) / "_delta_log").is_dir()


def _open(lake_dir: Path, name: str) -> DeltaTable:
    try:
        return DeltaTable(str(table_path(lake_dir, name)))
    except TableNotFoundError:
        raise LakeError(
            f"lake table {name!r} does not exist under {lake_dir}; run `csa ingest` first."
        ) from None


def read_table(lake_dir: Path, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """The committed content of a canonical table; an empty frame when it was never loaded.

    Timestamps come back as UTC at microsecond precision, the lake's storage unit.
    """
    if not table_exists(lake_dir, name):
        frame = table_spec(name).empty_frame()
        return frame[columns] if columns else frame
    return _open(lake_dir, name).to_pandas(columns=columns)


def table_files(lake_dir: Path, name: str) -> list[str]:
    """Parquet files of the table's current version, for engines that read Parquet directly."""
    if not table_exists(lake_dir, name):
        return []
    return list(_open(lake_dir, name).file_uris())


def table_version(lake_dir: Path, name: str) -> int | None:
    return _open(lake_dir, name).version() if table_exists(lake_dir, name) else None


def append_batches(
    lake_dir: Path, name: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
) -> None:
    """Append a stream of batches as one commit: all of them become visible, or none."""
    reader = pa.RecordBatchReader.from_batches(schema, iter(batches))
    write_deltalake(str(table_path(lake_dir, name)), reader, mode="append")


def replace_table(lake_dir: Path, name: str, rows: pd.DataFrame | pa.Table) -> None:
    """Commit ``rows`` as the table's new full content (for small, mutable tables).

    A frame is stored with the contract's column types, whatever pandas inferred.
    """
    table = table_spec(name).to_arrow(rows) if isinstance(rows, pd.DataFrame) else rows
    write_deltalake(
        str(table_path(lake_dir, name)), table, mode="overwrite", schema_mode="overwrite"
    )
