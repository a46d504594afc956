"""The ground truth: what really happened, including the latent state no export shows.

Models and drift monitors are judged against these tables: per account (segment, signup, churn,
scenario exposure), per account and day (health, hazards, activity) and per churn, expansion and
contraction event.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from csa.ingestion.simulator import billing as bill
from csa.ingestion.simulator.company import SIZE_BANDS, TIERS
from csa.ingestion.simulator.history import ChunkHistory
from csa.ingestion.simulator.lifecycle import NEVER
from csa.ingestion.simulator.scenarios import CORE_SEGMENT_NAME, NEW_SEGMENT_NAME, Scenario
from csa.ingestion.simulator.timeline import Timeline

ACCOUNT_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("account_name", pa.string()),
        ("segment", pa.string()),
        ("industry", pa.string()),
        ("country", pa.string()),
        ("size_band", pa.string()),
        ("billing_period", pa.string()),
        ("plan_at_signup", pa.string()),
        ("plan_at_end", pa.string()),
        ("seats_at_signup", pa.int64()),
        ("seats_at_end", pa.int64()),
        ("signup_date", pa.date32()),
        ("existing_at_start", pa.bool_()),
        ("churn_date", pa.date32()),
        ("churned", pa.bool_()),
        ("expanded", pa.bool_()),
        ("contracted", pa.bool_()),
        ("base_health", pa.float64()),
        ("mean_health", pa.float64()),
        ("champion_left_date", pa.date32()),
        ("outages_hit", pa.int64()),
        ("new_segment", pa.bool_()),
        ("signed_up_after_change", pa.bool_()),
        ("exposed_to_usage_drop", pa.bool_()),
    ]
)
EVENT_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("date", pa.date32()),
        ("kind", pa.string()),
        ("change_type", pa.string()),
        ("plan", pa.string()),
        ("seats", pa.int64()),
        ("previous_mrr", pa.float64()),
        ("mrr", pa.float64()),
        ("health", pa.float32()),
        ("churn_hazard", pa.float32()),
        ("expansion_hazard", pa.float32()),
    ]
)
_KIND = {
    bill.CANCELLATION: "churn",
    bill.SEAT_INCREASE: "expansion",
    bill.UPGRADE: "expansion",
    bill.SEAT_DECREASE: "contraction",
    bill.DOWNGRADE: "contraction",
}


def account_table(history: ChunkHistory, timeline: Timeline, scenario: Scenario) -> pa.Table:
    """One row per account of the chunk."""
    accounts, subscriptions = history.accounts, history.subscriptions
    changes = history.billing.changes.columns()
    churned = subscriptions.churn_day != NEVER
    expanded = _accounts_with(changes, bill.EXPANSIONS, len(accounts))
    contracted = _accounts_with(changes, bill.CONTRACTIONS, len(accounts))
    active_days = history.active.sum(axis=1)
    health_sum = (history.health * history.active).sum(axis=1, dtype=np.float64)
    left = history.health_process.champion_left_day
    after_change = accounts.signup_day >= scenario.change_day
    exposed = history.active[:, scenario.change_day :].any(axis=1) & scenario.drops_usage
    return pa.table(
        {
            "account_id": accounts.ids,
            "account_name": accounts.name,
            "segment": np.where(accounts.segment == 1, NEW_SEGMENT_NAME, CORE_SEGMENT_NAME),
            "industry": accounts.industry.astype(str),
            "country": accounts.country.astype(str),
            "size_band": np.array(SIZE_BANDS)[accounts.size_band],
            "billing_period": np.where(accounts.annual, "annual", "monthly"),
            "plan_at_signup": np.array(TIERS)[accounts.tier],
            "plan_at_end": np.array(TIERS)[subscriptions.tier],
            "seats_at_signup": accounts.seats,
            "seats_at_end": subscriptions.seats,
            "signup_date": _dates(timeline, accounts.signup_day),
            "existing_at_start": accounts.signup_day < 0,
            "churn_date": _dates(timeline, subscriptions.churn_day, churned),
            "churned": churned,
            "expanded": expanded,
            "contracted": contracted,
            "base_health": accounts.fit,
            "mean_health": np.where(active_days > 0, health_sum / np.maximum(active_days, 1), 0.0),
            "champion_left_date": _dates(timeline, left, left >= 0),
            "outages_hit": history.health_process.outages_hit,
            "new_segment": accounts.segment == 1,
            "signed_up_after_change": after_change,
            "exposed_to_usage_drop": exposed,
        },
        schema=ACCOUNT_SCHEMA,
    )


def daily_table(history: ChunkHistory, timeline: Timeline) -> pa.Table:
    """One row per account and day from its signup (or the first day) on."""
    accounts = history.accounts
    signed_up = np.arange(timeline.days)[None, :] >= accounts.signup_day[:, None]
    account, day = np.nonzero(signed_up)
    # Dictionary encoding: the id repeats for every day of the account.
    ids = pa.DictionaryArray.from_arrays(pa.array(account.astype(np.int32)), accounts.ids)
    return pa.table(
        {
            "account_id": ids,
            "date": _dates(timeline, day),
            "health": history.health[signed_up],
            "churn_hazard": history.churn_hazard[signed_up],
            "expansion_hazard": history.expansion_hazard[signed_up],
            "active": history.active[signed_up],
            "users": history.users[signed_up],
            "daily_active_users": history.daily_active_users[signed_up],
            "seats": history.seats[signed_up],
        }
    )


def event_table(history: ChunkHistory, timeline: Timeline) -> pa.Table:
    """Churn, expansion and contraction events with the latent state on their day."""
    changes = history.billing.changes.columns()
    kinds = changes["change"]
    keep = np.isin(kinds, list(_KIND))
    account, day = changes["account"][keep], changes["day"][keep]
    order = np.lexsort((day, account))
    account, day = account[order], day[order]
    pick = {name: values[keep][order] for name, values in changes.items()}
    return pa.table(
        {
            "account_id": history.accounts.ids[account],
            "date": _dates(timeline, day),
            "kind": np.array([_KIND[k] for k in pick["change"]], dtype=object).astype(str),
            "change_type": np.array(bill.CHANGE_TYPES)[pick["change"]],
            "plan": np.array(TIERS)[pick["tier"]],
            "seats": pick["seats"].astype(np.int64),
            "previous_mrr": pick["previous_mrr"].astype(np.float64),
            "mrr": pick["mrr"].astype(np.float64),
            "health": history.health[account, day],
            "churn_hazard": history.churn_hazard[account, day],
            "expansion_hazard": history.expansion_hazard[account, day],
        },
        schema=EVENT_SCHEMA,
    )


def _accounts_with(
    changes: dict[str, np.ndarray], kinds: tuple[int, ...], count: int
) -> np.ndarray:
    flagged = np.zeros(count, dtype=bool)
    flagged[changes["account"][np.isin(changes["change"], kinds)]] = True
    return flagged


def _dates(timeline: Timeline, day: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Day indices as Arrow dates; null where ``valid`` is false."""
    known = np.ones(len(day), dtype=bool) if valid is None else valid
    values = np.datetime64(timeline.start, "D") + np.where(known, day, 0)
    return pa.array(values, type=pa.date32(), mask=~known)
