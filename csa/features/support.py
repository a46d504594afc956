"""Support and survey features: ticket load, resolution speed, urgency and NPS."""

from __future__ import annotations

import duckdb
import pandas as pd

from csa.features.definitions import SUPPORT
from csa.features.windows import KEYS, safe_ratio, trailing_sums

# The tickets table keeps only each ticket's latest version: a ticket is resolved from its
# ``solved_at``, or, when a closed ticket lacks one, from its last update. A resolution
# recorded before creation is read as happening at creation.
# (DuckDB's GREATEST skips nulls, hence the explicit CASE for unresolved tickets.)
_RESOLVED = """
    SELECT account_id, resolution_hours,
           CASE WHEN closed_at IS NOT NULL THEN GREATEST(created_at, closed_at) END
               AS resolved_at
    FROM (
        SELECT *, CASE WHEN solved_at IS NOT NULL THEN solved_at
                       WHEN status IN ('solved', 'closed') THEN updated_at END AS closed_at
        FROM tickets
    )
"""


def support_features(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The ``account_support`` frame for every row of the ``grid`` table."""
    opened = trailing_sums(
        con,
        "SELECT account_id, created_at AS ts, 1 AS tickets, "
        "CASE WHEN priority IN ('high', 'urgent') THEN 1 ELSE 0 END AS high_priority "
        "FROM tickets",
        ["tickets", "high_priority"],
        [30, 90, None],
    )
    resolved = trailing_sums(
        con,
        f"SELECT account_id, resolved_at AS ts, 1 AS resolved FROM ({_RESOLVED}) "
        "WHERE resolved_at IS NOT NULL",
        ["resolved"],
        [None],
    )
    resolution = con.execute(
        f"""
        SELECT MEDIAN(t.resolution_hours) AS median_hours
        FROM grid g LEFT JOIN ({_RESOLVED}) t
          ON g.account_id = t.account_id AND t.resolved_at <= g.as_of
         AND t.resolved_at > g.as_of - INTERVAL 90 DAY
        GROUP BY g.account_id, g.as_of
        ORDER BY g.account_id, g.as_of
        """
    ).df()["median_hours"]
    nps = _nps(con)

    frame = opened[[*KEYS, "tickets_30d", "tickets_90d"]].copy()
    frame["open_tickets"] = (
        opened["tickets_total"].to_numpy() - resolved["resolved_total"].to_numpy()
    )
    frame["median_resolution_hours_90d"] = resolution.to_numpy(dtype="float64")
    frame["high_priority_share_90d"] = safe_ratio(
        opened["high_priority_90d"], opened["tickets_90d"]
    )
    frame["nps_last"] = nps["nps_last"].astype("Int64").to_numpy()
    frame["nps_change"] = nps["nps_change"].astype("Int64").to_numpy()
    for column in ("nps_last", "nps_change"):
        frame[column] = frame[column].astype("Int64")
    return frame[KEYS + SUPPORT.names]


def _nps(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    # Responses sharing an instant are ordered by response_id; the change compares the latest
    # response with the one just before it in that order.
    return con.execute(
        """
        WITH ordered AS (
            SELECT account_id, submitted_at, score,
                   LAG(score) OVER (PARTITION BY account_id
                                    ORDER BY submitted_at, response_id) AS previous,
                   ROW_NUMBER() OVER (PARTITION BY account_id, submitted_at
                                      ORDER BY response_id DESC) AS rank_at_instant
            FROM survey_responses
        )
        SELECT r.score AS nps_last, r.score - r.previous AS nps_change
        FROM grid g ASOF LEFT JOIN (SELECT * FROM ordered WHERE rank_at_instant = 1) r
          ON g.account_id = r.account_id AND g.as_of >= r.submitted_at
        ORDER BY g.account_id, g.as_of
        """
    ).df()
