"""Per-feature drift between a reference and a current sample, fast enough for millions of rows.

The statistics are the ones Evidently's ``DataDriftPreset`` picks for samples over 1,000 rows,
so our verdicts and the dashboard's mean the same thing:

- a numeric feature with more than five distinct values: the Wasserstein distance between the
  two distributions divided by the reference's standard deviation (drifted at >= 0.1);
- a categorical feature, or a numeric one with at most five values: the Jensen-Shannon
  distance between the two frequency vectors (drifted at >= 0.1).

They are distances, not p-values, on purpose: consecutive daily snapshots of one account are
not independent draws, and a test that assumes they are flags everything on large windows.

Speed comes from two summaries. A numeric column is reduced to ``QUANTILES`` quantiles of each
side (the Wasserstein distance in one dimension is the area between the quantile functions),
read from at most ``max_rows`` rows drawn at random; a categorical column to its frequencies.
``bench/bench_drift.py`` measures the time against ``DataDriftPreset`` and how often the
per-feature verdicts agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import distance

QUANTILES = 1000
# Evidently treats a numeric column with this many distinct values or fewer as categorical.
_FEW_VALUES = 5
# Evidently's floor on the reference's standard deviation, so a constant column stays finite.
_MIN_STD = 0.001
_GRID = (np.arange(QUANTILES) + 0.5) / QUANTILES


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift between reference and current."""

    feature: str
    method: str  # "wasserstein" (normed) or "jensenshannon"
    score: float
    threshold: float
    drifted: bool
    reference_rows: int
    current_rows: int
    # The distance two random halves of the reference's accounts already show, scaled to this
    # comparison's sizes: what drift of this size would be expected from the sample alone.
    noise: float | None = None
    # The largest distance a window of the champion's own test data showed from the reference:
    # how far the company moves over weeks with nothing to alarm on.
    history: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["score"] = round(self.score, 6)
        out["noise"] = None if self.noise is None else round(self.noise, 6)
        out["history"] = None if self.history is None else round(self.history, 6)
        return out


def sample_rows(frame: pd.DataFrame, max_rows: int, seed: int = 0) -> pd.DataFrame:
    """At most ``max_rows`` rows drawn at random without replacement (all when fewer)."""
    if len(frame) <= max_rows:
        return frame
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(len(frame), size=max_rows, replace=False))
    return frame.iloc[picks]


def _clean(values: pd.Series) -> pd.Series:
    # Missing and infinite values are left out of both sides, as Evidently does.
    if pd.api.types.is_numeric_dtype(values):
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        return numbers[np.isfinite(numbers.to_numpy())]
    return values.dropna().astype(str)


def normed_wasserstein(reference: np.ndarray, current: np.ndarray) -> float:
    """Wasserstein-1 distance over the reference's standard deviation, from quantile summaries."""
    norm = max(float(np.std(reference)), _MIN_STD)
    ref_q = np.quantile(reference, _GRID, method="inverted_cdf")
    cur_q = np.quantile(current, _GRID, method="inverted_cdf")
    return float(np.mean(np.abs(ref_q - cur_q))) / norm


def probability_shift(
    name: str, reference: pd.Series, current: pd.Series, threshold: float
) -> FeatureDrift | None:
    """How far predicted probabilities moved: the Wasserstein distance in probability points.

    Not normed by the reference's spread, unlike a feature's: churn probabilities bunch near
    zero, so their standard deviation is small and a normed distance swings with a handful of
    accounts. A shift of 0.03 reads plainly: the predicted risk moved by three points.
    """
    ref, cur = _clean(reference), _clean(current)
    if ref.empty or cur.empty:
        return None
    ref_q = np.quantile(ref.to_numpy(), _GRID, method="inverted_cdf")
    cur_q = np.quantile(cur.to_numpy(), _GRID, method="inverted_cdf")
    score = float(np.mean(np.abs(ref_q - cur_q)))
    return FeatureDrift(
        name, "probability_shift", score, threshold, score >= threshold, len(ref), len(cur)
    )


def jensen_shannon(reference: pd.Series, current: pd.Series) -> float:
    """Jensen-Shannon distance (natural log) of the two samples' value frequencies."""
    ref_counts = reference.value_counts(normalize=True)
    cur_counts = current.value_counts(normalize=True)
    keys = ref_counts.index.union(cur_counts.index)
    p = ref_counts.reindex(keys, fill_value=0.0).to_numpy()
    q = cur_counts.reindex(keys, fill_value=0.0).to_numpy()
    return float(distance.jensenshannon(p, q))


def column_drift(
    name: str,
    reference: pd.Series,
    current: pd.Series,
    categorical: bool,
    numeric_threshold: float = 0.1,
    categorical_threshold: float = 0.1,
) -> FeatureDrift | None:
    """The drift of one column, or None when either side has no value to compare."""
    ref = _clean(reference.astype(str) if categorical else reference)
    cur = _clean(current.astype(str) if categorical else current)
    if ref.empty or cur.empty:
        return None
    few_values = not categorical and pd.concat([ref, cur]).nunique() <= _FEW_VALUES
    if categorical or few_values:
        score, method, threshold = jensen_shannon(ref, cur), "jensenshannon", categorical_threshold
    else:
        score = normed_wasserstein(ref.to_numpy(), cur.to_numpy())
        method, threshold = "wasserstein", numeric_threshold
    return FeatureDrift(
        feature=name,
        method=method,
        score=score,
        threshold=threshold,
        drifted=bool(score >= threshold),
        reference_rows=len(ref),
        current_rows=len(cur),
    )


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str],
    categorical: Sequence[str] = (),
    numeric_threshold: float = 0.1,
    categorical_threshold: float = 0.1,
    max_rows: int = 200_000,
    seed: int = 0,
) -> list[FeatureDrift]:
    """Drift of each of ``columns``, in their order; columns without values are left out.

    Args:
        categorical: the columns compared by category frequencies; every other is numeric.
        max_rows: rows per side read; larger frames are sampled at random (seeded).
    """
    ref = sample_rows(reference, max_rows, seed)
    cur = sample_rows(current, max_rows, seed + 1)
    kinds = set(categorical)
    out = []
    for name in columns:
        drift = column_drift(
            name,
            ref[name],
            cur[name],
            name in kinds,
            numeric_threshold,
            categorical_threshold,
        )
        if drift is not None:
            out.append(drift)
    return out
