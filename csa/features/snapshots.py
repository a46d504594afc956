"""The snapshot grid: which accounts are described as of which instants.

A snapshot is a UTC midnight. Snapshots are laid backwards from the last midnight the lake
covers, every ``cadence_days``, so the newest one (the one the online store serves) is always
present. An account has snapshots from its contract start until it churns: a churned account is
not scored again.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from csa.errors import LakeError
from csa.features.definitions import JOIN_KEY, SNAPSHOT_TIME

# Event times that say how far the lake reaches. Account rows are left out on purpose: their
# ``updated_at`` is the export time, not a time the business saw anything happen.
_DATA_TIMES = (
    ("usage_events", "occurred_at"),
    ("billing_events", "occurred_at"),
    ("subscriptions", "effective_at"),
    ("tickets", "created_at"),
    ("survey_responses", "submitted_at"),
)


def data_end(con: duckdb.DuckDBPyConnection) -> pd.Timestamp:
    """The latest event time in the lake: nothing after it is known.

    Raises:
        LakeError: the lake holds no events at all.
    """
    union = " UNION ALL ".join(f"SELECT MAX({col}) AS t FROM {table}" for table, col in _DATA_TIMES)
    row = con.execute(f"SELECT MAX(t) FROM ({union})").fetchone()
    if row is None or row[0] is None:
        raise LakeError("the lake holds no events; run `csa ingest` with data first.")
    return pd.Timestamp(row[0]).tz_convert("UTC")


def account_lifetimes(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per account: when it became a customer, when it churned (or NaT), its size band.

    The start is the earlier of the CRM contract start and the first subscription change; the
    churn is the earlier of the CRM's ``churned_at`` and the first ``cancellation`` change.
    """
    return con.execute(
        """
        WITH subs AS (
            SELECT account_id,
                   MIN(effective_at) AS first_change,
                   MIN(effective_at) FILTER (WHERE change_type = 'cancellation') AS cancelled
            FROM subscriptions GROUP BY account_id
        )
        SELECT a.account_id,
               LEAST(a.contract_start, s.first_change) AS start_at,
               LEAST(a.churned_at, s.cancelled) AS churn_at,
               a.size_band
        FROM accounts a LEFT JOIN subs s USING (account_id)
        WHERE LEAST(a.contract_start, s.first_change) IS NOT NULL
        ORDER BY a.account_id
        """
    ).df()


def snapshot_times(first: pd.Timestamp, end: pd.Timestamp, cadence_days: int) -> pd.DatetimeIndex:
    """UTC midnights from the last one at or before ``end`` back to ``first``, oldest first."""
    last = end.tz_convert("UTC").floor("D")
    start = first.tz_convert("UTC").floor("D")
    if start > last:
        return pd.DatetimeIndex([], tz="UTC")
    count = (last - start) // dt.timedelta(days=cadence_days) + 1
    steps = pd.to_timedelta(range(count - 1, -1, -1), unit="D") * cadence_days
    return pd.DatetimeIndex(last - steps)


def snapshot_grid(lifetimes: pd.DataFrame, end: pd.Timestamp, cadence_days: int) -> pd.DataFrame:
    """One row per (account, snapshot) while the account is a customer, sorted."""
    if lifetimes.empty:
        return pd.DataFrame(
            {JOIN_KEY: pd.Series(dtype=str), SNAPSHOT_TIME: pd.Series(dtype="datetime64[us, UTC]")}
        )
    times = snapshot_times(lifetimes["start_at"].min(), end, cadence_days)
    grid = lifetimes[[JOIN_KEY, "start_at", "churn_at"]].merge(
        pd.DataFrame({SNAPSHOT_TIME: times}), how="cross"
    )
    alive = (grid[SNAPSHOT_TIME] >= grid["start_at"]) & (
        grid["churn_at"].isna() | (grid[SNAPSHOT_TIME] < grid["churn_at"])
    )
    grid = grid.loc[alive, [JOIN_KEY, SNAPSHOT_TIME]]
    grid[SNAPSHOT_TIME] = grid[SNAPSHOT_TIME].astype("datetime64[us, UTC]")
    return grid.sort_values([JOIN_KEY, SNAPSHOT_TIME], ignore_index=True)
