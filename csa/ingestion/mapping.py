"""Mappings: turn a batch of raw source records into rows shaped like a canonical table.

Steps run in a fixed order (rename, map values, parse types, derive) and never drop a row: a value
that fails to parse becomes missing and its row is remembered with the reason, so the quarantine
can say which column held which unparseable text.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from csa.errors import ConfigError
from csa.ingestion.sources import Mapping

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


@dataclass(frozen=True)
class Failure:
    """Why a row was rejected: the canonical column, the check and the offending value."""

    column: str
    check: str
    value: Any

    def as_dict(self) -> dict[str, Any]:
        return {"column": self.column, "check": self.check, "value": _jsonable(self.value)}


@dataclass
class MappedBatch:
    frame: pd.DataFrame
    failures: dict[Any, list[Failure]] = field(default_factory=lambda: defaultdict(list))


def source_fields(mapping: Mapping) -> list[str]:
    """The source fields a mapping reads, for connectors that extract fields selectively."""
    return list(mapping.rename)


def apply_mapping(raw: pd.DataFrame, mapping: Mapping, source_name: str) -> MappedBatch:
    """Rename, map values, parse types and derive columns; the index is kept."""
    frame = raw.rename(columns=mapping.rename)
    batch = MappedBatch(frame)

    for column, table in mapping.values.items():
        if column in frame:
            mapped = frame[column].map(table)
            frame[column] = mapped.where(mapped.notna(), frame[column])

    for column, kind in mapping.parse.items():
        if column not in frame:
            raise ConfigError(
                f"source {source_name!r}: mapping parses column {column!r}, but no renamed "
                f"field produces it; add it to `rename` or remove it from `parse`."
            )
        parsed = _PARSERS[kind](frame[column])
        broken = _present_mask(frame[column]) & parsed.isna()
        for index, value in frame.loc[broken, column].items():
            batch.failures[index].append(Failure(column, f"parse_{kind}", value))
        frame[column] = parsed

    for column, expression in mapping.derive.items():
        frame[column] = _derive(frame, expression, column, source_name)
    return batch


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and np.isnan(value):
        return False
    return not (isinstance(value, str) and value.strip() == "")


def _present_mask(series: pd.Series) -> pd.Series:
    """True where a value was given: not missing and not blank text."""
    if series.dtype != object:
        return series.notna()
    blank = series.map(lambda v: isinstance(v, str) and not v.strip(), na_action="ignore")
    return series.notna() & ~blank.eq(True)


def _given(series: pd.Series) -> pd.Series:
    return series.where(_present_mask(series))


def _parse_str(series: pd.Series) -> pd.Series:
    given = _given(series)
    return given.map(str, na_action="ignore").astype(object).where(given.notna(), None)


def _parse_int(series: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(_given(series), errors="coerce")
    whole = numbers.where(numbers.isna() | (numbers == np.floor(numbers)))
    return whole.astype("Int64")


def _parse_float(series: pd.Series) -> pd.Series:
    return pd.to_numeric(_given(series), errors="coerce")


def _parse_bool(series: pd.Series) -> pd.Series:
    def convert(value: Any) -> Any:
        if isinstance(value, bool | np.bool_):
            return bool(value)
        text = str(value).strip().lower() if _present(value) else None
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        return None

    return series.map(convert).astype("boolean")


def _parse_timestamp(series: pd.Series) -> pd.Series:
    # Text without an offset is taken as UTC; text with one is converted to UTC.
    values = _given(series)
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.to_datetime(values, utc=True)
    else:
        stamps = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    return stamps.astype("datetime64[ns, UTC]")


def _parse_date(series: pd.Series) -> pd.Series:
    return _parse_timestamp(series).dt.floor("D")


_PARSERS = {
    "str": _parse_str,
    "int": _parse_int,
    "float": _parse_float,
    "bool": _parse_bool,
    "timestamp": _parse_timestamp,
    "date": _parse_date,
}


_connections = threading.local()


def _connection() -> duckdb.DuckDBPyConnection:
    # One in-memory DuckDB per thread, kept: opening one takes longer than deriving a column
    # for a few hundred rows, which is what the service's event intake does on every request.
    connection = getattr(_connections, "duckdb", None)
    if connection is None:
        connection = duckdb.connect()
        connection.execute("SET TimeZone = 'UTC'")
        _connections.duckdb = connection
    return connection


def _derive(frame: pd.DataFrame, expression: str, column: str, source_name: str) -> pd.Series:
    # DuckDB evaluates the expression: a known SQL dialect instead of a home-made one, and no
    # Python code from a config file is ever executed.
    connection = _connection()
    try:
        # Only the columns the expression names are handed over: converting the rest costs.
        used = [c for c in frame.columns if c in expression] or list(frame.columns[:1])
        connection.register("batch", frame[used].reset_index(drop=True))
        result = connection.execute(f"SELECT {expression} AS value FROM batch").df()["value"]
    except duckdb.Error as exc:
        raise ConfigError(
            f"source {source_name!r}: derived column {column!r} = {expression!r} failed: "
            f"{str(exc).splitlines()[0]}; fix the expression in sources.yaml."
        ) from exc
    finally:
        connection.unregister("batch")
    result.index = frame.index
    if pd.api.types.is_datetime64_any_dtype(result):
        result = result.dt.tz_localize("UTC") if result.dt.tz is None else result
    return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value
