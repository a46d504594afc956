"""The ingest engine: every configured source into its canonical lake table.

For each source: read batches (connector), shape them (mapping), check them (contract), send the
rows that fail to quarantine, drop what the lake already holds, and commit the rest to the table
in one Delta transaction. A source that cannot be read fails alone; the others still load.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pandera.errors
import pyarrow as pa
import pyarrow.parquet as pq

from csa.errors import ConfigError, CsaError, SourceError
from csa.ingestion import lake
from csa.ingestion.connectors import ORIGIN, RAW_LINE, RawBatch, read_batches
from csa.ingestion.contracts import TableSpec, table_spec
from csa.ingestion.mapping import Failure, apply_mapping, source_fields
from csa.ingestion.quarantine import QuarantineLog
from csa.ingestion.sources import Source, load_sources
from csa.settings import Settings

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass
class SourceReport:
    """What one source did in one run; ``read = accepted + duplicates + quarantined``."""

    table: str
    status: str = "ok"
    files: list[str] = field(default_factory=list)
    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    quarantine_path: str | None = None
    seconds: float = 0.0
    error: str | None = None


@dataclass
class IngestReport:
    run_id: str
    started_at: str
    sources: dict[str, SourceReport] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(s.status == "ok" for s in self.sources.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "started_at": self.started_at,
            "ok": self.ok,
            "sources": {name: asdict(report) for name, report in self.sources.items()},
        }


def ingest(
    settings: Settings,
    raw_dir: Path | None = None,
    only: list[str] | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Run the configured sources into the lake and report per source.

    Args:
        raw_dir: folder of the exports (``{raw}`` in sources.yaml); defaults to ``data/raw``.
        only: names of the sources to run; all when empty.
    """
    sources = load_sources(settings.sources_file, only)
    raw_dir = (raw_dir or settings.raw_dir).resolve()
    now = dt.datetime.now(dt.UTC)
    run_id = now.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    report = IngestReport(run_id=run_id, started_at=now.isoformat())
    settings.lake_dir.mkdir(parents=True, exist_ok=True)

    with _exclusive(settings.state_dir / "ingest.lock"):
        for index, source in enumerate(sources, start=1):
            started = time.perf_counter()
            result = SourceReport(table=source.table)
            report.sources[source.name] = result
            try:
                _load_source(source, settings, raw_dir, run_id, result)
            except CsaError as exc:
                result.status, result.error = "failed", str(exc)
                log.error("source %s failed: %s", source.name, exc)
            result.seconds = round(time.perf_counter() - started, 3)
            log.info(
                "%s -> %s: read %d, accepted %d, duplicates %d, quarantined %d in %.1f s",
                source.name,
                source.table,
                result.read,
                result.accepted,
                result.duplicates,
                result.quarantined,
                result.seconds,
            )
            if progress:
                progress("ingest", index, len(sources))
    return report


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    # Two ingests at once would race on the same tables; the second waits for the first.
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _load_source(
    source: Source, settings: Settings, raw_dir: Path, run_id: str, result: SourceReport
) -> None:
    spec = _spec_for(source)
    batches = read_batches(source, raw_dir, settings.ingestion.batch_rows, _fields(source))
    with QuarantineLog(settings.quarantine_dir, source.name, run_id) as quarantine:
        checked = _checked_batches(source, spec, batches, quarantine, result)
        if spec.mutable:
            _upsert(settings.lake_dir, spec, checked, result)
        else:
            _append_new(settings, spec, checked, result, run_id)
        path = quarantine.close()
        result.quarantined = quarantine.count
        result.quarantine_path = str(path) if path else None


def _spec_for(source: Source) -> TableSpec:
    spec = table_spec(source.table)
    if source.primary_key and source.primary_key != spec.key:
        raise ConfigError(
            f"source {source.name!r}: primary_key {source.primary_key!r} differs from table "
            f"{spec.name!r}'s key {spec.key!r}; map the source's key onto {spec.key!r}."
        )
    if source.cursor and source.cursor != spec.version:
        raise ConfigError(
            f"source {source.name!r}: cursor {source.cursor!r} differs from table "
            f"{spec.name!r}'s version column {spec.version!r}; map it onto {spec.version!r}."
        )
    return spec


def _fields(source: Source) -> list[str]:
    return source_fields(source.mapping)


def _checked_batches(
    source: Source,
    spec: TableSpec,
    batches: Iterator[RawBatch],
    quarantine: QuarantineLog,
    result: SourceReport,
) -> Iterator[pd.DataFrame]:
    """Mapped, contract-checked rows; refused ones go to quarantine on the way."""
    for batch in batches:
        result.files = sorted({*result.files, *_files_of(batch)})
        result.read += len(batch.frame) + len(batch.rejected)
        for rejected in batch.rejected:
            reason = {"column": None, "check": "parse_record", "value": rejected.reason}
            quarantine.add(rejected.origin, rejected.original, [reason])
        if batch.frame.empty:
            continue
        raw = batch.frame.reset_index(drop=True)
        mapped = apply_mapping(
            raw.drop(columns=[RAW_LINE], errors="ignore"), source.mapping, source.name
        )
        _require_columns(source, spec, mapped.frame)
        valid = validate_rows(spec, mapped.frame, mapped.failures)
        for index, failures in mapped.failures.items():
            quarantine.add(
                raw.at[index, ORIGIN], _original(raw, index), [f.as_dict() for f in failures]
            )
        yield valid


def _files_of(batch: RawBatch) -> set[str]:
    origins = [*batch.frame.get(ORIGIN, pd.Series(dtype=object)).head(1)]
    origins += [*batch.frame.get(ORIGIN, pd.Series(dtype=object)).tail(1)]
    origins += [r.origin for r in batch.rejected[:1]]
    return {o.split(":")[0] for o in origins if isinstance(o, str) and ".sql" not in o}


def _original(raw: pd.DataFrame, index: Any) -> Any:
    if RAW_LINE in raw:
        return raw.at[index, RAW_LINE]
    row = raw.loc[index].drop(labels=[ORIGIN])
    return {k: (None if pd.isna(v) else v) for k, v in row.items()}


def _require_columns(source: Source, spec: TableSpec, frame: pd.DataFrame) -> None:
    missing = [c for c in spec.columns if c not in frame]
    if missing:
        raise SourceError(
            f"source {source.name!r}: the mapping gives no column {missing} that table "
            f"{spec.name!r} needs; add them to the source's `rename` or `derive` in sources.yaml."
        )


def validate_rows(
    spec: TableSpec, frame: pd.DataFrame, failures: dict[Any, list[Failure]]
) -> pd.DataFrame:
    """Rows that meet the contract, coerced to its types; every other row gets its reasons.

    Rows whose text failed to parse are checked too, so a user sees every problem of a row at
    once; only the check of the unparsed column itself is skipped, as it would merely repeat it.
    """
    # Repeats of a key inside one batch are duplicates to count, not contract breaches.
    candidates = _latest_per_key(spec, frame[spec.columns])
    repeats = candidates.attrs.get("repeats", 0)
    try:
        checked = spec.validate(candidates)
        if not failures:
            checked.attrs["repeats"] = repeats
            return checked
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        per_row = cases[cases["index"].notna()]
        if per_row.empty:
            raise SourceError(
                f"table {spec.name!r} contract failed for the whole batch: "
                f"{cases[['column', 'check']].drop_duplicates().to_dict('records')}"
            ) from exc
        for case in per_row.itertuples(index=False):
            unparsed = {f.column for f in failures.get(case.index, [])}
            if case.column not in unparsed:
                failures[case.index].append(
                    Failure(str(case.column), str(case.check), case.failure_case)
                )
    valid = spec.validate(candidates.drop(index=list(failures), errors="ignore"))
    valid.attrs["repeats"] = repeats
    return valid


def _latest_per_key(spec: TableSpec, frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    keyed = frame[spec.key].notna()
    ordered = frame.sort_values(spec.version, kind="stable") if spec.mutable else frame
    repeated = ordered.duplicated(subset=[spec.key], keep="last" if spec.mutable else "first")
    drop = ordered.index[repeated & keyed.loc[ordered.index]]
    frame.attrs["repeats"] = len(drop)
    return frame.drop(index=drop)


def _upsert(
    lake_dir: Path, spec: TableSpec, batches: Iterator[pd.DataFrame], result: SourceReport
) -> None:
    """Mutable tables: a newer version of a row replaces the stored one, in one commit."""
    frames = list(batches)
    incoming = pd.concat(frames, ignore_index=True) if frames else spec.empty_frame()
    repeats = sum(f.attrs.get("repeats", 0) for f in frames)
    incoming = _latest_per_key(spec, incoming)
    repeats += incoming.attrs.get("repeats", 0)
    stored = lake.read_table(lake_dir, spec.name)

    known = incoming[spec.key].map(stored.set_index(spec.key)[spec.version])
    stale = known.notna() & (incoming[spec.version] <= known)
    fresh = incoming[~stale]
    result.duplicates = repeats + int(stale.sum())
    result.accepted = len(fresh)
    if fresh.empty:
        return
    merged = pd.concat([stored[~stored[spec.key].isin(fresh[spec.key])], fresh], ignore_index=True)
    lake.replace_table(lake_dir, spec.name, merged.sort_values(spec.key, kind="stable"))


def _append_new(
    settings: Settings,
    spec: TableSpec,
    batches: Iterator[pd.DataFrame],
    result: SourceReport,
    run_id: str,
) -> None:
    """Append-only tables: stage the checked rows, then commit those the lake lacks at once.

    Staging on disk and deduplicating in DuckDB keeps memory bounded however large the export.
    """
    staging = settings.state_dir / "staging" / f"{spec.name}-{run_id}.parquet"
    staging.parent.mkdir(parents=True, exist_ok=True)
    schema = spec.arrow_schema.append(pa.field("_seq", pa.int64()))
    staged, repeats = 0, 0
    try:
        with pq.ParquetWriter(staging, schema) as writer:
            for frame in batches:
                repeats += frame.attrs.get("repeats", 0)
                table = spec.to_arrow(frame)
                sequence = pa.array(range(staged, staged + len(frame)), pa.int64())
                writer.write_table(table.append_column("_seq", sequence))
                staged += len(frame)
        accepted = _commit_unseen(settings, spec, staging) if staged else 0
    finally:
        staging.unlink(missing_ok=True)
    result.accepted = accepted
    result.duplicates = repeats + staged - accepted


def _commit_unseen(settings: Settings, spec: TableSpec, staging: Path) -> int:
    existing = lake.table_files(settings.lake_dir, spec.name)
    columns = ", ".join(f'"{c}"' for c in spec.columns)
    unseen = f"""
        SELECT {columns} FROM (
            SELECT *, row_number() OVER (PARTITION BY "{spec.key}" ORDER BY _seq) AS _rank
            FROM read_parquet(?)
        ) AS staged
        WHERE _rank = 1
    """
    params: list[Any] = [str(staging)]
    if existing:
        unseen += f"""AND NOT EXISTS (
            SELECT 1 FROM read_parquet(?) AS stored WHERE stored."{spec.key}" = staged."{spec.key}"
        )"""
        params.append(existing)
    unseen += " ORDER BY _seq"

    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute("SET memory_limit = '1GB'")
    connection.execute(f"SET temp_directory = '{settings.state_dir / 'duckdb-spill'}'")
    try:
        reader = connection.sql(unseen, params=params).to_arrow_reader(100_000)
        first = next(iter(reader), None)
        if first is None:
            return 0  # nothing new: no empty commit either
        written = 0

        def batches() -> Iterator[pa.RecordBatch]:
            nonlocal written
            for batch in itertools.chain([first], reader):
                written += batch.num_rows
                yield from pa.Table.from_batches([batch]).cast(spec.arrow_schema).to_batches()

        lake.append_batches(settings.lake_dir, spec.name, spec.arrow_schema, batches())
        return written
    finally:
        connection.close()
