"""The simulated customers: accounts with their firmographics and plans, and their contacts.

Everything here is drawn once per chunk, before the first simulated day; what changes over
time (health, users, seats, plan, churn) lives in :mod:`.history`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from csa.ingestion.simulator import people
from csa.ingestion.simulator.scenarios import Scenario
from csa.ingestion.simulator.timeline import SECONDS_PER_DAY, Timeline, working_seconds

SIZE_BANDS = ("1-50", "51-200", "201-1000", "1000+")
TIERS = ("starter", "growth", "enterprise")
TIER_LABELS = ("Starter", "Growth", "Enterprise")
# List price in USD per seat per month; annual contracts pay 15% less.
LIST_PRICE = np.array([19.0, 39.0, 79.0])
ANNUAL_DISCOUNT = 0.85
MAX_SEATS = 9_000  # user ids carry four digits

# Share of accounts that are already customers on the first simulated day, and how far back
# their signups reach.
EXISTING_SHARE = 0.6
EXISTING_HISTORY_DAYS = 3 * 365

_CORE_INDUSTRIES = {
    "Software": 0.2, "Financial Services": 0.12, "Healthcare": 0.1, "Retail": 0.1,
    "Manufacturing": 0.1, "Professional Services": 0.1, "Logistics": 0.08, "Education": 0.07,
    "Media": 0.07, "Nonprofit": 0.03, "Hospitality": 0.03,
}  # fmt: skip
_CORE_COUNTRIES = {
    "US": 0.34, "GB": 0.11, "DE": 0.08, "CA": 0.07, "FR": 0.06, "AU": 0.05, "NL": 0.04,
    "BR": 0.04, "IN": 0.04, "SE": 0.03, "ES": 0.03, "IT": 0.03, "IE": 0.02, "MX": 0.02,
    "SG": 0.02, "ZA": 0.02,
}  # fmt: skip
_NEW_COUNTRIES = {"JP": 0.6, "KR": 0.4}
# A representative offset per country: enough to put activity in its working hours.
UTC_OFFSET_HOURS = {
    "US": -6.0, "GB": 0.0, "DE": 1.0, "CA": -5.0, "FR": 1.0, "AU": 10.0, "NL": 1.0,
    "BR": -3.0, "IN": 5.5, "SE": 1.0, "ES": 1.0, "IT": 1.0, "IE": 0.0, "MX": -6.0,
    "SG": 8.0, "ZA": 2.0, "JP": 9.0, "KR": 9.0,
}  # fmt: skip

# Per segment (core, new), the share of each size band and the median seats per band.
_BAND_SHARE = np.array([[0.46, 0.31, 0.16, 0.07], [0.05, 0.25, 0.45, 0.25]])
_MEDIAN_SEATS = np.array([8.0, 24.0, 65.0, 180.0])
_NEW_SEGMENT_SEAT_FACTOR = 1.6
# Per size band, the share of each plan tier: bigger companies buy bigger plans.
_TIER_SHARE = np.array(
    [[0.70, 0.27, 0.03], [0.35, 0.50, 0.15], [0.10, 0.45, 0.45], [0.02, 0.28, 0.70]]
)
_ANNUAL_SHARE = np.array([0.25, 0.5, 0.85])
_NEW_SEGMENT_ANNUAL_SHARE = 0.95  # public bodies buy yearly budgets
# Contacts per account: 1 + Binomial(3, p) by size band.
_CONTACT_P = np.array([0.2, 0.4, 0.6, 0.8])


@dataclass
class Accounts:
    """Static attributes of one chunk's accounts, one array element per account."""

    number: np.ndarray
    name: list[str]
    domain: list[str]
    segment: np.ndarray
    industry: np.ndarray
    country: np.ndarray
    utc_offset: np.ndarray
    size_band: np.ndarray
    tier: np.ndarray
    annual: np.ndarray
    seats: np.ndarray
    signup_day: np.ndarray
    signup_second: np.ndarray
    anchor_day_of_month: np.ndarray
    anchor_month: np.ndarray
    csm: np.ndarray
    fit: np.ndarray

    def __len__(self) -> int:
        return len(self.number)

    @property
    def ids(self) -> np.ndarray:
        """CRM account ids, ``ACC-000123``; also the billing customer and support org id."""
        return np.char.add("ACC-", np.char.zfill(self.number.astype(str), 6))


@dataclass
class Contacts:
    """The people at each account; ``first[i]`` indexes the account's first contact."""

    account: np.ndarray
    first_name: list[str]
    last_name: list[str]
    email: list[str]
    title: list[str]
    primary: np.ndarray
    created: np.ndarray
    modified: np.ndarray
    first: np.ndarray
    count: np.ndarray


def unit_price(tier: np.ndarray, annual: np.ndarray) -> np.ndarray:
    """USD per seat per month for plan tiers and billing periods."""
    return np.round(LIST_PRICE[tier] * np.where(annual, ANNUAL_DISCOUNT, 1.0), 2)


def draw_accounts(
    rng: np.random.Generator,
    first_number: int,
    count: int,
    timeline: Timeline,
    scenario: Scenario,
    seed: int,
) -> Accounts:
    """Draw ``count`` accounts numbered from ``first_number``.

    Some accounts are customers before the first simulated day; the others sign up uniformly
    over the period. Under the new-segment scenario every signup from the change date on comes
    from the new segment.
    """
    # Signup dates: recent signups are more common than old ones (the company grows).
    existing = rng.random(count) < EXISTING_SHARE
    back = 1 + np.floor(EXISTING_HISTORY_DAYS * rng.random(count) ** 1.4).astype(np.int64)
    signup_day = np.where(existing, -back, rng.integers(0, timeline.days, count))
    new_segment = scenario.opens_new_segment & (signup_day >= scenario.change_day)
    segment = new_segment.astype(np.int8)

    # Firmographics and plan.
    band = _pick_rows(rng, _BAND_SHARE[segment])
    seat_median = _MEDIAN_SEATS[band] * np.where(new_segment, _NEW_SEGMENT_SEAT_FACTOR, 1.0)
    seats = np.clip(np.round(seat_median * rng.lognormal(0.0, 0.45, count)), 1, MAX_SEATS // 2)
    tier = _pick_rows(rng, _TIER_SHARE[band]).astype(np.int8)
    annual_share = np.where(new_segment, _NEW_SEGMENT_ANNUAL_SHARE, _ANNUAL_SHARE[tier])
    industry = np.where(new_segment, "Public Sector", _choice(rng, _CORE_INDUSTRIES, count))
    country = np.where(
        new_segment, _choice(rng, _NEW_COUNTRIES, count), _choice(rng, _CORE_COUNTRIES, count)
    )
    utc_offset = np.array([UTC_OFFSET_HOURS[c] for c in country])

    # Signup anchors the billing anniversaries (day of month, and month for annual plans).
    dates = np.datetime64(timeline.start, "D") + signup_day
    months = dates.astype("datetime64[M]")
    numbers = np.arange(first_number, first_number + count, dtype=np.int64)
    names = people.company_names(numbers, seed, new_segment)
    return Accounts(
        number=numbers,
        name=names,
        domain=[people.email_domain(n) for n in names],
        segment=segment,
        industry=industry.astype(object),
        country=country.astype(object),
        utc_offset=utc_offset,
        size_band=band.astype(np.int8),
        tier=tier,
        annual=rng.random(count) < annual_share,
        seats=seats.astype(np.int64),
        signup_day=signup_day.astype(np.int64),
        signup_second=working_seconds(rng, utc_offset),
        anchor_day_of_month=(dates - months.astype("datetime64[D]")).astype(np.int64) + 1,
        anchor_month=months.astype(np.int64) % 12 + 1,
        csm=rng.choice(np.array(people.CSM_NAMES, dtype=object), count),
        # Product fit: the level health returns to once onboarding is over.
        fit=np.clip(rng.normal(0.66, 0.14, count), 0.15, 0.97),
    )


def draw_contacts(rng: np.random.Generator, accounts: Accounts, timeline: Timeline) -> Contacts:
    """One to four contacts per account, the first of them primary."""
    per_account = 1 + rng.binomial(3, _CONTACT_P[accounts.size_band])
    account = np.repeat(np.arange(len(accounts)), per_account)
    first = np.cumsum(per_account) - per_account
    rank = np.arange(len(account)) - first[account]
    total = len(account)

    first_names = rng.choice(np.array(people.FIRST_NAMES, dtype=object), total)
    last_names = rng.choice(np.array(people.LAST_NAMES, dtype=object), total)
    emails = [
        people.email_address(f, s, accounts.domain[a])
        for f, s, a in zip(first_names, last_names, account, strict=True)
    ]
    emails = _unique_within_account(emails, rank)

    # The primary contact is created with the account; colleagues join within a month.
    signed = timeline.seconds(accounts.signup_day) + accounts.signup_second
    created = signed[account] + np.where(rank == 0, 0, rng.integers(0, 30 * SECONDS_PER_DAY, total))
    created = np.minimum(created, timeline.end_seconds - 1)
    modified = created + (rng.random(total) * (timeline.end_seconds - 1 - created)).astype(np.int64)
    return Contacts(
        account=account,
        first_name=list(first_names),
        last_name=list(last_names),
        email=emails,
        title=list(rng.choice(np.array(people.TITLES, dtype=object), total)),
        primary=rank == 0,
        created=created,
        modified=modified,
        first=first,
        count=per_account,
    )


def _unique_within_account(emails: list[str], rank: np.ndarray) -> list[str]:
    # Two colleagues drawn with the same name get a numbered address, as mail admins do.
    seen: set[str] = set()
    unique = []
    for email, position in zip(emails, rank, strict=True):
        if position == 0:
            seen = set()
        if email in seen:
            local, domain = email.split("@")
            email = f"{local}{position + 1}@{domain}"
        seen.add(email)
        unique.append(email)
    return unique


def _pick_rows(rng: np.random.Generator, shares: np.ndarray) -> np.ndarray:
    """One category index per row of a (rows, categories) matrix of shares."""
    cumulative = np.cumsum(shares, axis=1)
    draws = rng.random(len(shares))[:, None] * cumulative[:, -1:]
    return (draws >= cumulative).sum(axis=1)


def _choice(rng: np.random.Generator, weights: dict[str, float], count: int) -> np.ndarray:
    labels = np.array(list(weights), dtype=object)
    shares = np.array(list(weights.values()))
    return rng.choice(labels, count, p=shares / shares.sum())
