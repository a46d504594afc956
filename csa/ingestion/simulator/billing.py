"""Billing: the subscription change history and the payment attempts on invoices.

A monthly plan is invoiced on each monthly anniversary of its signup, an annual plan at signup
and on each renewal; seats added in the middle of an annual term are invoiced pro rata for the
months left. A payment attempt can fail; failed attempts are retried after 3, 5 and 7 days, and
an invoice whose last retry fails leaves the account delinquent until a later payment succeeds.
Failed payments feed the churn hazard (see :mod:`.lifecycle`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from csa.ingestion.simulator.company import TIERS, Accounts
from csa.ingestion.simulator.records import EventLog, rank_within
from csa.ingestion.simulator.timeline import Timeline, iso_timestamps, next_anniversaries

CHANGE_TYPES = (
    "new",
    "seat_increase",
    "seat_decrease",
    "upgrade",
    "downgrade",
    "renewal",
    "cancellation",
)
NEW, SEAT_INCREASE, SEAT_DECREASE, UPGRADE, DOWNGRADE, RENEWAL, CANCELLATION = range(7)
EXPANSIONS = (SEAT_INCREASE, UPGRADE)
CONTRACTIONS = (SEAT_DECREASE, DOWNGRADE)

FAILURE_CODES = ("card_declined", "insufficient_funds", "expired_card")
RETRY_GAPS_DAYS = (3, 2, 2)  # retries 3, 5 and 7 days after the first attempt
# A retry succeeds less often when the card has expired: someone must enter a new one.
RETRY_SUCCESS = np.array([0.55, 0.45, 0.35])
FAILURE_MEMORY_PER_DAY = 0.98  # how fast a failed payment fades from the churn signal

SUBSCRIPTION_COLUMNS = [
    "change_id",
    "subscription_id",
    "customer_id",
    "change_type",
    "plan",
    "interval",
    "quantity",
    "unit_amount",
    "mrr",
    "previous_mrr",
    "effective_at",
    "current_period_end",
    "status",
]
INVOICE_COLUMNS = [
    "payment_id",
    "invoice_id",
    "customer_id",
    "subscription_id",
    "created",
    "amount",
    "currency",
    "status",
    "failure_code",
]


class Billing:
    """The billing system of one chunk of accounts, fed by the daily simulation."""

    def __init__(self, count: int) -> None:
        self.changes = EventLog(
            "account", "day", "second", "change", "tier", "seats", "unit", "mrr", "previous_mrr"
        )
        self.attempts = EventLog(
            "account", "day", "second", "invoice", "attempt", "amount", "failed", "code"
        )
        self._invoices = np.zeros(count, dtype=np.int64)
        self._retry_day = np.full(count, -1, dtype=np.int64)
        self._retry_attempt = np.zeros(count, dtype=np.int64)
        self._retry_invoice = np.zeros(count, dtype=np.int64)
        self._retry_amount = np.zeros(count)
        self._retry_code = np.zeros(count, dtype=np.int64)
        self.delinquent = np.zeros(count, dtype=bool)
        self.recent_failures = np.zeros(count)

    def change(
        self,
        accounts: np.ndarray,
        day: int | np.ndarray,
        second: int | np.ndarray,
        kind: int,
        tier: np.ndarray,
        seats: np.ndarray,
        unit: np.ndarray,
        previous_mrr: np.ndarray,
    ) -> None:
        """Record one kind of subscription change for some accounts (all arrays indexed alike)."""
        mrr = np.zeros(len(accounts)) if kind == CANCELLATION else np.round(seats * unit, 2)
        self.changes.append(
            len(accounts),
            account=accounts,
            day=day,
            second=second,
            change=kind,
            tier=tier,
            seats=seats,
            unit=unit,
            mrr=mrr,
            previous_mrr=previous_mrr,
        )

    def invoice(
        self,
        rng: np.random.Generator,
        accounts: np.ndarray,
        day: int,
        second: np.ndarray,
        amount: np.ndarray,
        health: np.ndarray,
    ) -> None:
        """Issue invoices and make their first payment attempt the same day."""
        if len(accounts) == 0:
            return
        self._invoices[accounts] += 1
        fails = rng.random(len(accounts)) < 0.03 + 0.08 * (1.0 - health[accounts]) ** 2
        # Struggling customers fail more for lack of funds; the rest is card trouble.
        funds = 0.2 + 0.5 * (1.0 - health[accounts])
        shares = np.stack([np.full(len(accounts), 0.5), funds, np.full(len(accounts), 0.25)], 1)
        cumulative = np.cumsum(shares, axis=1)
        draw = rng.random(len(accounts))[:, None] * cumulative[:, -1:]
        code = (draw >= cumulative).sum(axis=1)
        self._attempt(accounts, day, second, self._invoices[accounts], 0, amount, fails, code)

    def retry(self, rng: np.random.Generator, day: int) -> None:
        """Retry the payments whose retry is due today."""
        due = np.flatnonzero(self._retry_day == day)
        if len(due) == 0:
            return
        code = self._retry_code[due]
        fails = rng.random(len(due)) >= RETRY_SUCCESS[code]
        second = rng.integers(0, 86_400, len(due))
        self._attempt(
            due,
            day,
            second,
            self._retry_invoice[due],
            self._retry_attempt[due],
            self._retry_amount[due],
            fails,
            code,
        )

    def stop(self, accounts: np.ndarray) -> None:
        """Cancel pending retries of accounts that have just churned."""
        self._retry_day[accounts] = -1

    def end_of_day(self) -> None:
        self.recent_failures *= FAILURE_MEMORY_PER_DAY

    def _attempt(
        self,
        accounts: np.ndarray,
        day: int,
        second: np.ndarray,
        invoice: np.ndarray,
        attempt: np.ndarray | int,
        amount: np.ndarray,
        fails: np.ndarray,
        code: np.ndarray,
    ) -> None:
        self.attempts.append(
            len(accounts),
            account=accounts,
            day=day,
            second=second,
            invoice=invoice,
            attempt=attempt,
            amount=amount,
            failed=fails,
            code=code,
        )
        attempt = np.broadcast_to(np.asarray(attempt), accounts.shape)
        self.delinquent[accounts[~fails]] = False
        self._retry_day[accounts[~fails]] = -1
        self.recent_failures[accounts[fails]] += 1.0

        # A failed attempt schedules the next retry, or ends dunning with the invoice unpaid.
        failed, tries = accounts[fails], attempt[fails]
        more = tries < len(RETRY_GAPS_DAYS)
        gaps = np.asarray(RETRY_GAPS_DAYS)[np.minimum(tries, len(RETRY_GAPS_DAYS) - 1)]
        self._retry_day[failed] = np.where(more, day + gaps, -1)
        self._retry_attempt[failed] = tries + 1
        self._retry_invoice[failed] = invoice[fails]
        self._retry_amount[failed] = amount[fails]
        self._retry_code[failed] = code[fails]
        self.delinquent[failed[~more]] = True


def subscription_rows(
    billing: Billing, accounts: Accounts, timeline: Timeline
) -> dict[str, np.ndarray]:
    """``billing_subscriptions.csv`` columns, one row per change, in time order per account."""
    log = billing.changes.columns()
    order = np.lexsort((np.arange(len(billing.changes)), log["second"], log["day"], log["account"]))
    log = {name: values[order] for name, values in log.items()}
    account = log["account"]
    ids = accounts.ids[account]
    sequence = rank_within(account)

    # A change sets a new billing period only while the subscription lives.
    canceled = log["change"] == CANCELLATION
    step = np.where(accounts.annual[account], 12, 1)
    period_end = next_anniversaries(timeline, accounts.signup_day[account], log["day"], step)
    period_text = np.where(canceled, "", iso_timestamps(timeline.seconds(period_end)))
    number = np.char.zfill(accounts.number[account].astype(str), 6)
    return {
        "change_id": _join("sbc_", number, "_", np.char.zfill((sequence + 1).astype(str), 4)),
        "subscription_id": np.char.add("sub_", number),
        "customer_id": ids,
        "change_type": np.array(CHANGE_TYPES)[log["change"]],
        "plan": np.array(TIERS)[log["tier"]],
        "interval": np.where(accounts.annual[account], "year", "month"),
        "quantity": log["seats"].astype(np.int64),
        "unit_amount": _money(log["unit"]),
        "mrr": _money(log["mrr"]),
        "previous_mrr": _money(log["previous_mrr"]),
        "effective_at": iso_timestamps(timeline.seconds(log["day"]) + log["second"]),
        "current_period_end": period_text,
        "status": np.where(canceled, "canceled", "active"),
    }


def invoice_rows(billing: Billing, accounts: Accounts, timeline: Timeline) -> dict[str, np.ndarray]:
    """``billing_invoices.csv`` columns, one row per payment attempt."""
    log = billing.attempts.columns()
    order = np.lexsort((log["attempt"], log["invoice"], log["account"]))
    log = {name: values[order] for name, values in log.items()}
    account = log["account"]
    number = np.char.zfill(accounts.number[account].astype(str), 6)
    serial = _join(number, "_", np.char.zfill(log["invoice"].astype(str), 4))
    failed = log["failed"].astype(bool)
    return {
        "payment_id": _join("py_", serial, "_", log["attempt"] + 1),
        "invoice_id": np.char.add("in_", serial),
        "customer_id": accounts.ids[account],
        "subscription_id": np.char.add("sub_", number),
        "created": iso_timestamps(timeline.seconds(log["day"]) + log["second"]),
        "amount": _money(log["amount"]),
        "currency": np.full(len(account), "usd"),
        "status": np.where(failed, "failed", "succeeded"),
        "failure_code": np.where(failed, np.array(FAILURE_CODES)[log["code"]], ""),
    }


def _money(values: np.ndarray) -> np.ndarray:
    return np.char.mod("%.2f", np.asarray(values, dtype=np.float64))


def _join(*parts: Any) -> np.ndarray:
    joined = np.asarray(parts[0]).astype(str)
    for part in parts[1:]:
        joined = np.char.add(joined, np.asarray(part).astype(str))
    return joined
