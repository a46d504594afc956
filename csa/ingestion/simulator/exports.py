"""Writers of the export files: each streams, chunk after chunk, so memory stays bounded.

The file names and column names here are what ``configs/sources.yaml`` maps; renaming one
breaks ingestion.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

CRM_ACCOUNTS = "crm_accounts.csv"
CRM_CONTACTS = "crm_contacts.csv"
SUBSCRIPTIONS = "billing_subscriptions.csv"
INVOICES = "billing_invoices.csv"
TICKETS = "support_tickets.json"
NPS = "nps_responses.csv"
USAGE_GLOB = "usage_events*.jsonl"
GROUND_TRUTH = "ground_truth"
DAILY_GLOB = "daily-c*.parquet"


def usage_file(out_dir: Path, month: str, chunk: int) -> Path:
    """``usage_events_YYYY-MM_cNNNN.jsonl``: one file per month and chunk of accounts."""
    return out_dir / f"usage_events_{month}_c{chunk:04d}.jsonl"


def daily_file(out_dir: Path, chunk: int) -> Path:
    return out_dir / GROUND_TRUTH / f"daily-c{chunk:04d}.parquet"


class CsvExport:
    """A CSV file written chunk by chunk under a fixed header."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path = path
        self.columns = columns
        self.rows = 0
        self._handle: TextIO = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._handle, lineterminator="\n")
        self._writer.writerow(columns)

    def write(self, values: dict[str, np.ndarray]) -> None:
        """Append rows given as one array per column."""
        if list(values) != self.columns:
            raise ValueError(f"{self.path.name} needs columns {self.columns}, got {list(values)}")
        self._writer.writerows(zip(*(values[name].tolist() for name in self.columns), strict=True))
        self.rows += len(next(iter(values.values())))

    def close(self) -> None:
        self._handle.close()


class TicketsExport:
    """``{"tickets": [...]}`` written one ticket per line, without holding them all."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._handle = path.open("wb")
        self._handle.write(b'{"tickets": [')

    def write(self, tickets: list[dict[str, Any]]) -> None:
        for ticket in tickets:
            self._handle.write(b"\n" if self.rows == 0 else b",\n")
            self._handle.write(orjson.dumps(ticket))
            self.rows += 1

    def close(self) -> None:
        self._handle.write(b"\n]}\n")
        self._handle.close()


class UsageExport:
    """JSON lines written by DuckDB from an Arrow table: the volume hot path.

    DuckDB serialises in C++ on every core and keeps the table's row order, so the bytes are the
    same on every run.
    """

    def __init__(self) -> None:
        self.rows = 0
        self.files: list[Path] = []
        self._connection = duckdb.connect()

    def write(self, table: pa.Table, path: Path) -> None:
        self._connection.register("track_calls", table)
        try:
            target = str(path).replace("'", "''")
            self._connection.execute(f"COPY track_calls TO '{target}' (FORMAT JSON)")
        finally:
            self._connection.unregister("track_calls")
        self.rows += table.num_rows
        self.files.append(path)

    def close(self) -> None:
        self._connection.close()


class ParquetExport:
    """A Parquet file written one row group per chunk."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.rows = 0
        self._writer = pq.ParquetWriter(path, schema)

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        self._writer.close()


class Exports:
    """Every export file of one run, opened together and closed together."""

    def __init__(
        self, out_dir: Path, columns: dict[str, list[str]], schemas: dict[str, pa.Schema]
    ) -> None:
        truth = out_dir / GROUND_TRUTH
        truth.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        self.accounts = CsvExport(out_dir / CRM_ACCOUNTS, columns[CRM_ACCOUNTS])
        self.contacts = CsvExport(out_dir / CRM_CONTACTS, columns[CRM_CONTACTS])
        self.subscriptions = CsvExport(out_dir / SUBSCRIPTIONS, columns[SUBSCRIPTIONS])
        self.invoices = CsvExport(out_dir / INVOICES, columns[INVOICES])
        self.nps = CsvExport(out_dir / NPS, columns[NPS])
        self.tickets = TicketsExport(out_dir / TICKETS)
        self.usage = UsageExport()
        self.truth_accounts = ParquetExport(truth / "accounts.parquet", schemas["accounts"])
        self.truth_events = ParquetExport(truth / "events.parquet", schemas["events"])
        self.daily_files: list[Path] = []

    def write_daily(self, table: pa.Table, chunk: int) -> None:
        path = daily_file(self.out_dir, chunk)
        pq.write_table(table, path)
        self.daily_files.append(path)

    def write_scenario(self, description: dict[str, Any]) -> Path:
        path = self.out_dir / GROUND_TRUTH / "scenario.json"
        path.write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
        return path

    @property
    def files(self) -> list[Path]:
        """Every file written, exports first, then the ground truth."""
        exports = [self.accounts, self.contacts, self.subscriptions, self.invoices, self.nps]
        return [
            *(export.path for export in exports),
            self.tickets.path,
            *self.usage.files,
            self.truth_accounts.path,
            self.truth_events.path,
            *self.daily_files,
        ]

    def __enter__(self) -> Exports:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for export in (
            self.accounts,
            self.contacts,
            self.subscriptions,
            self.invoices,
            self.nps,
            self.tickets,
            self.usage,
            self.truth_accounts,
            self.truth_events,
        ):
            export.close()


def remove_stale(out_dir: Path) -> int:
    """Delete usage and daily files of an earlier run, which a glob would otherwise pick up.

    Only names this module writes are removed; other files in ``out_dir`` are left alone.
    """
    stale = [*out_dir.glob(USAGE_GLOB), *(out_dir / GROUND_TRUTH).glob(DAILY_GLOB)]
    for path in stale:
        path.unlink()
    return len(stale)
