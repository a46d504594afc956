"""Every play fires when its situation holds and not on a near miss; rules cannot run code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from csa.errors import ConfigError
from csa.playbooks import actions, load_playbook, parse_rule
from csa.settings import REPO_ROOT

PLAYBOOK = REPO_ROOT / "configs" / "playbooks.yaml"

# An account that needs nothing: every play must stay silent for it.
HEALTHY: dict[str, Any] = {
    "churn.probability": 0.02,
    "churn.band": "low",
    "expansion.probability": 0.05,
    "expansion.band": "low",
    "days_to_renewal": 200.0,
    "failed_payments_90d": 0,
    "tenure_days": 400.0,
    "feature_breadth_30d": 7,
    "seat_utilization": 0.7,
    "nps_last": 9,
    "active_users_trend_7v28": 0.95,
    "active_users_30d": 12,
    "days_since_last_activity": 0.5,
    "seats": 20,
    "open_tickets": 0,
    "tickets_30d": 1,
    "high_priority_share_90d": 0.0,
    "plan_tier": "growth",
}

# Per play: what makes it fire, and a near miss that must not.
SITUATIONS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "renewal_risk": (
        {"churn.band": "high", "days_to_renewal": 45.0},
        {"churn.band": "high", "days_to_renewal": 120.0},
    ),
    "failed_payment": ({"failed_payments_90d": 2}, {"failed_payments_90d": 0}),
    "onboarding_stall": (
        {"tenure_days": 30.0, "feature_breadth_30d": 1},
        {"tenure_days": 120.0, "feature_breadth_30d": 1},
    ),
    "detractor_follow_up": ({"nps_last": 4}, {"nps_last": 7}),
    "sponsor_check_in": (
        {"active_users_trend_7v28": 0.3, "active_users_30d": 8},
        {"active_users_trend_7v28": 0.3, "active_users_30d": 2},
    ),
    "dormant_account": ({"days_since_last_activity": 21.0}, {"days_since_last_activity": 3.0}),
    "low_seat_utilization": (
        {"seat_utilization": 0.2, "seats": 25},
        {"seat_utilization": 0.2, "seats": 5},
    ),
    "support_escalation": ({"open_tickets": 4}, {"open_tickets": 2, "tickets_30d": 1}),
    "license_expansion_ready": (
        {"seat_utilization": 0.95},
        {"seat_utilization": 0.95, "churn.band": "high"},
    ),
    "usage_based_upsell": (
        {"expansion.band": "high", "plan_tier": "starter"},
        {"expansion.band": "high", "plan_tier": "enterprise"},
    ),
}


def fired(values: dict[str, Any]) -> list[str]:
    return [a["play"] for a in actions(load_playbook(PLAYBOOK), values)]


def test_the_playbook_has_at_least_eight_plays_and_each_has_a_situation() -> None:
    plays = load_playbook(PLAYBOOK)

    assert len(plays) >= 8
    assert {p.id for p in plays} == set(SITUATIONS)
    assert fired(HEALTHY) == []


@pytest.mark.parametrize("play", sorted(SITUATIONS))
def test_each_play_fires_in_its_situation_and_not_on_a_near_miss(play: str) -> None:
    situation, near_miss = SITUATIONS[play]

    assert play in fired({**HEALTHY, **situation})
    assert play not in fired({**HEALTHY, **near_miss})


def test_actions_come_by_priority_with_filled_messages() -> None:
    values = {**HEALTHY, "failed_payments_90d": 1, "nps_last": 3, "seat_utilization": 0.95}
    found = actions(load_playbook(PLAYBOOK), values)

    assert [a["priority"] for a in found] == sorted(a["priority"] for a in found)
    payment = next(a for a in found if a["play"] == "failed_payment")
    assert payment["message"].startswith("1 failed payment(s) in 90 days")
    assert payment["owner"] == "csm"


def test_a_missing_value_never_fires_a_play() -> None:
    assert "detractor_follow_up" not in fired({**HEALTHY, "nps_last": None})


@pytest.mark.parametrize(
    "rule",
    [
        "__import__('os').system('true')",
        "seats.__class__",
        "seats + 1 > 2",
        "[x for x in seats]",
        "-seats < 0",
        "churn.secret == 1",
        "lambda: 1",
    ],
)
def test_rules_that_would_do_more_than_compare_are_refused(rule: str) -> None:
    with pytest.raises(ValueError):
        parse_rule(rule, {"seats"})


def test_a_rule_naming_an_unknown_feature_fails_naming_the_play(tmp_path: Path) -> None:
    path = tmp_path / "playbooks.yaml"
    path.write_text('plays:\n  - id: typo\n    title: T\n    when: "seat_utilisation < 0.2"\n')

    with pytest.raises(ConfigError, match=r"'typo'.*seat_utilisation"):
        load_playbook(path)
