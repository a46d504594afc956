"""The day-by-day simulation of one chunk of accounts.

Each day, for all accounts of the chunk at once: health moves, today's decisions are taken on
yesterday's signals (churn, contraction, invoices, expansion), payment retries run, users are
invited or leave, some of them are active, and tickets and survey answers arrive. The result is
the chunk's full history: daily arrays for usage and the ground truth, and event logs for
billing and support.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from csa.ingestion.simulator.billing import Billing
from csa.ingestion.simulator.company import Accounts, Contacts
from csa.ingestion.simulator.health import ONBOARDING_DAYS, Health
from csa.ingestion.simulator.lifecycle import (
    Signals,
    Subscriptions,
    churn_hazard,
    expansion_hazard,
)
from csa.ingestion.simulator.support import Support
from csa.ingestion.simulator.timeline import WEEKDAY_ACTIVITY, Timeline, working_seconds

# Smoothing of the daily active share: two weeks for "recent", two months for "usual".
_RECENT = 1.0 - 0.5 ** (1.0 / 14.0)
_USUAL = 1.0 - 0.5 ** (1.0 / 60.0)
# Users invited per day, as a share of the gap to the users the account wants.
_INVITE_RATE, _ONBOARDING_INVITE_RATE, _LEAVE_RATE = 0.04, 0.08, 0.01


@dataclass
class ChunkHistory:
    """Everything that happened to one chunk of accounts; daily arrays are (accounts, days)."""

    accounts: Accounts
    contacts: Contacts
    subscriptions: Subscriptions
    billing: Billing
    support: Support
    health_process: Health
    health: np.ndarray
    active: np.ndarray
    daily_active_users: np.ndarray
    users: np.ndarray
    seats: np.ndarray
    churn_hazard: np.ndarray
    expansion_hazard: np.ndarray


def wanted_users(health: np.ndarray, seats: np.ndarray) -> np.ndarray:
    """Users an account wants: healthy accounts fill their seats and would take more."""
    return np.ceil(seats * np.clip(0.3 + 0.8 * health, 0.1, 1.15))


def active_share(health: np.ndarray) -> np.ndarray:
    """Share of an account's users active on a weekday, before weekly seasonality."""
    return 0.02 + 0.42 * health**1.6


def simulate_history(
    rng: np.random.Generator,
    accounts: Accounts,
    contacts: Contacts,
    timeline: Timeline,
    outages: np.ndarray,
) -> ChunkHistory:
    """Run the chunk through every simulated day."""
    count, days = len(accounts), timeline.days
    existing = accounts.signup_day < 0
    health_process = Health(rng, accounts.fit, existing)
    billing, support = Billing(count), Support(count)
    subscriptions = Subscriptions(accounts, billing, timeline)
    subscriptions.record_existing()

    # Existing customers start settled: users near what they want, activity at its usual level.
    users = np.where(
        existing,
        np.clip(wanted_users(accounts.fit + rng.normal(0, 0.08, count), accounts.seats), 1, None),
        0,
    ).astype(np.int64)
    users = np.minimum(users, accounts.seats)
    recent, usual = active_share(accounts.fit), active_share(accounts.fit)

    shape = (count, days)
    history = ChunkHistory(
        accounts=accounts,
        contacts=contacts,
        subscriptions=subscriptions,
        billing=billing,
        support=support,
        health_process=health_process,
        health=np.zeros(shape, np.float32),
        active=np.zeros(shape, bool),
        daily_active_users=np.zeros(shape, np.int32),
        users=np.zeros(shape, np.int32),
        seats=np.zeros(shape, np.int32),
        churn_hazard=np.zeros(shape, np.float32),
        expansion_hazard=np.zeros(shape, np.float32),
    )
    for day in range(days):
        age = day - accounts.signup_day
        health, outage = health_process.step(rng, day, age, bool(outages[day]))

        # Signups: a first user or few, and activity expected to ramp up from here.
        joining = np.flatnonzero(age == 0)
        if len(joining):
            first_users = 1 + rng.binomial(accounts.seats[joining] - 1, 0.1)
            users[joining] = first_users
            recent[joining] = usual[joining] = active_share(health[joining])
            subscriptions.sign_up(rng, joining, health)

        # Decisions on anniversaries, from the signals as they stand this morning.
        alive = (age >= 0) & (day < subscriptions.churn_day)
        signals = Signals(
            health=health,
            usage_trend=recent / np.maximum(usual, 1e-3),
            utilisation=users / subscriptions.seats,
            unhappy_tickets=support.unhappy_tickets,
            detractor=support.detractor(day),
            failed_payments=billing.recent_failures,
            delinquent=billing.delinquent,
        )
        churn_risk = churn_hazard(signals, subscriptions.annual)
        growth = expansion_hazard(signals)
        anniversary = alive & (age > 0) & timeline.is_anniversary(accounts.anchor_day_of_month, day)
        renewal = (
            anniversary & subscriptions.annual & (accounts.anchor_month == timeline.month[day])
        )
        second = working_seconds(rng, accounts.utc_offset)
        subscriptions.decide(
            rng, day, anniversary, renewal, signals, (churn_risk, growth), second, users
        )
        billing.retry(rng, day)
        active = alive & (day < subscriptions.churn_day)

        # Users: invitations close the gap to what the account wants; some people leave.
        seats = subscriptions.seats
        gap = wanted_users(health, seats) - users
        invite_rate = np.where(age < ONBOARDING_DAYS, _ONBOARDING_INVITE_RATE, _INVITE_RATE)
        joined = rng.binomial(np.maximum(gap, 0).astype(np.int64), invite_rate)
        left = rng.binomial(np.maximum(-gap, 0).astype(np.int64), _LEAVE_RATE)
        users = np.where(active, np.clip(users + joined - left, 1, seats), users)

        # Today's active users; an incident keeps half of them away.
        share = active_share(health) * WEEKDAY_ACTIVITY[timeline.weekday[day]]
        share = np.clip(share * np.where(outage, 0.5, 1.0), 0.0, 1.0)
        daily_active = rng.binomial(users, share) * active
        # The trend signal compares seasonally adjusted activity, so weekends do not alarm.
        adjusted = daily_active / np.maximum(users, 1) / WEEKDAY_ACTIVITY[timeline.weekday[day]]
        recent = np.where(active, recent + _RECENT * (adjusted - recent), recent)
        usual = np.where(active, usual + _USUAL * (adjusted - usual), usual)

        # Sentiment: tickets and survey answers.
        support.open_tickets(rng, day, active, health, users, outage)
        support.survey(rng, day, active, age, health, contacts.count)
        billing.end_of_day()
        support.end_of_day()

        history.health[:, day] = health
        history.active[:, day] = active
        history.daily_active_users[:, day] = daily_active
        history.users[:, day] = users
        history.seats[:, day] = seats
        history.churn_hazard[:, day] = np.where(alive, churn_risk, 0.0)
        history.expansion_hazard[:, day] = np.where(alive, growth, 0.0)
    return history
