"""The CRM's view: accounts and contacts as a Salesforce report shows them at the period's end."""

from __future__ import annotations

import numpy as np

from csa.ingestion.simulator.company import SIZE_BANDS, TIER_LABELS
from csa.ingestion.simulator.history import ChunkHistory
from csa.ingestion.simulator.lifecycle import NEVER
from csa.ingestion.simulator.timeline import (
    Timeline,
    iso_dates,
    iso_timestamps,
    next_anniversaries,
)

ACCOUNT_COLUMNS = [
    "Account ID",
    "Account Name",
    "Industry",
    "Billing Country",
    "Company Size",
    "Plan",
    "Billing Period",
    "Seats",
    "Price Per Seat",
    "Contract Start Date",
    "Renewal Date",
    "Account Owner",
    "Account Status",
    "Churn Date",
    "Created Date",
    "Last Modified Date",
]
CONTACT_COLUMNS = [
    "Contact ID",
    "Account ID",
    "First Name",
    "Last Name",
    "Email",
    "Title",
    "Primary Contact",
    "Created Date",
    "Last Modified Date",
]


def account_rows(history: ChunkHistory, timeline: Timeline) -> dict[str, np.ndarray]:
    """``crm_accounts.csv`` columns: one row per account, its state on the last day.

    ``Contract Start Date`` is the first contract's start (the signup); ``Renewal Date`` the end
    of the current term, or the churn date of a churned account.
    """
    accounts, subscriptions = history.accounts, history.subscriptions
    churn_day = subscriptions.churn_day
    churned = churn_day != NEVER
    step = np.where(accounts.annual, 12, 1)
    last_day = np.full(len(step), timeline.days - 1)
    term_end = np.where(
        churned, churn_day, next_anniversaries(timeline, accounts.signup_day, last_day, step)
    )
    signed = timeline.seconds(accounts.signup_day) + accounts.signup_second
    return {
        "Account ID": accounts.ids,
        "Account Name": np.array(accounts.name, dtype=object),
        "Industry": accounts.industry,
        "Billing Country": accounts.country,
        "Company Size": np.array(SIZE_BANDS)[accounts.size_band],
        "Plan": np.array(TIER_LABELS)[subscriptions.tier],
        "Billing Period": np.where(accounts.annual, "Annual", "Monthly"),
        "Seats": subscriptions.seats,
        "Price Per Seat": np.char.mod("%.2f", subscriptions.unit),
        "Contract Start Date": iso_dates(timeline.seconds(accounts.signup_day)),
        "Renewal Date": iso_dates(timeline.seconds(term_end)),
        "Account Owner": accounts.csm,
        "Account Status": np.where(churned, "Churned", "Active"),
        "Churn Date": np.where(churned, iso_dates(timeline.seconds(churn_day % NEVER)), ""),
        "Created Date": iso_timestamps(signed),
        "Last Modified Date": iso_timestamps(_last_modified(history, timeline, signed)),
    }


def _last_modified(history: ChunkHistory, timeline: Timeline, signed: np.ndarray) -> np.ndarray:
    # A record is touched when its subscription changes; a CSM edits it at times in between.
    changes = history.billing.changes.columns()
    touched = signed.copy()
    when = timeline.seconds(changes["day"]) + changes["second"]
    np.maximum.at(touched, changes["account"], when)
    return touched


def contact_rows(history: ChunkHistory) -> dict[str, np.ndarray]:
    """``crm_contacts.csv`` columns, one row per contact."""
    contacts, accounts = history.contacts, history.accounts
    rank = np.arange(len(contacts.account)) - contacts.first[contacts.account]
    number = np.char.zfill(accounts.number[contacts.account].astype(str), 6)
    return {
        "Contact ID": np.char.add(np.char.add("CON-", number), np.char.mod("-%d", rank + 1)),
        "Account ID": accounts.ids[contacts.account],
        "First Name": np.array(contacts.first_name, dtype=object),
        "Last Name": np.array(contacts.last_name, dtype=object),
        "Email": np.array(contacts.email, dtype=object),
        "Title": np.array(contacts.title, dtype=object),
        "Primary Contact": np.where(contacts.primary, "true", "false"),
        "Created Date": iso_timestamps(contacts.created),
        "Last Modified Date": iso_timestamps(contacts.modified),
    }
