"""Latent account health: the unobserved state that drives usage, sentiment, churn and growth.

Health lies in [0, 1] and is composed of

* product fit, a per-account level drawn once;
* an onboarding ramp: new customers start at a fraction of their fit and reach it in about
  two months;
* a slow drift, a mean-reverting random walk (priorities change, budgets tighten);
* lasting shocks: the champion who bought the product leaves, and health recovers only over
  a year or more;
* passing shocks: a platform outage hurts the accounts it reaches for a few days.

No export contains health; ``ground_truth/daily-*.parquet`` does, so that models can be judged
against what really drove the observations.
"""

from __future__ import annotations

import numpy as np

ONBOARDING_DAYS = 60
RAMP_FLOOR = 0.55
DRIFT_PERSISTENCE = 0.996
DRIFT_STEP = 0.011
# Stationary spread of the drift, so existing accounts start where the walk would be.
DRIFT_SPREAD = DRIFT_STEP / np.sqrt(1.0 - DRIFT_PERSISTENCE**2)
CHAMPION_LEAVES_PER_DAY = 1.0 / 500.0
CHAMPION_DROP = (0.2, 0.45)
CHAMPION_RECOVERY_PER_DAY = 0.998
OUTAGES_PER_DAY = 1.0 / 45.0
OUTAGE_REACH = 0.35  # share of accounts an incident reaches (one region, one cluster)
OUTAGE_DROP = 0.3
OUTAGE_RECOVERY_PER_DAY = 0.7


def outage_calendar(rng: np.random.Generator, days: int) -> np.ndarray:
    """Per day, whether the platform has an incident.

    Drawn from a company-wide stream, so every chunk of accounts sees the same incident days.
    """
    return rng.random(days) < OUTAGES_PER_DAY


class Health:
    """Day-by-day health of one chunk of accounts.

    Args:
        fit: product fit per account, the level health returns to.
        existing: accounts that are customers before day 0; their drift starts settled.
    """

    def __init__(self, rng: np.random.Generator, fit: np.ndarray, existing: np.ndarray) -> None:
        count = len(fit)
        self._fit = fit
        self._drift = np.where(existing, rng.normal(0.0, DRIFT_SPREAD, count), 0.0)
        self._lasting = np.zeros(count)
        self._passing = np.zeros(count)
        self.champion_left_day = np.full(count, -1, dtype=np.int64)
        self.outages_hit = np.zeros(count, dtype=np.int64)

    def step(
        self, rng: np.random.Generator, day: int, age: np.ndarray, outage: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Advance one day.

        Args:
            age: days since signup per account (negative before signup).
            outage: whether the platform has an incident today.

        Returns:
            Today's health and which accounts today's incident reached.
        """
        count = len(self._fit)
        customer = age >= 0
        self._drift = DRIFT_PERSISTENCE * self._drift + rng.normal(0.0, DRIFT_STEP, count)

        # Lasting shock: the champion leaves; the drop fades only slowly.
        leaves = customer & (rng.random(count) < CHAMPION_LEAVES_PER_DAY)
        self._lasting = self._lasting * CHAMPION_RECOVERY_PER_DAY - leaves * rng.uniform(
            *CHAMPION_DROP, count
        )
        self.champion_left_day[leaves] = day

        # Passing shock: an incident reaches part of the customer base for a few days.
        hit = customer & outage & (rng.random(count) < OUTAGE_REACH)
        drop = OUTAGE_DROP * rng.uniform(0.6, 1.0, count) * hit
        self._passing = self._passing * OUTAGE_RECOVERY_PER_DAY - drop
        self.outages_hit += hit

        ramp = RAMP_FLOOR + (1.0 - RAMP_FLOOR) * np.clip(age / ONBOARDING_DAYS, 0.0, 1.0)
        level = ramp * (self._fit + self._drift + self._lasting) + self._passing
        return np.clip(level, 0.0, 1.0), hit
