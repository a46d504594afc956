"""Churn, expansion and contraction: the hazards and the subscription changes they cause.

Decisions happen on billing anniversaries. A monthly plan may cancel, shrink or grow on any
monthly anniversary; an annual plan may grow on any monthly anniversary (seats are co-termed)
but cancels or shrinks only at its yearly renewal.

Both hazards are logistic in the latent health and in signals a CS team can observe:

* churn rises with low health, falling usage, unhappy tickets, detractor NPS answers, failed
  payments (and above all an unpaid invoice) and low seat utilisation;
* expansion rises with high health and with seat utilisation close to saturation.

``churn_hazard`` is the probability of cancelling if the day is a decision point for the
account (annual plans decide a whole year at once, so their hazard is higher);
``expansion_hazard`` the probability of expanding on a monthly anniversary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from csa.ingestion.simulator import billing as bill
from csa.ingestion.simulator.company import MAX_SEATS, Accounts, unit_price
from csa.ingestion.simulator.timeline import SECONDS_PER_DAY, Timeline

NEVER = np.iinfo(np.int32).max  # churn day of an account that stays
CHURN_INTERCEPT = -4.2
ANNUAL_RENEWAL_SHIFT = 2.0
EXPANSION_INTERCEPT = -4.6
UPGRADE_SHARE = 0.25  # of expansions, when a higher tier exists
BILLING_RUN_SECONDS = (3_600, 3 * 3_600)  # periodic invoices are issued 01:00-03:00 UTC


@dataclass
class Signals:
    """Per-account state a decision looks at, all arrays of the chunk's length."""

    health: np.ndarray
    usage_trend: np.ndarray  # recent activity over its longer-run level; < 1 is falling
    utilisation: np.ndarray  # users over seats
    unhappy_tickets: np.ndarray  # decaying count of tickets from unhappy customers
    detractor: np.ndarray  # 0 (satisfied or no recent survey) .. 1 (scores of 0)
    failed_payments: np.ndarray  # decaying count of failed attempts
    delinquent: np.ndarray  # an invoice is unpaid after every retry


def churn_hazard(signals: Signals, annual: np.ndarray) -> np.ndarray:
    """Probability of cancelling at a decision point."""
    s = signals
    logit = (
        CHURN_INTERCEPT
        + 5.0 * (0.55 - s.health)
        + 4.0 * np.maximum(0.0, 0.85 - s.usage_trend)
        + 0.6 * np.minimum(s.unhappy_tickets, 4.0)
        + 1.5 * s.detractor
        + 0.5 * np.minimum(s.failed_payments, 4.0)
        + 2.0 * s.delinquent
        + 3.0 * np.maximum(0.0, 0.5 - s.utilisation)
        + ANNUAL_RENEWAL_SHIFT * annual
    )
    return _sigmoid(logit)


def expansion_hazard(signals: Signals) -> np.ndarray:
    """Probability of buying seats or a higher tier on a monthly anniversary."""
    s = signals
    logit = (
        EXPANSION_INTERCEPT
        + 4.0 * (s.health - 0.6)
        + 7.0 * np.maximum(0.0, s.utilisation - 0.8)
        + 1.0 * np.clip(s.usage_trend - 1.0, 0.0, 0.5)
        - 2.0 * s.delinquent
        - 0.5 * np.minimum(s.unhappy_tickets, 4.0)
    )
    return _sigmoid(logit)


def contraction_chance(signals: Signals) -> np.ndarray:
    """Probability of cutting seats or the tier at a decision point (when not cancelling)."""
    s = signals
    return _sigmoid(-3.0 + 4.0 * (0.45 - s.health) + 5.0 * np.maximum(0.0, 0.6 - s.utilisation))


def _sigmoid(logit: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logit))


class Subscriptions:
    """Plan, seats and price of each account of a chunk, changed by the decisions."""

    def __init__(self, accounts: Accounts, ledger: bill.Billing, timeline: Timeline) -> None:
        self._accounts = accounts
        self._ledger = ledger
        self._timeline = timeline
        self.annual = accounts.annual
        self.tier = accounts.tier.astype(np.int64)
        self.seats = accounts.seats.copy()
        self.unit = unit_price(self.tier, self.annual)
        self.churn_day = np.full(len(accounts), NEVER, dtype=np.int64)

    @property
    def mrr(self) -> np.ndarray:
        return np.round(self.seats * self.unit, 2)

    def record_existing(self) -> None:
        """Write the ``new`` change of accounts that signed up before the first day.

        Their history before day 0 is summarised by this one change with today's plan.
        """
        existing = np.flatnonzero(self._accounts.signup_day < 0)
        self._change(existing, self._accounts.signup_day[existing], bill.NEW, 0, 0.0)

    def sign_up(self, rng: np.random.Generator, accounts: np.ndarray, health: np.ndarray) -> None:
        """Today's signups: the ``new`` change and the first invoice minutes later."""
        day = int(self._accounts.signup_day[accounts[0]]) if len(accounts) else 0
        self._change(accounts, day, bill.NEW, 0, 0.0)
        second = self._accounts.signup_second[accounts]
        paid_at = np.minimum(second + rng.integers(60, 900, len(accounts)), SECONDS_PER_DAY - 1)
        amount = self.mrr[accounts] * np.where(self.annual[accounts], 12, 1)
        self._ledger.invoice(rng, accounts, day, paid_at, amount, health)

    def decide(
        self,
        rng: np.random.Generator,
        day: int,
        anniversary: np.ndarray,
        renewal: np.ndarray,
        signals: Signals,
        hazards: tuple[np.ndarray, np.ndarray],
        working_second: np.ndarray,
        users: np.ndarray,
    ) -> None:
        """Apply today's decisions, in the order a billing system would see them.

        Args:
            anniversary: accounts on a monthly anniversary today (alive, past signup day).
            renewal: annual accounts on their yearly renewal today.
            hazards: today's churn and expansion hazards.
            working_second: when each account's people act today, seconds after midnight UTC.
        """
        count = len(self.seats)
        churn_risk, growth_chance = hazards
        deciding = anniversary & (~self.annual | renewal)

        # 00:00 cancellations: an annual plan only at renewal, a monthly one any anniversary.
        churned = np.flatnonzero(deciding & (rng.random(count) < churn_risk))
        self._change(churned, day, bill.CANCELLATION, 0)
        self._ledger.stop(churned)
        self.churn_day[churned] = day
        staying = anniversary & (self.churn_day == NEVER)

        # 00:00 renewals, and contractions that take effect with the new period.
        self._change(np.flatnonzero(staying & renewal), day, bill.RENEWAL, 0)
        shrink = staying & deciding & (rng.random(count) < contraction_chance(signals))
        self._contract(rng, np.flatnonzero(shrink), day, users)

        # 01:00-03:00 the billing run invoices the new periods.
        billed = np.flatnonzero(staying & (~self.annual | renewal))
        run_at = rng.integers(*BILLING_RUN_SECONDS, len(billed))
        periods = np.where(self.annual[billed], 12, 1)
        self._ledger.invoice(rng, billed, day, run_at, self.mrr[billed] * periods, signals.health)

        # Working hours: expansions; annual plans pay the added months at once.
        grow = np.flatnonzero(staying & ~shrink & (rng.random(count) < growth_chance))
        before = self.mrr[grow]
        self._expand(rng, grow, day, working_second[grow])
        prorated = grow[self.annual[grow]]
        months_left = (self._accounts.anchor_month[prorated] - self._timeline.month[day]) % 12
        extra = (self.mrr[prorated] - before[self.annual[grow]]) * months_left
        paid_at = np.minimum(working_second[prorated] + 600, SECONDS_PER_DAY - 1)
        self._ledger.invoice(rng, prorated, day, paid_at, np.round(extra, 2), signals.health)

    def _contract(
        self, rng: np.random.Generator, accounts: np.ndarray, day: int, users: np.ndarray
    ) -> None:
        target = np.ceil(self.seats[accounts] * rng.uniform(0.6, 0.9, len(accounts)))
        fewer = np.maximum(users[accounts], target).astype(np.int64)
        cut = fewer < self.seats[accounts]
        seat_cut, tier_cut = accounts[cut], accounts[~cut & (self.tier[accounts] > 0)]
        before = self.mrr
        self.seats[seat_cut] = fewer[cut]
        self._change(seat_cut, day, bill.SEAT_DECREASE, 0, before[seat_cut])
        self.tier[tier_cut] -= 1
        self.unit[tier_cut] = unit_price(self.tier[tier_cut], self.annual[tier_cut])
        self._change(tier_cut, day, bill.DOWNGRADE, 0, before[tier_cut])

    def _expand(
        self, rng: np.random.Generator, accounts: np.ndarray, day: int, second: np.ndarray
    ) -> None:
        before = self.mrr
        upgrade = (self.tier[accounts] < 2) & (rng.random(len(accounts)) < UPGRADE_SHARE)
        upgraded, added = accounts[upgrade], accounts[~upgrade]
        self.tier[upgraded] += 1
        self.unit[upgraded] = unit_price(self.tier[upgraded], self.annual[upgraded])
        self._change(upgraded, day, bill.UPGRADE, second[upgrade], before[upgraded])
        extra = np.maximum(1, np.round(self.seats[added] * rng.uniform(0.1, 0.45, len(added))))
        self.seats[added] = np.minimum(self.seats[added] + extra.astype(np.int64), MAX_SEATS)
        self._change(added, day, bill.SEAT_INCREASE, second[~upgrade], before[added])

    def _change(
        self,
        accounts: np.ndarray,
        day: int | np.ndarray,
        kind: int,
        second: int | np.ndarray,
        previous_mrr: np.ndarray | float | None = None,
    ) -> None:
        if kind == bill.NEW:
            second = self._accounts.signup_second[accounts]
        previous = self.mrr[accounts] if previous_mrr is None else previous_mrr
        self._ledger.change(
            accounts,
            day,
            second,
            kind,
            self.tier[accounts],
            self.seats[accounts],
            self.unit[accounts],
            np.broadcast_to(np.asarray(previous, dtype=np.float64), accounts.shape),
        )
