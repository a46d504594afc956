"""Trailing-window aggregates for every snapshot, without a join per window.

A window of ``W`` days at snapshot ``s`` holds the events with ``s - W days < time <= s``. Sums
are differences of running totals found by ASOF joins (the running total at ``s`` minus the one
at ``s - W``), and distinct counts come from coverage segments, so the cost grows with the
number of events plus snapshots, not their product. Both helpers read the temporary table
``grid`` (``account_id``, ``as_of``) that ``register_grid`` creates.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import numpy as np
import pandas as pd

from csa.features.definitions import JOIN_KEY, SNAPSHOT_TIME

KEYS = [JOIN_KEY, SNAPSHOT_TIME]


def register_grid(con: duckdb.DuckDBPyConnection, grid: pd.DataFrame) -> None:
    """Make ``grid`` (one row per account and snapshot) the table the helpers aggregate for."""
    con.register("grid_frame", grid[KEYS])
    con.execute("CREATE OR REPLACE TEMP TABLE grid AS SELECT account_id, as_of FROM grid_frame")
    con.unregister("grid_frame")


def day_ceiling(column: str) -> str:
    """SQL for the first UTC midnight at or after ``column``.

    Snapshots and window edges are midnights, so an event falls in a window exactly when its
    ceiling does: bucketing by ceiling keeps windowed counts exact while collapsing rows.
    """
    floor = f"date_trunc('day', {column})"
    return f"(CASE WHEN {column} = {floor} THEN {floor} ELSE {floor} + INTERVAL 1 DAY END)"


def trailing_sums(
    con: duckdb.DuckDBPyConnection,
    events_sql: str,
    measures: Sequence[str],
    windows: Sequence[int | None],
) -> pd.DataFrame:
    """Sums of ``measures`` over trailing windows at every grid row.

    Args:
        con: connection holding the ``grid`` table.
        events_sql: a query yielding ``account_id``, ``ts`` and one column per measure.
        measures: the measure columns to sum.
        windows: window lengths in days; ``None`` sums everything up to the snapshot.

    Returns:
        ``account_id``, ``as_of`` and ``<measure>_<W>d`` (``<measure>_total`` for ``None``) per
        grid row, in grid order; zero where nothing happened.
    """
    running = ", ".join(
        f"SUM(SUM({m})) OVER (PARTITION BY account_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS {m}"
        for m in measures
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE running AS SELECT account_id, ts, {running} "
        f"FROM ({events_sql}) GROUP BY account_id, ts"
    )
    joins = ["ASOF LEFT JOIN running r0 ON g.account_id = r0.account_id AND g.as_of >= r0.ts"]
    selects = []
    for i, days in enumerate(windows, start=1):
        if days is None:
            selects += [f"COALESCE(r0.{m}, 0) AS {m}_total" for m in measures]
            continue
        joins.append(
            f"ASOF LEFT JOIN running r{i} ON g.account_id = r{i}.account_id "
            f"AND g.as_of - INTERVAL {days} DAY >= r{i}.ts"
        )
        selects += [f"COALESCE(r0.{m}, 0) - COALESCE(r{i}.{m}, 0) AS {m}_{days}d" for m in measures]
    frame = con.execute(
        f"SELECT g.account_id, g.as_of, {', '.join(selects)} FROM grid g {' '.join(joins)} "
        "ORDER BY g.account_id, g.as_of"
    ).df()
    con.execute("DROP TABLE running")
    return frame


def trailing_distinct(
    con: duckdb.DuckDBPyConnection, events_sql: str, name: str, windows: Sequence[int]
) -> pd.DataFrame:
    """Distinct members (e.g. users) seen in each trailing window at every grid row.

    A member seen at times ``t1 < t2 < ...`` is inside the window at ``s`` exactly when some
    ``ti`` lies in ``(s - W, s]``, i.e. ``s`` lies in ``[ti, ti + W)``. Clipping each interval at
    the next sighting makes them disjoint, so a running sum of +1/-1 at their edges counts the
    members covering ``s``.

    Args:
        con: connection holding the ``grid`` table.
        events_sql: a query yielding ``account_id``, ``ts`` and ``member``.
        name: prefix of the output columns, ``<name>_<W>d``.
        windows: window lengths in days.
    """
    frame = con.execute("SELECT account_id, as_of FROM grid ORDER BY account_id, as_of").df()
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE sightings AS SELECT DISTINCT account_id, member, ts "
        f"FROM ({events_sql})"
    )
    for days in windows:
        coverage = con.execute(
            f"""
            WITH segments AS (
                SELECT account_id, ts AS starts,
                       LEAST(ts + INTERVAL {days} DAY,
                             COALESCE(LEAD(ts) OVER (PARTITION BY account_id, member
                                                     ORDER BY ts),
                                      ts + INTERVAL {days} DAY)) AS ends
                FROM sightings
            ), edges AS (
                SELECT account_id, starts AS ts, 1 AS step FROM segments
                UNION ALL SELECT account_id, ends AS ts, -1 AS step FROM segments
            ), running AS (
                SELECT account_id, ts,
                       SUM(SUM(step)) OVER (PARTITION BY account_id ORDER BY ts
                                            ROWS UNBOUNDED PRECEDING) AS covered
                FROM edges GROUP BY account_id, ts
            )
            SELECT COALESCE(r.covered, 0) AS covered
            FROM grid g ASOF LEFT JOIN running r
              ON g.account_id = r.account_id AND g.as_of >= r.ts
            ORDER BY g.account_id, g.as_of
            """
        ).fetchnumpy()["covered"]
        frame[f"{name}_{days}d"] = coverage.astype("int64")
    con.execute("DROP TABLE sightings")
    return frame


def safe_ratio(
    numerator: pd.Series | np.ndarray, denominator: pd.Series | np.ndarray
) -> np.ndarray:
    """Element-wise ratio that is NaN (unknown), not infinite, where the denominator is 0."""
    num = np.asarray(numerator, dtype="float64")
    den = np.asarray(denominator, dtype="float64")
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=(den != 0) & ~np.isnan(den))
    return out
