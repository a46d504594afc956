"""The policy applied: is a window drifted, and what does a run of windows call for?

``judge_window`` compares one window with the champion's reference (feature drift weighted by
the policy, prediction drift, and quality once labels have matured). ``decide`` turns the
newest windows and the last drift retraining into one decision with its reason:

| decision | when |
|---|---|
| ``window_too_small`` | the newest window has fewer rows than ``min_window_rows`` |
| ``no_drift`` | the newest window is not drifted |
| ``drift_unconfirmed`` | it is, but not ``consecutive_windows`` windows in a row |
| ``drift_within_cooldown`` | a breach, less than ``cooldown_days`` after the last retraining |
| ``retrain_recommended`` | a breach, and the pass was not asked to retrain |
| ``retrained_promoted`` / ``retrained_refused`` | a breach retrained; the gate's verdict |
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from csa.features.definitions import JOIN_KEY
from csa.monitoring.drift import FeatureDrift, feature_drift, probability_shift
from csa.monitoring.policy import DriftPolicy
from csa.monitoring.reference import PREDICTION, Reference, feature_weights
from csa.monitoring.windows import MATURED, Window, cut_windows

NO_DRIFT = "no_drift"
WINDOW_TOO_SMALL = "window_too_small"
DRIFT_UNCONFIRMED = "drift_unconfirmed"
DRIFT_WITHIN_COOLDOWN = "drift_within_cooldown"
RETRAIN_RECOMMENDED = "retrain_recommended"
RETRAINED_PROMOTED = "retrained_promoted"
RETRAINED_REFUSED = "retrained_refused"
NO_CHAMPION = "no_champion"
# A breach the pass retrains for; replaced by the gate's outcome once the retraining ran.
RETRAIN_DUE = "retrain_due"


@dataclass
class WindowVerdict:
    """One window against the reference."""

    start: pd.Timestamp
    end: pd.Timestamp
    rows: int
    judged: bool
    drifted: bool = False
    drifted_share: float = 0.0
    features: list[FeatureDrift] = field(default_factory=list)
    excluded: list[FeatureDrift] = field(default_factory=list)
    prediction: FeatureDrift | None = None
    quality: dict[str, float] | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def drifted_features(self) -> list[str]:
        """Judged features that drifted, strongest first."""
        drifted = [d for d in self.features if d.drifted]
        return [d.feature for d in sorted(drifted, key=lambda d: d.score, reverse=True)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "rows": self.rows,
            "judged": self.judged,
            "drifted": self.drifted,
            "drifted_share": round(self.drifted_share, 4),
            "drifted_features": self.drifted_features,
            "prediction_drift": None if self.prediction is None else self.prediction.to_dict(),
            "quality": self.quality,
            "reasons": self.reasons,
            "features": [d.to_dict() for d in self.features],
            "excluded_features": [d.to_dict() for d in self.excluded],
        }


def judge_window(
    reference: Reference,
    window: Window,
    policy: DriftPolicy,
    seed: int = 0,
    labelled: Window | None = None,
) -> WindowVerdict:
    """Feature and prediction drift of one window (which carries ``probability``), and quality.

    Args:
        labelled: the window whose matured labels judge quality; its labels mature a horizon
            after the drift window's, so it is an earlier one (none: quality is not judged).
    """
    frame = window.frame
    verdict = WindowVerdict(start=window.start, end=window.end, rows=len(frame), judged=False)
    if len(frame) < policy.min_window_rows:
        verdict.reasons.append(
            f"{len(frame)} snapshots, fewer than min_window_rows ({policy.min_window_rows})"
        )
        return verdict
    verdict.judged = True
    limits = policy.thresholds

    # Feature drift, weighted
    excluded = set(policy.features.exclude)
    drifts = feature_drift(
        reference.frame,
        frame,
        reference.features,
        reference.categorical,
        limits.numeric,
        limits.categorical,
        policy.max_rows,
        seed,
    )
    drifts = _above_noise(reference, frame, drifts, policy)
    verdict.features = [d for d in drifts if d.feature not in excluded]
    verdict.excluded = [d for d in drifts if d.feature in excluded]
    weights = feature_weights(reference, policy.features.exclude, policy.features.weight)
    verdict.drifted_share = float(
        sum(weights.get(d.feature, 0.0) for d in verdict.features if d.drifted)
    )
    if verdict.drifted_share >= limits.drifted_share:
        top = ", ".join(verdict.drifted_features[:5])
        verdict.reasons.append(
            f"drifted features carry {verdict.drifted_share:.0%} of the weight "
            f"(>= {limits.drifted_share:.0%}): {top}"
        )

    # Prediction drift
    if PREDICTION in frame.columns and PREDICTION in reference.frame.columns:
        verdict.prediction = probability_shift(
            PREDICTION,
            reference.frame[PREDICTION],
            frame[PREDICTION],
            limits.prediction or float("inf"),
        )
        if verdict.prediction is not None:
            verdict.prediction = _above_noise(reference, frame, [verdict.prediction], policy)[0]
        judged = limits.prediction is not None
        if judged and verdict.prediction is not None and verdict.prediction.drifted:
            verdict.reasons.append(
                f"predicted probabilities moved by {verdict.prediction.score:.3f} "
                f"(>= {limits.prediction:g})"
            )

    # Quality on matured labels
    verdict.quality = None if labelled is None else _quality(reference, labelled, policy)
    if verdict.quality is not None:
        verdict.reasons += verdict.quality.pop("reasons", [])  # type: ignore[arg-type]
    verdict.drifted = bool(verdict.reasons)
    return verdict


def attach_history(reference: Reference, rows: pd.DataFrame, policy: DriftPolicy) -> None:
    """Measure how far the champion's own test windows sit from its reference.

    ``rows`` are snapshots (with ``probability``) covering the days from the reference's end
    to ``reference.known_until``: data the champion was trained and judged on, so whatever
    distance its windows show is movement the company makes without a change worth a
    retraining (accounts aging, seat and billing changes, ticket bursts). Up to
    ``history_windows`` windows of ``window_days``, newest first, each with at least
    ``min_window_rows`` rows; the largest distance per column is kept on the reference.
    """
    reference.history, reference.history_window_days = {}, policy.window_days
    end, known_until = reference.end, reference.known_until
    if end is None or known_until is None or policy.history_windows == 0 or rows.empty:
        return
    span = (known_until - end) // pd.Timedelta(days=policy.window_days)
    count = min(int(span), policy.history_windows)
    if count <= 0:
        return
    levels: dict[str, float] = {}
    for window in cut_windows(rows, known_until, policy.window_days, count):
        if len(window.frame) < policy.min_window_rows:
            continue
        drifts = feature_drift(
            reference.frame,
            window.frame,
            reference.features,
            reference.categorical,
            max_rows=policy.max_rows,
        )
        if PREDICTION in window.frame.columns and PREDICTION in reference.frame.columns:
            shift = probability_shift(
                PREDICTION, reference.frame[PREDICTION], window.frame[PREDICTION], 1.0
            )
            drifts += [shift] if shift is not None else []
        for drift in drifts:
            levels[drift.feature] = max(levels.get(drift.feature, 0.0), drift.score)
    reference.history = levels


def _above_noise(
    reference: Reference, frame: pd.DataFrame, drifts: list[FeatureDrift], policy: DriftPolicy
) -> list[FeatureDrift]:
    """Drifts that also clear the reference's sampling noise and the company's own history.

    ``noise_factor`` times the distance of two halves of the reference's accounts, and
    ``history_factor`` times the largest distance of the champion's test windows (when
    ``attach_history`` measured them).
    """
    drifts = _above_history(reference, drifts, policy)
    factor = policy.thresholds.noise_factor
    if factor <= 0 or JOIN_KEY not in frame.columns:
        return drifts
    noise = reference.split_half_noise(policy.max_rows)
    if not noise:
        return drifts
    # Each half holds half the reference's accounts, so its distance has the spread of a
    # comparison of N/2 with N/2 accounts; this window compares N_current with N.
    n_ref, n_cur = reference.accounts, max(int(frame[JOIN_KEY].nunique()), 1)
    scale = float(np.sqrt((1 / n_cur + 1 / n_ref) / (4 / n_ref)))
    out = []
    for drift in drifts:
        level = noise.get(drift.feature)
        if level is None:
            out.append(drift)
            continue
        expected = level * scale
        out.append(
            replace(
                drift, noise=expected, drifted=drift.drifted and drift.score >= factor * expected
            )
        )
    return out


def _above_history(
    reference: Reference, drifts: list[FeatureDrift], policy: DriftPolicy
) -> list[FeatureDrift]:
    factor = policy.thresholds.history_factor
    if not reference.history or reference.history_window_days != policy.window_days:
        return drifts
    out = []
    for drift in drifts:
        level = reference.history.get(drift.feature)
        if level is None:
            out.append(drift)
            continue
        clears = factor <= 0 or drift.score >= factor * level
        out.append(replace(drift, history=level, drifted=drift.drifted and clears))
    return out


def _quality(reference: Reference, window: Window, policy: DriftPolicy) -> dict[str, Any] | None:
    from csa.training.evaluation import binary_metrics

    frame = window.frame
    label = reference.label
    if label is None or label not in frame.columns or MATURED not in frame.columns:
        return None
    matured = frame.loc[frame[MATURED].astype(bool)]
    y = matured[label].to_numpy(dtype=np.int64) if len(matured) else np.array([], dtype=np.int64)
    positive_accounts = int(matured.loc[y == 1, JOIN_KEY].nunique()) if len(matured) else 0
    if len(matured) < policy.quality.min_labelled_rows or len(np.unique(y)) < 2:
        return None
    if positive_accounts < policy.quality.min_positive_accounts:
        return None
    metrics = binary_metrics(y, matured[PREDICTION].to_numpy())
    out: dict[str, Any] = {
        "window_end": window.end.isoformat(),
        "labelled_rows": len(matured),
        "positives": int(y.sum()),
        "positive_accounts": positive_accounts,
        "roc_auc": round(metrics["roc_auc"], 4),
        "ece": round(metrics["ece"], 4),
        "reasons": [],
    }
    limits = policy.quality
    champion_auc = reference.metrics.get("roc_auc")
    champion_ece = reference.metrics.get("ece")
    if champion_auc is not None:
        out["roc_auc_drop"] = round(champion_auc - metrics["roc_auc"], 4)
        if out["roc_auc_drop"] >= limits.max_roc_auc_drop:
            out["reasons"].append(
                f"ROC AUC {metrics['roc_auc']:.3f} on {len(matured)} matured labels, "
                f"{out['roc_auc_drop']:.3f} below the champion's test {champion_auc:.3f}"
            )
    if champion_ece is not None:
        out["ece_increase"] = round(metrics["ece"] - champion_ece, 4)
        if out["ece_increase"] >= limits.max_ece_increase:
            out["reasons"].append(
                f"calibration error {metrics['ece']:.3f}, {out['ece_increase']:.3f} above the "
                f"champion's {champion_ece:.3f}"
            )
    return out


@dataclass
class Decision:
    """What a pass decided for one model, and why."""

    decision: str
    reason: str
    breach: bool


def decide(
    verdicts: list[WindowVerdict],
    policy: DriftPolicy,
    last_retrain_end: pd.Timestamp | None,
    retrain: bool,
) -> Decision:
    """The decision for the newest windows (``verdicts``, newest first)."""
    newest = verdicts[0]
    if not newest.judged:
        return Decision(WINDOW_TOO_SMALL, "; ".join(newest.reasons), False)
    if not newest.drifted:
        share = f"drifted features carry {newest.drifted_share:.0%} of the weight"
        return Decision(
            NO_DRIFT, f"no drift in the window ending {_day(newest.end)} ({share})", False
        )
    needed = policy.consecutive_windows
    streak = 0
    for verdict in verdicts:
        if not (verdict.judged and verdict.drifted):
            break
        streak += 1
    why = "; ".join(newest.reasons)
    if streak < needed:
        return Decision(
            DRIFT_UNCONFIRMED,
            f"drift in {streak} of the {needed} consecutive windows the policy needs: {why}",
            False,
        )
    if last_retrain_end is not None:
        elapsed = (newest.end - last_retrain_end).days
        if elapsed < policy.cooldown_days:
            return Decision(
                DRIFT_WITHIN_COOLDOWN,
                f"drift in {streak} consecutive windows, but the last drift retraining was "
                f"{elapsed} days of data ago (cooldown {policy.cooldown_days} days): {why}",
                True,
            )
    if not retrain:
        return Decision(
            RETRAIN_RECOMMENDED,
            f"drift in {streak} consecutive windows; run with --retrain to act: {why}",
            True,
        )
    return Decision(RETRAIN_DUE, f"drift in {streak} consecutive windows: {why}", True)


def _day(stamp: pd.Timestamp) -> str:
    return stamp.date().isoformat()
