"""Billing features: failed payments and how the contract moved over the last 90 days."""

from __future__ import annotations

import duckdb
import pandas as pd

from csa.features.definitions import BILLING
from csa.features.windows import KEYS, trailing_sums

LOOKBACK_DAYS = 90


def billing_features(
    con: duckdb.DuckDBPyConnection, state: pd.DataFrame, state_before: pd.DataFrame
) -> pd.DataFrame:
    """The ``account_billing`` frame for every row of the ``grid`` table.

    Args:
        con: lake connection holding the ``grid`` table.
        state: contract state at each snapshot (``account.contract_state``).
        state_before: contract state ``LOOKBACK_DAYS`` earlier; null where the account had
            no subscription yet, which leaves the changes unknown rather than "from zero".
    """
    payments = trailing_sums(
        con,
        "SELECT account_id, occurred_at AS ts, 1 AS failed_payments FROM billing_events "
        "WHERE event_type = 'payment_failed'",
        ["failed_payments"],
        [LOOKBACK_DAYS],
    )
    seat_moves = trailing_sums(
        con,
        "SELECT account_id, effective_at AS ts, 1 AS seat_changes FROM subscriptions "
        "WHERE change_type IN ('seat_increase', 'seat_decrease')",
        ["seat_changes"],
        [LOOKBACK_DAYS],
    )
    frame = payments
    frame["seat_changes_90d"] = seat_moves["seat_changes_90d"].to_numpy()
    frame["mrr_change_90d"] = state["mrr"].to_numpy() - state_before["mrr"].to_numpy()
    frame["seat_change_90d"] = (
        state["seats"].astype("Int64").to_numpy() - state_before["seats"].astype("Int64").to_numpy()
    )
    frame["seat_change_90d"] = frame["seat_change_90d"].astype("Int64")
    return frame[KEYS + BILLING.names]
