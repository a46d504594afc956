"""The catalogue of account features: names, types, groups and business descriptions.

Every other module of ``csa.features`` takes its column names from here, so a feature is added
in one place. Descriptions are written for a customer-success manager: the serving layer shows
them next to a score as the explanation of a driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from csa.ingestion.contracts import USAGE_EVENTS

FeatureType = Literal["int", "float", "string"]

ENTITY = "account"
JOIN_KEY = "account_id"
SNAPSHOT_TIME = "as_of"

# Windows (days) over which usage is summarised; 28 only feeds the 7-versus-28 trend ratios.
USAGE_WINDOWS = (7, 30, 90)
TREND_WINDOW = 28


@dataclass(frozen=True)
class FeatureSpec:
    """One account feature as the platform documents and serves it."""

    name: str
    dtype: FeatureType
    description: str


@dataclass(frozen=True)
class FeatureGroup:
    """Features computed together and stored as one Feast feature view."""

    name: str
    description: str
    features: tuple[FeatureSpec, ...]

    @property
    def names(self) -> list[str]:
        return [feature.name for feature in self.features]


def _usage_features() -> tuple[FeatureSpec, ...]:
    specs: list[FeatureSpec] = []
    for days in USAGE_WINDOWS:
        specs.append(
            FeatureSpec(
                f"active_users_{days}d",
                "int",
                f"People who used the product in the last {days} days.",
            )
        )
        specs.append(
            FeatureSpec(f"events_{days}d", "int", f"Product actions in the last {days} days.")
        )
        for event in USAGE_EVENTS:
            label = event.replace("_", " ")
            specs.append(
                FeatureSpec(
                    f"events_{event}_{days}d",
                    "int",
                    f"Times '{label}' happened in the last {days} days.",
                )
            )
    specs += [
        FeatureSpec(
            "events_trend_7v28",
            "float",
            "Daily product actions this week relative to the last four weeks (1 = steady).",
        ),
        FeatureSpec(
            "active_users_trend_7v28",
            "float",
            "Share of the last four weeks' active people who were active this week.",
        ),
        FeatureSpec(
            "days_since_last_activity",
            "float",
            "Days since anyone at the account used the product.",
        ),
        FeatureSpec(
            "feature_breadth_30d",
            "int",
            f"How many of the {len(USAGE_EVENTS)} product capabilities were used in 30 days.",
        ),
        FeatureSpec(
            "seat_utilization",
            "float",
            "Active people in the last 30 days per paid seat (1 = every seat in use).",
        ),
    ]
    return tuple(specs)


USAGE = FeatureGroup("account_usage", "Product usage over trailing windows.", _usage_features())

PROFILE = FeatureGroup(
    "account_profile",
    "The account's contract as it stood on the snapshot date.",
    (
        FeatureSpec("plan_tier", "string", "Plan the account pays for."),
        FeatureSpec("size_band", "string", "Company size tier by employee count."),
        FeatureSpec("billing_period", "string", "Whether the account is billed monthly or yearly."),
        FeatureSpec("seats", "int", "Paid seats."),
        FeatureSpec("mrr", "float", "Monthly recurring revenue."),
        FeatureSpec("tenure_days", "float", "Days since the contract started."),
        FeatureSpec("days_to_renewal", "float", "Days until the contract next renews."),
    ),
)

BILLING = FeatureGroup(
    "account_billing",
    "Payments and contract changes over the last 90 days.",
    (
        FeatureSpec("failed_payments_90d", "int", "Failed payment attempts in the last 90 days."),
        FeatureSpec("mrr_change_90d", "float", "Change in monthly recurring revenue over 90 days."),
        FeatureSpec("seat_change_90d", "int", "Net change in paid seats over 90 days."),
        FeatureSpec(
            "seat_changes_90d", "int", "Times seats were added or removed in the last 90 days."
        ),
    ),
)

SUPPORT = FeatureGroup(
    "account_support",
    "Support tickets and survey answers.",
    (
        FeatureSpec("tickets_30d", "int", "Support tickets opened in the last 30 days."),
        FeatureSpec("tickets_90d", "int", "Support tickets opened in the last 90 days."),
        FeatureSpec("open_tickets", "int", "Support tickets still waiting for a resolution."),
        FeatureSpec(
            "median_resolution_hours_90d",
            "float",
            "Typical hours to resolve a ticket, over tickets resolved in 90 days.",
        ),
        FeatureSpec(
            "high_priority_share_90d",
            "float",
            "Share of the last 90 days' tickets raised as high or urgent priority.",
        ),
        FeatureSpec("nps_last", "int", "Latest NPS survey score (0-10)."),
        FeatureSpec("nps_change", "int", "Latest NPS score minus the one before it."),
    ),
)

# Scores of what customers wrote, by the sentiment champion (``text_sentiment``).
SENTIMENT = FeatureGroup(
    "account_sentiment",
    "Sentiment of the account's ticket bodies and survey comments.",
    (
        FeatureSpec(
            "sentiment_mean_30d",
            "float",
            "Average sentiment of the last 30 days' tickets and comments (0 negative, 1 positive).",
        ),
        FeatureSpec(
            "sentiment_mean_90d",
            "float",
            "Average sentiment of the last 90 days' tickets and comments (0 negative, 1 positive).",
        ),
        FeatureSpec(
            "negative_text_share_90d",
            "float",
            "Share of the last 90 days' tickets and comments that read as negative.",
        ),
        FeatureSpec(
            "sentiment_trend_30v90",
            "float",
            "Sentiment of the last 30 days minus that of the last 90 (below 0: souring).",
        ),
        FeatureSpec(
            "detractor_comments_90d",
            "int",
            "Survey comments of the last 90 days that read as negative.",
        ),
        FeatureSpec("scored_texts_90d", "int", "Tickets and comments written in the last 90 days."),
    ),
)

# Real-time counters: the serving layer pushes fresh values, the build writes daily ones.
USAGE_LIVE = FeatureGroup(
    "account_usage_live",
    "Usage counters of the current day, refreshed in real time by the event intake.",
    (
        FeatureSpec("events_1d", "int", "Product actions in the last day."),
        FeatureSpec("active_users_1d", "int", "People who used the product in the last day."),
    ),
)

# Ratios of a live counter to a batch feature: computed when a score is requested.
MOMENTUM = FeatureGroup(
    "usage_momentum",
    "Today's usage against the account's own recent normal, computed at request time.",
    (
        FeatureSpec(
            "events_1d_vs_30d_avg",
            "float",
            "Product actions in the last day relative to the 30-day daily average.",
        ),
        FeatureSpec(
            "active_users_1d_per_seat", "float", "People active in the last day per paid seat."
        ),
    ),
)

# Groups materialised from the lake, in build order.
BATCH_GROUPS: tuple[FeatureGroup, ...] = (
    USAGE,
    PROFILE,
    BILLING,
    SUPPORT,
    SENTIMENT,
    USAGE_LIVE,
)
ALL_GROUPS: tuple[FeatureGroup, ...] = (*BATCH_GROUPS, MOMENTUM)

MODELS = ("churn", "expansion")


def label_name(model: str, horizon_days: int) -> str:
    """The label column of a model, e.g. ``churned_within_90d``."""
    verb = {"churn": "churned", "expansion": "expanded"}[model]
    return f"{verb}_within_{horizon_days}d"


def feature_descriptions() -> dict[str, str]:
    """Business description of every feature, keyed by feature name."""
    return {spec.name: spec.description for group in ALL_GROUPS for spec in group.features}


def group(name: str) -> FeatureGroup:
    """The feature group called ``name``."""
    for candidate in ALL_GROUPS:
        if candidate.name == name:
            return candidate
    raise KeyError(name)
