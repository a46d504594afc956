"""Connectors: read a source's records in bounded batches, exactly as the source holds them.

A connector does no typing or renaming (the mapping does), so what it yields is the original
content that a quarantined row is reported with. Each batch is a frame of raw values plus an
``_origin`` column (``file:line``) that leads a user back to the record.
"""

from __future__ import annotations

import glob
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from csa.errors import SourceError
from csa.ingestion.sources import Source

ORIGIN = "_origin"
RAW_LINE = "_raw_line"


@dataclass
class Rejected:
    """A record that could not even be parsed; it goes to quarantine as it was."""

    origin: str
    original: Any
    reason: str


@dataclass
class RawBatch:
    frame: pd.DataFrame
    rejected: list[Rejected] = field(default_factory=list)


def resolve_files(source: Source, raw_dir: Path) -> list[Path]:
    """The files a file source reads, sorted so loads happen in a stable order."""
    pattern = source.location.replace("{raw}", str(raw_dir))
    # glob.glob, not Path.glob: the pattern is a whole (often absolute) path with wildcards.
    return sorted(Path(p) for p in glob.glob(pattern))  # noqa: PTH207


def read_batches(
    source: Source, raw_dir: Path, batch_rows: int, fields: list[str]
) -> Iterator[RawBatch]:
    """Yield the source's records in batches of at most ``batch_rows``.

    Args:
        fields: the source fields the mapping uses; nested JSON fields are written with dots.
    """
    if source.connector == "sql":
        yield from _sql_batches(source, batch_rows)
        return
    files = resolve_files(source, raw_dir)
    if not files and source.required:
        raise SourceError(
            f"source {source.name!r}: no file matches {source.location!r} "
            f"(raw folder {raw_dir}); export it there or fix `location` in sources.yaml."
        )
    reader = _FILE_READERS[source.connector]
    for path in files:
        try:
            yield from reader(path, source, batch_rows, fields)
        except (OSError, ValueError, UnicodeDecodeError, orjson.JSONDecodeError) as exc:
            raise SourceError(
                f"source {source.name!r}: cannot read {path}: {exc}; "
                "check that the file is a complete, valid "
                f"{source.connector.upper()} export."
            ) from exc


def _with_origin(frame: pd.DataFrame, path: Path, first_line: int) -> pd.DataFrame:
    frame[ORIGIN] = [f"{path.name}:{n}" for n in range(first_line, first_line + len(frame))]
    return frame


def _csv_batches(
    path: Path, source: Source, batch_rows: int, fields: list[str]
) -> Iterator[RawBatch]:
    # Everything is read as text: typing belongs to the mapping, where failures are per row.
    with pd.read_csv(
        path, dtype=str, keep_default_na=False, na_values=[""], chunksize=batch_rows
    ) as chunks:
        line = 2  # line 1 is the header
        for chunk in chunks:
            yield RawBatch(_with_origin(chunk, path, line))
            line += len(chunk)


def _parquet_batches(
    path: Path, source: Source, batch_rows: int, fields: list[str]
) -> Iterator[RawBatch]:
    row = 1
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        frame = batch.to_pandas()
        yield RawBatch(_with_origin(frame, path, row))
        row += len(frame)


def _pick(record: dict[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _records_frame(records: list[dict[str, Any]], fields: list[str]) -> pd.DataFrame:
    # Only the fields the mapping uses are extracted: cheaper than flattening every record.
    return pd.DataFrame({name: [_pick(r, name) for r in records] for name in fields})


def _jsonl_batches(
    path: Path, source: Source, batch_rows: int, fields: list[str]
) -> Iterator[RawBatch]:
    # Lines are parsed by DuckDB's JSON functions in bulk: per-line parsing in Python is the
    # bottleneck at millions of events. Python only splits the file into lines.
    extract = ", ".join(
        f'CASE WHEN ok THEN json_extract_string(line, ?) END AS "{name}"' for name in fields
    )
    paths = ["$" + "".join(f'."{part}"' for part in name.split(".")) for name in fields]
    query = f"""
        SELECT number, line, parsed, ok, {extract}
        FROM (
            SELECT *, parsed AND CASE WHEN parsed THEN json_type(line) = 'OBJECT' END AS ok
            FROM (SELECT number, line, json_valid(line) AS parsed FROM batch)
        )
    """
    connection = duckdb.connect()
    try:
        with path.open("rb") as handle:
            line_no = 1
            while True:
                lines = list(itertools.islice(handle, batch_rows))
                if not lines:
                    return
                texts = [_decode(raw).strip() for raw in lines]
                numbers = range(line_no, line_no + len(lines))
                line_no += len(lines)
                batch = pa.table({"number": pa.array(numbers, pa.int64()), "line": texts})
                connection.register("batch", batch)
                frame = connection.execute(query, paths).df()
                connection.unregister("batch")
                frame = frame[frame["line"] != ""]
                bad = frame[~frame["ok"]]
                rejected = [
                    Rejected(
                        f"{path.name}:{row.number}",
                        row.line,
                        "not valid JSON" if not row.parsed else "not a JSON object",
                    )
                    for row in bad.itertuples(index=False)
                ]
                good = frame[frame["ok"]]
                records = good[fields].astype(object).where(good[fields].notna(), None)
                records[ORIGIN] = [f"{path.name}:{n}" for n in good["number"]]
                records[RAW_LINE] = good["line"].to_numpy()
                yield RawBatch(records.reset_index(drop=True), rejected)
    finally:
        connection.close()


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _json_batches(
    path: Path, source: Source, batch_rows: int, fields: list[str]
) -> Iterator[RawBatch]:
    # A JSON document is parsed whole: help-desk and survey exports are small next to usage.
    content = orjson.loads(path.read_bytes())
    if source.record_path:
        if not isinstance(content, dict) or source.record_path not in content:
            raise ValueError(f"no key {source.record_path!r} holding the records")
        content = content[source.record_path]
    if not isinstance(content, list):
        raise ValueError("expected a list of records (set record_path to the key holding it)")
    for start in range(0, len(content), batch_rows):
        chunk = content[start : start + batch_rows]
        good = [r for r in chunk if isinstance(r, dict)]
        rejected = [
            Rejected(f"{path.name}:record {start + i + 1}", r, "not a JSON object")
            for i, r in enumerate(chunk)
            if not isinstance(r, dict)
        ]
        frame = _records_frame(good, fields)
        frame[ORIGIN] = [
            f"{path.name}:record {start + i + 1}"
            for i, r in enumerate(chunk)
            if isinstance(r, dict)
        ]
        yield RawBatch(frame, rejected)


def _sql_batches(source: Source, batch_rows: int) -> Iterator[RawBatch]:
    import sqlalchemy
    from sqlalchemy.exc import SQLAlchemyError

    try:
        engine = sqlalchemy.create_engine(source.location)
        with engine.connect() as connection:
            row = 1
            for chunk in pd.read_sql_query(
                sqlalchemy.text(str(source.query)), connection, chunksize=batch_rows
            ):
                chunk = chunk.astype(object).where(chunk.notna(), None)
                chunk[ORIGIN] = [f"query row {n}" for n in range(row, row + len(chunk))]
                row += len(chunk)
                yield RawBatch(chunk)
    except SQLAlchemyError as exc:
        reason = str(exc).splitlines()[0]
        raise SourceError(
            f"source {source.name!r}: the query against {_redact(source.location)} failed: "
            f"{reason}; check the URL, the credentials and the query in sources.yaml."
        ) from exc
    finally:
        if "engine" in locals():
            engine.dispose()


def _redact(url: str) -> str:
    # Never print a password from a connection URL.
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<the configured URL>"


_FILE_READERS = {
    "csv": _csv_batches,
    "parquet": _parquet_batches,
    "jsonl": _jsonl_batches,
    "json": _json_batches,
}
