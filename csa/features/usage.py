"""Usage features: activity, breadth and trend of product use per account and snapshot."""

from __future__ import annotations

import duckdb
import pandas as pd

from csa.features.definitions import (
    TREND_WINDOW,
    USAGE,
    USAGE_LIVE,
    USAGE_WINDOWS,
)
from csa.features.windows import (
    KEYS,
    day_ceiling,
    safe_ratio,
    trailing_distinct,
    trailing_sums,
)
from csa.ingestion.contracts import USAGE_EVENTS

# Every window any usage feature needs: the published ones, the trend base and the live day.
_ALL_WINDOWS = sorted({1, TREND_WINDOW, *USAGE_WINDOWS})


def usage_features(
    con: duckdb.DuckDBPyConnection, seats: pd.Series
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Usage features and the daily live counters for every row of the ``grid`` table.

    Args:
        con: lake connection holding the ``grid`` table (see ``windows.register_grid``).
        seats: paid seats per grid row, in grid order, for seat utilisation.

    Returns:
        The ``account_usage`` frame and the ``account_usage_live`` frame, both in grid order.
    """
    # Day ceilings collapse a year of events to one row per account, day and type while
    # keeping window counts exact (windows start and end on midnights).
    per_type = ", ".join(
        f"CASE WHEN event = '{event}' THEN quantity ELSE 0 END AS events_{event}"
        for event in USAGE_EVENTS
    )
    sums = trailing_sums(
        con,
        f"SELECT account_id, {day_ceiling('occurred_at')} AS ts, quantity AS events, {per_type} "
        "FROM usage_events",
        ["events", *(f"events_{event}" for event in USAGE_EVENTS)],
        _ALL_WINDOWS,
    )
    users = trailing_distinct(
        con,
        f"SELECT account_id, user_id AS member, {day_ceiling('occurred_at')} AS ts "
        "FROM usage_events",
        "active_users",
        _ALL_WINDOWS,
    )
    last_seen = con.execute(
        """
        SELECT r.ts AS last_seen FROM grid g
        ASOF LEFT JOIN (SELECT account_id, occurred_at AS ts FROM usage_events) r
          ON g.account_id = r.account_id AND g.as_of >= r.ts
        ORDER BY g.account_id, g.as_of
        """
    ).df()["last_seen"]

    frame = sums.join(users.drop(columns=KEYS))
    frame["days_since_last_activity"] = (
        frame["as_of"] - last_seen.dt.tz_convert("UTC")
    ).dt.total_seconds().to_numpy() / 86_400.0
    frame["events_trend_7v28"] = safe_ratio(
        frame["events_7d"] / 7, frame[f"events_{TREND_WINDOW}d"] / TREND_WINDOW
    )
    frame["active_users_trend_7v28"] = safe_ratio(
        frame["active_users_7d"], frame[f"active_users_{TREND_WINDOW}d"]
    )
    frame["feature_breadth_30d"] = sum(
        (frame[f"events_{event}_30d"] > 0).astype("int64") for event in USAGE_EVENTS
    )
    frame["seat_utilization"] = safe_ratio(frame["active_users_30d"], seats.to_numpy())

    usage = frame[KEYS + USAGE.names]
    live = frame[KEYS + USAGE_LIVE.names]
    return usage, live
