"""Training labels: did the account churn, or expand, within the horizon after a snapshot.

A snapshot whose horizon reaches past the end of the data and saw no event is censored (null),
not negative: the lake cannot yet tell whether the account churned. Churn is the earlier of the
CRM's ``churned_at`` and a ``cancellation`` change; expansion is a ``seat_increase`` or
``upgrade`` change.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from csa.features.definitions import JOIN_KEY, label_name
from csa.features.windows import KEYS

EXPANSION_CHANGES = ("seat_increase", "upgrade")


def snapshot_labels(
    con: duckdb.DuckDBPyConnection,
    lifetimes: pd.DataFrame,
    horizon_days: int,
    end: pd.Timestamp,
) -> pd.DataFrame:
    """Churn and expansion labels (nullable 0/1) for every row of the ``grid`` table."""
    changes = ", ".join(f"'{change}'" for change in EXPANSION_CHANGES)
    frame = con.execute(
        f"""
        SELECT g.account_id, g.as_of, e.effective_at AS next_expansion
        FROM grid g ASOF LEFT JOIN (
            SELECT account_id, effective_at FROM subscriptions WHERE change_type IN ({changes})
        ) e ON g.account_id = e.account_id AND g.as_of < e.effective_at
        ORDER BY g.account_id, g.as_of
        """
    ).df()
    frame = frame.merge(lifetimes[[JOIN_KEY, "churn_at"]], on=JOIN_KEY, how="left", sort=False)
    horizon_end = frame["as_of"] + dt.timedelta(days=horizon_days)
    observed = (horizon_end <= end).to_numpy()
    churned = (frame["churn_at"] <= horizon_end).to_numpy()
    expanded = (frame["next_expansion"] <= horizon_end).to_numpy()

    # A churned account is known never to expand, so leaving is a negative expansion outcome.
    frame[label_name("churn", horizon_days)] = _label(churned, observed)
    frame[label_name("expansion", horizon_days)] = _label(expanded, observed | churned)
    return frame[KEYS + [label_name(m, horizon_days) for m in ("churn", "expansion")]]


def _label(positive: np.ndarray, known: np.ndarray) -> pd.Series:
    values = np.where(positive, 1, np.where(known, 0, -1))
    return pd.Series(values, dtype="Int64").mask(values == -1)
