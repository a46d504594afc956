"""Segments: accounts clustered on how they use the product, each described in plain words.

Behaviour, not contract: the features are usage intensity and mix, breadth, seat use, trend,
silence, support load and NPS from each account's newest snapshot (or, for a user's transaction
table, recency, frequency and spend). They are standardised and clustered with k-means for every
count in ``analytics.min_clusters``..``max_clusters``; the count with the highest mean
silhouette score (how much closer accounts are to their own segment than to the next one) wins.
Segments are numbered by size, largest first, so the same data and seed give the same numbers.
The clustering is fitted on active accounts; accounts that left get the segment of their last
snapshot. The result is written to ``<home>/data/analytics/segments.parquet`` (``account_id``,
``segment``, ``segment_name``, ``active``) for playbooks to select on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from csa.analytics.ledger import RevenueLedger
from csa.analytics.snapshots import JOIN_KEY, SNAPSHOT_TIME
from csa.errors import ConfigError, LakeError
from csa.settings import Settings

logger = logging.getLogger(__name__)

SEGMENTS_FILE = "segments.parquet"
_MIX_EVENTS = ("login", "report_created", "dashboard_viewed", "api_call", "data_exported")

# What each clustering feature means to a reader, and how to print its value.
FEATURE_WORDS: dict[str, tuple[str, str]] = {
    "seat_utilization": ("seat use", "{:.0%} of seats active"),
    "actions_per_user": ("actions per active person", "{:.0f} a month"),
    "feature_breadth": ("capabilities used", "{:.1f} of 9"),  # the 9 usage event kinds
    "usage_trend": ("usage this week vs the last four", "{:.2f}x"),
    "days_silent": ("days since last activity", "{:.1f} days"),
    "tickets_90d": ("support tickets", "{:.1f} in 90 days"),
    "nps": ("NPS score", "{:.1f} of 10"),
    **{f"share_{e}": (f"{e.replace('_', ' ')} share", "{:.0%} of actions") for e in _MIX_EVENTS},
    "recency_months": ("months since last purchase", "{:.1f} months"),
    "active_month_share": ("share of months with a purchase", "{:.0%}"),
    "monthly_spend": ("spend in a month with a purchase", "{:,.2f}"),
    "tenure_months": ("months since first purchase", "{:.1f} months"),
}
# Skewed counts are clustered on a log scale so a few heavy accounts do not own a segment.
_LOG_SCALE = ("actions_per_user", "days_silent", "tickets_90d", "monthly_spend")


@dataclass
class Segmentation:
    """Segments of a set of accounts and how they were chosen."""

    assignments: pd.DataFrame  # account_id, segment, segment_name, active
    profiles: pd.DataFrame  # segment -> accounts, share, mean of each feature (natural units)
    descriptions: dict[int, str]  # segment -> what sets it apart, in words
    silhouette: pd.Series  # cluster count -> mean silhouette score
    chosen: int
    stability: float  # mean adjusted Rand index of refits with other seeds against this one
    features: pd.DataFrame  # the clustering features, natural units, by account


def account_behaviour(settings: Settings) -> tuple[pd.DataFrame, pd.Series]:
    """Each account's behaviour features from its newest snapshot, and whether it is active.

    Raises:
        LakeError: the feature tables were never built.
    """
    from csa.features.build import feature_table_path
    from csa.features.definitions import SUPPORT, USAGE

    usage_path = feature_table_path(settings.features_dir, USAGE.name)
    support_path = feature_table_path(settings.features_dir, SUPPORT.name)
    if not usage_path.exists() or not support_path.exists():
        raise LakeError(
            f"no feature tables under {settings.features_dir}; run `csa features build` first."
        )
    usage_columns = [
        JOIN_KEY,
        SNAPSHOT_TIME,
        "events_30d",
        "active_users_30d",
        "feature_breadth_30d",
        "seat_utilization",
        "events_trend_7v28",
        "days_since_last_activity",
        *(f"events_{event}_30d" for event in _MIX_EVENTS),
    ]
    usage = _newest(pd.read_parquet(usage_path, columns=usage_columns))
    support = _newest(
        pd.read_parquet(support_path, columns=[JOIN_KEY, SNAPSHOT_TIME, "tickets_90d", "nps_last"])
    )
    frame = usage.join(support.drop(columns=SNAPSHOT_TIME), how="left")
    events = frame["events_30d"].clip(lower=0)
    features = pd.DataFrame(index=frame.index)
    features["seat_utilization"] = frame["seat_utilization"].clip(0, 2)
    features["actions_per_user"] = events / frame["active_users_30d"].clip(lower=1)
    features["feature_breadth"] = frame["feature_breadth_30d"]
    features["usage_trend"] = frame["events_trend_7v28"].clip(0, 3)
    features["days_silent"] = frame["days_since_last_activity"].clip(lower=0)
    for event in _MIX_EVENTS:
        features[f"share_{event}"] = frame[f"events_{event}_30d"] / events.where(events > 0)
    features["tickets_90d"] = frame["tickets_90d"]
    features["nps"] = frame["nps_last"]
    active = frame[SNAPSHOT_TIME] == frame[SNAPSHOT_TIME].max()
    return features.astype("float64"), active.rename("active")


def customer_behaviour(ledger: RevenueLedger) -> tuple[pd.DataFrame, pd.Series]:
    """Recency, frequency, spend and tenure of each customer of a transaction ledger.

    A customer counts as active when it bought in the newest 3 months.
    """
    values = ledger.values.to_numpy()
    bought = values > 0
    months = values.shape[1]
    first = bought.argmax(axis=1)
    last = months - 1 - bought[:, ::-1].argmax(axis=1)
    keep = bought.any(axis=1)
    spend = np.where(bought, values, np.nan)
    features = pd.DataFrame(
        {
            "recency_months": (months - 1 - last).astype(float),
            "active_month_share": bought.sum(axis=1) / (months - first),
            "monthly_spend": np.nanmean(np.where(keep[:, None], spend, 1.0), axis=1),
            "tenure_months": (months - 1 - first).astype(float),
        },
        index=ledger.values.index.rename(JOIN_KEY),
    ).loc[keep]
    return features, (features["recency_months"] < 3).rename("active")


def segment_accounts(
    features: pd.DataFrame,
    active: pd.Series,
    seed: int,
    min_clusters: int = 2,
    max_clusters: int = 6,
    stability_runs: int = 3,
) -> Segmentation:
    """Cluster ``features`` (fitted on the active rows), choose the count, name the segments.

    Args:
        features: one row per account, natural units; missing values take the median.
        active: which rows are current customers (the clustering is fitted on them).
        seed: k-means seed; the same seed and data give the same segments.
        min_clusters: fewest segments to try.
        max_clusters: most segments to try.
        stability_runs: refits with other seeds whose agreement is reported as ``stability``.

    Raises:
        ConfigError: too few accounts to form ``min_clusters`` segments.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, silhouette_score

    fit_rows = active.reindex(features.index).fillna(False).astype(bool)
    if fit_rows.sum() < 3 * max(min_clusters, 2):
        fit_rows[:] = True  # too few current customers: describe everyone instead
    if fit_rows.sum() < 3 * min_clusters:
        raise ConfigError(
            f"{int(fit_rows.sum())} accounts are too few for {min_clusters} segments; lower "
            "analytics.min_clusters or add accounts."
        )
    features = features.loc[:, features.notna().any()]
    scaled = _standardise(features, fit_rows)
    fit = scaled[fit_rows.to_numpy()]
    upper = min(max_clusters, len(fit) - 1)
    scores, models = {}, {}
    for k in range(min_clusters, max(upper, min_clusters) + 1):
        model = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(fit)
        scores[k] = float(silhouette_score(fit, model.labels_))
        models[k] = model
    chosen = max(scores, key=lambda k: (round(scores[k], 6), -k))
    model = models[chosen]
    order = _size_order(model.labels_, model.cluster_centers_)
    labels = order[model.predict(scaled)]

    agreement = []
    for run in range(1, stability_runs + 1):
        other = KMeans(n_clusters=chosen, n_init=10, random_state=seed + 1000 * run).fit(fit)
        agreement.append(adjusted_rand_score(labels[fit_rows.to_numpy()], other.labels_))
    stability = float(np.mean(agreement)) if agreement else 1.0

    segments = pd.Series(labels + 1, index=features.index, name="segment")
    filled = features.fillna(features.median())
    profiles, descriptions, names = _describe(filled, segments, fit_rows)
    assignments = pd.DataFrame(
        {
            JOIN_KEY: features.index.astype(str),
            "segment": segments.to_numpy(),
            "segment_name": segments.map(names).to_numpy(),
            "active": fit_rows.to_numpy() if active.any() else True,
        }
    )
    logger.info(
        "segments: %d chosen by silhouette %.3f (%s), stability %.2f, %d accounts",
        chosen,
        scores[chosen],
        ", ".join(f"k={k}: {v:.3f}" for k, v in scores.items()),
        stability,
        len(assignments),
    )
    return Segmentation(
        assignments=assignments,
        profiles=profiles,
        descriptions=descriptions,
        silhouette=pd.Series(scores, name="silhouette").rename_axis("segments"),
        chosen=chosen,
        stability=stability,
        features=filled,
    )


def write_segments(segmentation: Segmentation, analytics_dir: Path) -> Path:
    """Store the segments as an account attribute: ``<analytics_dir>/segments.parquet``."""
    analytics_dir.mkdir(parents=True, exist_ok=True)
    path = analytics_dir / SEGMENTS_FILE
    partial = path.with_suffix(".parquet.partial")
    segmentation.assignments.to_parquet(partial, index=False)
    partial.replace(path)  # readers never see half a file
    return path


def read_segments(analytics_dir: Path) -> pd.DataFrame | None:
    """The stored segments, or None when ``csa analytics segments`` has not run."""
    path = analytics_dir / SEGMENTS_FILE
    return pd.read_parquet(path) if path.exists() else None


def _standardise(features: pd.DataFrame, fit_rows: pd.Series) -> np.ndarray:
    frame = features.copy()
    for column in _LOG_SCALE:
        if column in frame:
            frame[column] = np.log1p(frame[column].clip(lower=0))
    frame = frame.fillna(frame.loc[fit_rows].median())
    centre = frame.loc[fit_rows].mean()
    spread = frame.loc[fit_rows].std(ddof=0).replace(0, 1.0)
    return ((frame - centre) / spread).to_numpy()


def _size_order(labels: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """A relabelling that numbers clusters by size, ties broken by centre: seed-independent."""
    sizes = np.bincount(labels, minlength=len(centres))
    keys = sorted(range(len(centres)), key=lambda c: (-sizes[c], tuple(np.round(centres[c], 6))))
    order = np.empty(len(centres), dtype=int)
    order[keys] = np.arange(len(centres))
    return order


def _describe(
    features: pd.DataFrame, segments: pd.Series, fit_rows: pd.Series
) -> tuple[pd.DataFrame, dict[int, str], dict[int, str]]:
    base = features.loc[fit_rows]
    overall = base.mean()
    scale = base.std(ddof=0).replace(0, 1.0)
    profiles = base.groupby(segments.loc[fit_rows]).mean()
    profiles.insert(0, "share", segments.loc[fit_rows].value_counts(normalize=True).sort_index())
    profiles.insert(0, "accounts", segments.loc[fit_rows].value_counts().sort_index())
    descriptions, names = {}, {}
    for segment, row in profiles.iterrows():
        gaps = ((row[features.columns] - overall) / scale).sort_values(key=np.abs, ascending=False)
        top = [name for name in gaps.index[:3] if abs(gaps[name]) >= 0.25] or list(gaps.index[:1])
        words = [f"{'high' if gaps[n] > 0 else 'low'} {FEATURE_WORDS[n][0]}" for n in top[:2]]
        names[int(segment)] = ", ".join(words)
        details = "; ".join(
            f"{FEATURE_WORDS[n][0]} {FEATURE_WORDS[n][1].format(row[n])} "
            f"(all: {FEATURE_WORDS[n][1].format(overall[n])})"
            for n in top
        )
        descriptions[int(segment)] = (
            f"Segment {segment}: {int(row['accounts'])} accounts ({row['share']:.0%}). "
            f"Sets it apart: {details}."
        )
    return profiles, descriptions, names


def segments_figure(segmentation: Segmentation) -> Figure:
    """How each segment differs from all accounts, feature by feature (standard deviations)."""
    profiles = segmentation.profiles
    features = segmentation.features
    columns = list(features.columns)
    base = features.loc[segmentation.assignments.set_index(JOIN_KEY)["active"].to_numpy()]
    gaps = (profiles[columns] - base.mean()) / base.std(ddof=0).replace(0, 1.0)
    figure = Figure(figsize=(10, 0.5 * len(profiles) + 3.6), layout="constrained")
    ax, side = figure.subplots(1, 2, width_ratios=[4, 1])
    limit = max(1.0, float(np.nanmax(np.abs(gaps.to_numpy()))))
    image = ax.imshow(gaps.to_numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(
        range(len(columns)),
        [FEATURE_WORDS[c][0] for c in columns],
        rotation=40,
        ha="right",
        fontsize=8,
    )
    names = segmentation.assignments.drop_duplicates("segment").set_index("segment")
    ax.set_yticks(
        range(len(profiles)),
        [f"{s}: {names.loc[s, 'segment_name']}" for s in profiles.index],
        fontsize=8,
    )
    ax.set_ylabel("Segment")
    ax.set_title("How each segment differs from the average account")
    figure.colorbar(image, ax=ax, label="difference in standard deviations", shrink=0.8)
    side.barh(range(len(profiles)), profiles["accounts"], color="#4C72B0")
    side.set_yticks(range(len(profiles)), [str(s) for s in profiles.index])
    side.invert_yaxis()
    side.set_xlabel("Accounts")
    side.set_title("Size")
    scores = ", ".join(f"{k}: {v:.2f}" for k, v in segmentation.silhouette.items())
    figure.suptitle(
        f"{segmentation.chosen} segments, the count with the best silhouette score ({scores})",
        fontsize=10,
    )
    return figure


def _newest(frame: pd.DataFrame) -> pd.DataFrame:
    newest = frame.sort_values(SNAPSHOT_TIME, kind="stable").groupby(JOIN_KEY).tail(1)
    return newest.set_index(JOIN_KEY)
