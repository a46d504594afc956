"""Account profile features: the contract as it stood on each snapshot date.

The CRM's account row only knows the present (today's plan, today's seats), so reading it
would leak the future into training. The contract at a snapshot is instead the latest change
of each subscription at or before that instant, from the subscription change history.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from csa.features.definitions import JOIN_KEY, PROFILE
from csa.features.windows import KEYS

# Average month and year lengths, for rolling a past renewal date forward by whole periods.
PERIOD_DAYS = {"monthly": 30.4375, "annual": 365.25}


def contract_state(con: duckdb.DuckDBPyConnection, shift_days: int = 0) -> pd.DataFrame:
    """Plan, billing period, seats, MRR and period end per ``grid`` row, ``shift_days`` earlier.

    An account with several live subscriptions sums their seats and MRR and takes its plan and
    billing period from the one with the highest MRR. Changes sharing a subscription and an
    instant are ordered by ``change_id``, the larger one being the later.

    Returns:
        One row per grid row, in grid order; contract columns are null where no subscription
        had started by then.
    """
    return con.execute(
        f"""
        WITH changes AS (
            SELECT * FROM subscriptions
            QUALIFY ROW_NUMBER() OVER (PARTITION BY account_id, subscription_id, effective_at
                                       ORDER BY change_id DESC) = 1
        ), grid_subs AS (
            SELECT g.account_id, g.as_of, s.subscription_id
            FROM grid g JOIN (SELECT DISTINCT account_id, subscription_id FROM subscriptions) s
              ON g.account_id = s.account_id
        ), state AS (
            SELECT gs.account_id, gs.as_of, gs.subscription_id, c.plan_tier, c.billing_period,
                   c.seats, c.mrr, c.period_end
            FROM grid_subs gs ASOF JOIN changes c
              ON gs.account_id = c.account_id AND gs.subscription_id = c.subscription_id
             AND gs.as_of - INTERVAL {int(shift_days)} DAY >= c.effective_at
            WHERE c.status IS DISTINCT FROM 'canceled'
        ), account_state AS (
            SELECT account_id, as_of, plan_tier, billing_period, period_end,
                   SUM(seats) OVER per_snapshot AS seats,
                   SUM(mrr) OVER per_snapshot AS mrr
            FROM state
            WINDOW per_snapshot AS (PARTITION BY account_id, as_of)
            QUALIFY ROW_NUMBER() OVER (PARTITION BY account_id, as_of
                                       ORDER BY mrr DESC, subscription_id) = 1
        )
        SELECT g.account_id, g.as_of, s.plan_tier, s.billing_period, s.seats, s.mrr, s.period_end
        FROM grid g LEFT JOIN account_state s
          ON g.account_id = s.account_id AND g.as_of = s.as_of
        ORDER BY g.account_id, g.as_of
        """
    ).df()


def profile_features(state: pd.DataFrame, lifetimes: pd.DataFrame) -> pd.DataFrame:
    """The ``account_profile`` frame from the contract state and the account lifetimes."""
    frame = state.merge(
        lifetimes[[JOIN_KEY, "start_at", "size_band"]], on=JOIN_KEY, how="left", sort=False
    )
    as_of = frame["as_of"]
    frame["tenure_days"] = (as_of - frame["start_at"]).dt.total_seconds() / 86_400.0
    frame["days_to_renewal"] = days_to_renewal(
        as_of, frame["period_end"], frame["start_at"], frame["billing_period"]
    )
    frame["seats"] = frame["seats"].astype("Int64")
    return frame[KEYS + PROFILE.names]


def days_to_renewal(
    as_of: pd.Series, period_end: pd.Series, start_at: pd.Series, billing_period: pd.Series
) -> np.ndarray:
    """Days until the next renewal after each snapshot.

    The current period's end is the renewal date when the billing system recorded one; otherwise
    the contract start anchors the periods. A date already passed is rolled forward by whole
    billing periods (a renewal without a recorded change row).
    """
    anchor = period_end.where(period_end.notna(), start_at)
    delta = (anchor - as_of).dt.total_seconds().to_numpy() / 86_400.0
    period = billing_period.map(PERIOD_DAYS).to_numpy(dtype="float64")
    rolled = np.mod(delta, period)
    return np.where(delta > 0, delta, rolled)
