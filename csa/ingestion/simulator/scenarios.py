"""Scenarios: a baseline company, or one whose behaviour changes on a known date.

The changes exist so that drift detection and model monitoring have a ground truth to be
judged against: ``scenario.json`` in the ground truth records what changed and when.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

BASELINE = "baseline"
USAGE_DROP = "usage-drop"
NEW_SEGMENT = "new-segment"
SCENARIOS = (BASELINE, USAGE_DROP, NEW_SEGMENT)

# A product change (say, reports moved behind a new menu) makes users create fewer reports.
# Health is untouched on purpose: the drop is a change of behaviour, not of satisfaction.
USAGE_DROP_EVENT = "report_created"
USAGE_DROP_FACTOR = 0.3

NEW_SEGMENT_NAME = "public_sector"
CORE_SEGMENT_NAME = "core"


@dataclass(frozen=True)
class Scenario:
    """What changes in the simulated company, and from which day index."""

    name: str
    change_date: dt.date
    change_day: int

    @property
    def drops_usage(self) -> bool:
        return self.name == USAGE_DROP

    @property
    def opens_new_segment(self) -> bool:
        return self.name == NEW_SEGMENT

    @property
    def affected_event(self) -> str | None:
        return USAGE_DROP_EVENT if self.drops_usage else None

    def describe(self, seed: int, start: dt.date, days: int, accounts: int) -> dict[str, Any]:
        """The content of ``ground_truth/scenario.json``."""
        effects = {
            BASELINE: "no change; change_date is only a reference split",
            USAGE_DROP: (
                f"from change_date every account does {USAGE_DROP_EVENT} about "
                f"{USAGE_DROP_FACTOR:.0%} as often; health and churn are not affected"
            ),
            NEW_SEGMENT: (
                f"from change_date every new signup belongs to the {NEW_SEGMENT_NAME} segment: "
                "industry Public Sector, countries JP and KR, more seats, API-heavy, few logins"
            ),
        }
        return {
            "scenario": self.name,
            "change_date": self.change_date.isoformat(),
            "change_day_index": self.change_day,
            "seed": seed,
            "start": start.isoformat(),
            "days": days,
            "accounts": accounts,
            "affected_event": self.affected_event,
            "affected_event_factor": USAGE_DROP_FACTOR if self.drops_usage else None,
            "new_segment": NEW_SEGMENT_NAME if self.opens_new_segment else None,
            "effect": effects[self.name],
        }
