"""The simulated calendar: day indices, weekdays, billing anniversaries and UTC timestamps.

Day ``0`` is the configured start date; an account that existed before it has a negative
signup day. Every timestamp the simulator writes is whole seconds since the Unix epoch in
UTC, rendered as ISO-8601 with a trailing ``Z``.
"""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np

SECONDS_PER_DAY = 86_400
# Monday..Sunday share of a weekday's activity: B2B usage nearly stops at the weekend.
WEEKDAY_ACTIVITY = np.array([1.0, 1.05, 1.05, 1.0, 0.9, 0.22, 0.18])


class Timeline:
    """Calendar facts for every simulated day, computed once and shared by all chunks.

    Attributes:
        start: the first simulated day.
        days: how many days are simulated.
        weekday: per day, 0 = Monday .. 6 = Sunday.
        month: per day, 1..12.
        day_of_month: per day, 1..31.
        days_in_month: per day, the length of its month.
        midnight: per day, epoch seconds of 00:00:00 UTC.
    """

    def __init__(self, start: dt.date, days: int) -> None:
        self.start = start
        self.days = days
        dates = np.datetime64(start, "D") + np.arange(days)
        months = dates.astype("datetime64[M]")
        # 1970-01-01 was a Thursday, so the epoch day number shifted by 3 is Monday-based.
        self.weekday = (dates.astype(np.int64) + 3) % 7
        self.month = months.astype(np.int64) % 12 + 1
        self.day_of_month = (dates - months.astype("datetime64[D]")).astype(np.int64) + 1
        self.days_in_month = (
            (months + 1).astype("datetime64[D]") - months.astype("datetime64[D]")
        ).astype(np.int64)
        self.midnight = dates.astype("datetime64[s]").astype(np.int64)
        self.end_seconds = int(self.midnight[-1]) + SECONDS_PER_DAY

    def date(self, day: int) -> dt.date:
        """The calendar date of a day index (negative indices lie before the start)."""
        return self.start + dt.timedelta(days=int(day))

    def day_index(self, when: dt.date) -> int:
        """The day index of a calendar date."""
        return (when - self.start).days

    def seconds(self, day: np.ndarray | int) -> np.ndarray:
        """Epoch seconds of midnight UTC of day indices, valid before the start too."""
        return (np.asarray(day, dtype=np.int64) * SECONDS_PER_DAY) + int(self.midnight[0])

    def months(self) -> list[tuple[str, int, int]]:
        """Calendar months covered, as ``(YYYY-MM, first day index, stop day index)``."""
        labels = np.datetime64(self.start, "D") + np.arange(self.days)
        keys = labels.astype("datetime64[M]").astype(str)
        bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
        return [(str(keys[a]), int(a), int(b)) for a, b in itertools.pairwise(bounds)]

    def is_anniversary(self, anchor_day_of_month: np.ndarray, day: int) -> np.ndarray:
        """Whether ``day`` is a monthly anniversary of each anchor day-of-month.

        An anchor of the 29th-31st falls on the last day of shorter months, as card billing does.
        """
        dom, dim = self.day_of_month[day], self.days_in_month[day]
        return (anchor_day_of_month == dom) | ((anchor_day_of_month > dim) & (dom == dim))


def next_anniversaries(
    timeline: Timeline, anchor_day: np.ndarray, after_day: np.ndarray, step_months: np.ndarray
) -> np.ndarray:
    """Per row, the first day index after ``after_day`` that is a whole number of
    ``step_months`` after ``anchor_day``: the end of a monthly or annual billing period.

    Anchors on the 29th-31st fall on the last day of shorter months, as card billing does.
    """
    start = np.datetime64(timeline.start, "D")
    anchor = start + np.asarray(anchor_day, dtype=np.int64)
    after = start + np.asarray(after_day, dtype=np.int64)
    anchor_month = anchor.astype("datetime64[M]")
    offset = (anchor - anchor_month.astype("datetime64[D]")).astype(np.int64)
    step = np.asarray(step_months, dtype=np.int64)
    elapsed = (after.astype("datetime64[M]") - anchor_month).astype(np.int64)
    months = np.maximum(elapsed // step, 0) * step
    # The estimate is at most two steps short: step until the date passes ``after``.
    for _ in range(3):
        candidate = _day_in_month(anchor_month + months, offset)
        months = np.where(candidate <= after, months + step, months)
    return (_day_in_month(anchor_month + months, offset) - start).astype(np.int64)


def _day_in_month(month: np.ndarray, offset: np.ndarray) -> np.ndarray:
    first = month.astype("datetime64[D]")
    length = ((month + 1).astype("datetime64[D]") - first).astype(np.int64)
    return first + np.minimum(offset, length - 1)


def iso_timestamps(seconds: np.ndarray) -> np.ndarray:
    """Epoch seconds as ``YYYY-MM-DDTHH:MM:SSZ`` strings (a numpy unicode array)."""
    text = np.datetime_as_string(np.asarray(seconds, dtype=np.int64).astype("datetime64[s]"))
    return np.char.add(text, "Z")


def iso_dates(day_seconds: np.ndarray) -> np.ndarray:
    """Epoch seconds as ``YYYY-MM-DD`` strings (a numpy unicode array)."""
    instants = np.asarray(day_seconds, dtype=np.int64).astype("datetime64[s]")
    return np.datetime_as_string(instants.astype("datetime64[D]"))


def working_seconds(rng: np.random.Generator, utc_offset_hours: np.ndarray) -> np.ndarray:
    """Seconds after midnight UTC at which people in these UTC offsets act.

    Most activity falls in the local working day; a tail is spread over all hours (night owls,
    on-call staff, automated jobs). Results wrap into the same UTC day on purpose, so an event
    drawn for a day never moves to a neighbouring one.
    """
    count = len(utc_offset_hours)
    local = np.where(
        rng.random(count) < 0.88,
        np.clip(rng.normal(13.5, 2.6, count), 7.0, 20.5) * 3600.0,
        rng.random(count) * SECONDS_PER_DAY,
    )
    utc = local - np.asarray(utc_offset_hours) * 3600.0
    return np.mod(utc.astype(np.int64), SECONDS_PER_DAY)
