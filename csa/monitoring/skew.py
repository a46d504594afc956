"""Training/serving skew: what the service scored against the offline features of the same row.

Each logged served score (see ``served_log``) names an account and the snapshot time of the
online values it read. The offline row for that account and time comes from the feature
store's point-in-time join, the path training reads, and the same model version scores it
again. A feature whose values differ between the two, or a probability that differs, is skew:
the model is being fed something other than what it learned from.

Expect skew on the live counters (``events_1d``, ``active_users_1d`` and the ratios built on
them): the event intake pushes today's counts to the online store between two builds.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from csa.features.definitions import JOIN_KEY, SNAPSHOT_TIME
from csa.monitoring.served_log import read_served
from csa.settings import Settings

logger = logging.getLogger(__name__)

# Values closer than this (relative to their size) are equal: float32 round trips in stores.
_TOLERANCE = 1e-5


def skew_report(settings: Settings, model: str, max_rows: int = 5_000) -> dict[str, Any] | None:
    """Per feature, the share of served rows whose value differs offline; None without a log.

    Args:
        max_rows: the newest distinct served snapshots compared (the rest are left out).
    """
    from csa.features import point_in_time_features
    from csa.features.store import open_store
    from csa.training import registry

    served = read_served(settings, model)
    if served.empty:
        return None
    served = (
        served.sort_values("served_at")
        .drop_duplicates([JOIN_KEY, SNAPSHOT_TIME, "version"], keep="last")
        .tail(max_rows)
        .reset_index(drop=True)
    )
    offline = point_in_time_features(open_store(settings), model, served[[JOIN_KEY, SNAPSHOT_TIME]])
    merged = served.merge(
        offline, on=[JOIN_KEY, SNAPSHOT_TIME], how="left", suffixes=("", "__offline")
    )
    features = [c for c in served.columns if f"{c}__offline" in merged.columns]

    # Features
    per_feature = {}
    for name in features:
        mismatch = _differs(merged[name], merged[f"{name}__offline"])
        per_feature[name] = round(float(mismatch.mean()), 4)
    skewed = {name: share for name, share in per_feature.items() if share > 0}

    # Probabilities: the same version on the offline row
    gaps = []
    for version, rows in merged.groupby("version"):
        scoring = registry.load_version(settings, registry.registered_name(model), str(version))
        offline_rows = rows.rename(columns={f"{c}__offline": c for c in features})
        offline_rows = offline_rows.loc[:, ~offline_rows.columns.duplicated(keep="last")]
        gaps.append(np.abs(scoring.predict(offline_rows) - rows["probability"].to_numpy()))
    gap = np.concatenate(gaps) if gaps else np.array([])
    return {
        "rows": len(merged),
        "from": merged[SNAPSHOT_TIME].min().isoformat(),
        "to": merged[SNAPSHOT_TIME].max().isoformat(),
        "skewed_features": dict(sorted(skewed.items(), key=lambda item: -item[1])),
        "features_compared": len(features),
        "probability_gap_mean": round(float(gap.mean()), 6) if gap.size else None,
        "probability_gap_max": round(float(gap.max()), 6) if gap.size else None,
    }


def _differs(served: pd.Series, offline: pd.Series) -> pd.Series:
    served_missing, offline_missing = served.isna(), offline.isna()
    numeric = pd.api.types.is_numeric_dtype(served) and pd.api.types.is_numeric_dtype(offline)
    if numeric:
        a = served.astype("float64").to_numpy()
        b = offline.astype("float64").to_numpy()
        with np.errstate(invalid="ignore"):
            unequal = np.abs(a - b) > _TOLERANCE * (1.0 + np.abs(b))
        values_differ = pd.Series(unequal, index=served.index)
    else:
        values_differ = served.astype("string") != offline.astype("string")
    both_present = ~served_missing & ~offline_missing
    return (served_missing != offline_missing) | (both_present & values_differ.fillna(False))
