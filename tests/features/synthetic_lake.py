"""A small synthetic lake for feature tests and benchmarks, written through the lake's own API.

It is not the simulator: it exists so that feature code can be tested without it, and it plants
the cases that break point-in-time logic on purpose: events exactly on snapshot midnights,
several events sharing an instant, subscription changes sharing an instant, survey answers
sharing an instant, closed tickets without a solve time and churn recorded only in the CRM.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from csa.ingestion.contracts import (
    PLAN_TIERS,
    SIZE_BANDS,
    TICKET_PRIORITIES,
    USAGE_EVENTS,
    table_spec,
)
from csa.ingestion.lake import replace_table

DAY = pd.Timedelta(days=1)


def write_lake(
    lake_dir: Path,
    accounts: int = 40,
    days: int = 200,
    seed: int = 3,
    start: str = "2024-01-01",
    events_per_user_day: float = 0.6,
) -> dict[str, pd.DataFrame]:
    """Write every canonical table of a synthetic company into ``lake_dir``; return them."""
    rng = np.random.default_rng(seed)
    origin = pd.Timestamp(start, tz="UTC")
    tables = _company(rng, origin, accounts, days, events_per_user_day)
    for name, frame in tables.items():
        validated = table_spec(name).validate(frame)
        replace_table(lake_dir, name, validated)
    return tables


def _company(
    rng: np.random.Generator, origin: pd.Timestamp, n: int, days: int, rate: float
) -> dict[str, pd.DataFrame]:
    ids = np.array([f"acc-{i:05d}" for i in range(n)])
    # Some accounts predate the window, most start in its first third.
    start_offsets = rng.uniform(-60, days / 3, n)
    contract_start = origin + pd.to_timedelta(start_offsets, unit="D").round("s")
    # A few contracts start exactly on a midnight.
    contract_start = contract_start.where(rng.random(n) > 0.1, contract_start.floor("D"))
    end = origin + days * DAY
    churn_offsets = rng.uniform(20, days, n)
    churned = rng.random(n) < 0.3
    churned_at = pd.Series(origin + pd.to_timedelta(churn_offsets, unit="D").round("s"))
    churned_at = churned_at.where(churned & (churned_at > contract_start + 10 * DAY))
    billing = rng.choice(["monthly", "annual"], n, p=[0.7, 0.3])
    plan = rng.choice(PLAN_TIERS, n)
    seats = rng.integers(3, 40, n)
    price = rng.choice([20.0, 45.0, 90.0], n)

    subscriptions = _subscriptions(
        rng, ids, contract_start, churned_at, billing, plan, seats, price
    )
    last = subscriptions.sort_values(["effective_at", "change_id"]).groupby("account_id").last()
    accounts = pd.DataFrame(
        {
            "account_id": ids,
            "account_name": [f"Company {i}" for i in range(n)],
            "industry": rng.choice(["software", "retail", "health"], n),
            "country": rng.choice(["US", "DE", "FR"], n),
            "size_band": rng.choice(SIZE_BANDS, n),
            "plan_tier": last.loc[ids, "plan_tier"].to_numpy(),
            "billing_period": billing,
            "seats": last.loc[ids, "seats"].to_numpy().clip(1),
            "price_per_seat": price,
            "mrr": last.loc[ids, "mrr"].to_numpy(),
            "contract_start": contract_start,
            "renewal_date": contract_start + 365 * DAY,
            "csm_owner": rng.choice(["ana", "bo"], n),
            "status": np.where(churned_at.notna(), "churned", "active"),
            "churned_at": churned_at,
            "created_at": contract_start - 5 * DAY,
            "updated_at": end,
        }
    )
    alive_until = churned_at.fillna(end)
    return {
        "accounts": accounts,
        "contacts": _contacts(ids, contract_start),
        "subscriptions": subscriptions,
        "billing_events": _payments(rng, ids, contract_start, alive_until),
        "usage_events": _usage(rng, ids, contract_start, alive_until, rate),
        "tickets": _tickets(rng, ids, contract_start, alive_until, end),
        "survey_responses": _surveys(rng, ids, contract_start, alive_until),
    }


def _subscriptions(
    rng: np.random.Generator,
    ids: np.ndarray,
    contract_start: pd.DatetimeIndex,
    churned_at: pd.Series,
    billing: np.ndarray,
    plan: np.ndarray,
    seats: np.ndarray,
    price: np.ndarray,
) -> pd.DataFrame:
    rows = []
    kinds = ["seat_increase", "seat_decrease", "upgrade", "downgrade", "renewal"]
    for i, account in enumerate(ids):
        at = contract_start[i]
        tier, n_seats = PLAN_TIERS.index(plan[i]), int(seats[i])
        period = 365 if billing[i] == "annual" else 30
        mrr = n_seats * price[i]
        rows.append((account, "new", tier, n_seats, 0.0, mrr, at, at + period * DAY))
        stop = churned_at.iloc[i]
        for _ in range(int(rng.integers(0, 6))):
            # Changes often land exactly where the previous one did: ties on effective_at.
            step = 0 if rng.random() < 0.25 else float(rng.uniform(1, 90))
            at = at + pd.Timedelta(days=step).round("s")
            if pd.notna(stop) and at >= stop:
                break
            kind = str(rng.choice(kinds))
            previous = mrr
            if kind == "seat_increase":
                n_seats += int(rng.integers(1, 10))
            elif kind == "seat_decrease":
                n_seats = max(1, n_seats - int(rng.integers(1, 5)))
            elif kind == "upgrade":
                tier = min(2, tier + 1)
            elif kind == "downgrade":
                tier = max(0, tier - 1)
            mrr = n_seats * price[i] * (1 + 0.5 * tier)
            period_end = pd.NaT if rng.random() < 0.5 else at + period * DAY
            rows.append((account, kind, tier, n_seats, previous, mrr, at, period_end))
        # Churn lands in the change history for most churners; for the others only the CRM
        # knows, which the features must still respect.
        if pd.notna(stop) and rng.random() < 0.8:
            rows.append((account, "cancellation", tier, n_seats, mrr, 0.0, stop, pd.NaT))
    frame = pd.DataFrame(
        rows,
        columns=[
            "account_id",
            "change_type",
            "tier",
            "seats",
            "previous_mrr",
            "mrr",
            "effective_at",
            "period_end",
        ],
    )
    frame["change_id"] = [f"chg-{i:07d}" for i in range(len(frame))]
    frame["subscription_id"] = "sub-" + frame["account_id"]
    frame["plan_tier"] = np.array(PLAN_TIERS)[frame.pop("tier")]
    period_by_account = dict(zip(ids, billing, strict=True))
    frame["billing_period"] = frame["account_id"].map(period_by_account)
    frame["price_per_seat"] = 10.0
    frame["status"] = np.where(frame["change_type"] == "cancellation", "canceled", "active")
    frame["period_end"] = pd.to_datetime(frame["period_end"], utc=True)
    return frame


def _contacts(ids: np.ndarray, contract_start: pd.DatetimeIndex) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "contact_id": [f"con-{a}" for a in ids],
            "account_id": ids,
            "first_name": "Sam",
            "last_name": "Lee",
            "email": [f"sam@{a}.example.com" for a in ids],
            "title": None,
            "is_primary": True,
            "created_at": contract_start,
            "updated_at": contract_start,
        }
    )


def _spread(
    rng: np.random.Generator,
    ids: np.ndarray,
    first: pd.DatetimeIndex,
    last: pd.Series,
    per_day: np.ndarray | float,
) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """Random event instants per account between its start and end, at ``per_day`` a day."""
    span = ((pd.Series(last.to_numpy()) - pd.Series(first)).dt.total_seconds() / 86_400).clip(0)
    counts = rng.poisson(np.asarray(per_day) * span.to_numpy())
    owner = np.repeat(np.arange(len(ids)), counts)
    offsets = rng.uniform(0, 1, owner.size) * span.to_numpy()[owner]
    instants = pd.DatetimeIndex(first[owner]) + pd.to_timedelta(offsets, unit="D").round("us")
    # Put a share of the events exactly on a midnight, the edge of every snapshot window.
    on_midnight = rng.random(owner.size) < 0.05
    instants = instants.where(~on_midnight, instants.ceil("D"))
    keep = instants < pd.DatetimeIndex(pd.Series(last.to_numpy())[owner])
    return owner[keep], instants[keep]


def _payments(
    rng: np.random.Generator, ids: np.ndarray, first: pd.DatetimeIndex, last: pd.Series
) -> pd.DataFrame:
    owner, at = _spread(rng, ids, first, last, 1 / 15)
    failed = rng.random(owner.size) < 0.15
    return pd.DataFrame(
        {
            "event_id": [f"pay-{i:07d}" for i in range(owner.size)],
            "account_id": ids[owner],
            "subscription_id": [f"sub-{a}" for a in ids[owner]],
            "invoice_id": None,
            "event_type": np.where(failed, "payment_failed", "payment_succeeded"),
            "amount": 100.0,
            "currency": "usd",
            "failure_code": np.where(failed, "card_declined", None),
            "occurred_at": at,
        }
    )


def _usage(
    rng: np.random.Generator,
    ids: np.ndarray,
    first: pd.DatetimeIndex,
    last: pd.Series,
    rate: float,
) -> pd.DataFrame:
    users = rng.integers(2, 15, len(ids))
    # Activity fades for some accounts: a per-account multiplier on the daily rate.
    owner, at = _spread(rng, ids, first, last, users * rate * rng.uniform(0.2, 1.5, len(ids)))
    user = (rng.random(owner.size) * users[owner]).astype(int)
    frame = pd.DataFrame(
        {
            "account_id": ids[owner],
            "user_id": [f"u{u}" for u in user],
            "event": rng.choice(USAGE_EVENTS, owner.size, p=_event_mix()),
            "quantity": rng.integers(1, 4, owner.size),
            "occurred_at": at,
        }
    )
    # Repeat 3% of the events at the same instant by the same user: ties on every key.
    twins = frame.sample(frac=0.03, random_state=int(rng.integers(1 << 30)))
    frame = pd.concat([frame, twins], ignore_index=True)
    frame["account_id"] = frame["account_id"].astype(str)
    frame.insert(0, "message_id", [f"msg-{i:08d}" for i in range(len(frame))])
    return frame


def _event_mix() -> np.ndarray:
    weights = np.array([8, 2, 5, 0.3, 4, 0.4, 1, 0.3, 2], dtype=float)
    return weights / weights.sum()


def _tickets(
    rng: np.random.Generator,
    ids: np.ndarray,
    first: pd.DatetimeIndex,
    last: pd.Series,
    end: pd.Timestamp,
) -> pd.DataFrame:
    owner, created = _spread(rng, ids, first, last, 1 / 12)
    count = owner.size
    hours = rng.gamma(2.0, 12.0, count).round(3)
    solved_at = created + pd.to_timedelta(hours, unit="h")
    status = rng.choice(["solved", "closed", "open", "pending"], count, p=[0.5, 0.2, 0.2, 0.1])
    unresolved = np.isin(status, ["open", "pending"]) | (solved_at > end)
    status = np.where(unresolved, "open", status)
    # Some closed tickets never recorded a solve time; their last update stands in for it.
    no_solve_time = (status == "closed") & (rng.random(count) < 0.5)
    solved = pd.Series(solved_at).where(~unresolved & ~no_solve_time)
    return pd.DataFrame(
        {
            "ticket_id": [f"tkt-{i:06d}" for i in range(count)],
            "account_id": ids[owner],
            "requester_email": None,
            "subject": "help",
            "body": "something is wrong",
            "priority": rng.choice(TICKET_PRIORITIES, count, p=[0.3, 0.4, 0.2, 0.1]),
            "channel": "email",
            "status": status,
            "created_at": created,
            "updated_at": pd.Series(solved_at).where(~unresolved, created).to_numpy(),
            "solved_at": solved,
            "resolution_hours": np.where(solved.notna(), hours, np.nan),
        }
    )


def _surveys(
    rng: np.random.Generator, ids: np.ndarray, first: pd.DatetimeIndex, last: pd.Series
) -> pd.DataFrame:
    owner, at = _spread(rng, ids, first, last, 1 / 40)
    frame = pd.DataFrame(
        {
            "account_id": ids[owner],
            "respondent_email": None,
            "score": rng.integers(0, 11, owner.size),
            "comment": None,
            "submitted_at": at,
        }
    )
    # Two people answering at the same instant: the tie the NPS order must break.
    twins = frame.sample(frac=0.1, random_state=int(rng.integers(1 << 30)))
    twins = twins.assign(score=rng.integers(0, 11, len(twins)))
    frame = pd.concat([frame, twins], ignore_index=True)
    frame.insert(0, "response_id", [f"rsp-{i:06d}" for i in range(len(frame))])
    return frame
