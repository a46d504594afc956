"""The snapshot grid: which accounts are described as of which instants.

A snapshot is a UTC midnight. Snapshots are laid backwards from the last midnight the lake
covers, every ``cadence_days``, so the newest one (the one the online store serves) is always
present. An account has snapshots from its contract start until it churns: a churned account is
not scored again.

Nothing is described before the lake has watched behaviour for a warm-up period (the longest
feature window by default): a CRM export reaches back to contracts signed years ago, but usage,
billing and support are only known from the day their exports begin, and a snapshot taken before
that would show a silent customer who was in fact busy.
"""

from __future__ import annotations

import datetime as dt
import logging

import duckdb
import pandas as pd

from csa.errors import LakeError
from csa.features.definitions import JOIN_KEY, SNAPSHOT_TIME

logger = logging.getLogger(__name__)

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


# Streams of behaviour. Subscriptions are left out: a contract's history starts at its signature,
# long before the lake began to observe the account.
_BEHAVIOUR_TIMES = tuple(pair for pair in _DATA_TIMES if pair[0] != "subscriptions")


def observed_start(con: duckdb.DuckDBPyConnection) -> pd.Timestamp | None:
    """The earliest behaviour (usage, payment, ticket, survey) the lake holds, or None."""
    union = " UNION ALL ".join(
        f"SELECT MIN({col}) AS t FROM {table}" for table, col in _BEHAVIOUR_TIMES
    )
    row = con.execute(f"SELECT MIN(t) FROM ({union})").fetchone()
    if row is None or row[0] is None:
        return None
    return pd.Timestamp(row[0]).tz_convert("UTC")


def first_snapshot(
    start: pd.Timestamp | None, end: pd.Timestamp, warmup_days: int
) -> pd.Timestamp | None:
    """The earliest instant a snapshot may describe: ``warmup_days`` after behaviour begins.

    A lake shorter than the warm-up still gets snapshots from its first behaviour, so that a
    young installation can serve scores; its early windows are then partial.
    """
    if start is None:
        return None
    warm = start + dt.timedelta(days=warmup_days)
    if warm > end:
        logger.warning(
            "the lake holds %d days of behaviour, fewer than features.warmup_days (%d): "
            "snapshots start at its first day and their longer windows are partial",
            (end - start).days,
            warmup_days,
        )
        return start
    return warm


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


def snapshot_grid(
    lifetimes: pd.DataFrame,
    end: pd.Timestamp,
    cadence_days: int,
    first: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """One row per (account, snapshot) while the account is a customer, sorted.

    Args:
        first: no snapshot before this instant (see ``first_snapshot``).
    """
    if lifetimes.empty:
        return pd.DataFrame(
            {JOIN_KEY: pd.Series(dtype=str), SNAPSHOT_TIME: pd.Series(dtype="datetime64[us, UTC]")}
        )
    earliest = lifetimes["start_at"].min()
    if first is not None:
        earliest = max(earliest, first)
    times = snapshot_times(earliest, end, cadence_days)
    grid = lifetimes[[JOIN_KEY, "start_at", "churn_at"]].merge(
        pd.DataFrame({SNAPSHOT_TIME: times}), how="cross"
    )
    alive = (grid[SNAPSHOT_TIME] >= grid["start_at"]) & (
        grid["churn_at"].isna() | (grid[SNAPSHOT_TIME] < grid["churn_at"])
    )
    if first is not None:
        alive &= grid[SNAPSHOT_TIME] >= first
    grid = grid.loc[alive, [JOIN_KEY, SNAPSHOT_TIME]]
    grid[SNAPSHOT_TIME] = grid[SNAPSHOT_TIME].astype("datetime64[us, UTC]")
    return grid.sort_values([JOIN_KEY, SNAPSHOT_TIME], ignore_index=True)
