"""``csa dataset``: point-in-time training sets through Feast's ``get_historical_features``.

The labelled snapshots are the entity rows; Feast joins each to the latest feature values at
or before its ``as_of`` (never after), within the views' TTL, and computes the on-demand
features. Censored snapshots (whose horizon passes the end of the data) are left out.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from feast import FeatureStore

from csa.errors import ConfigError, LakeError
from csa.features.build import LABELS_TABLE, feature_table_path, read_manifest
from csa.features.definitions import JOIN_KEY, MODELS, SNAPSHOT_TIME, label_name
from csa.features.store import open_store
from csa.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class DatasetResult:
    """A written training set: rows, positives and the time it took."""

    path: Path
    rows: int
    positives: int
    seconds: float


def point_in_time_features(
    store: FeatureStore, service: str, entity_rows: pd.DataFrame
) -> pd.DataFrame:
    """A feature service's values for arbitrary (``account_id``, ``as_of``) rows.

    Extra columns of ``entity_rows`` (such as a label) are carried through. The result is
    sorted by account and time, since Feast does not keep the input order.
    """
    rows = entity_rows.copy()
    rows[SNAPSHOT_TIME] = pd.to_datetime(rows[SNAPSHOT_TIME], utc=True)
    job = store.get_historical_features(entity_df=rows, features=store.get_feature_service(service))
    frame = job.to_df()
    frame[SNAPSHOT_TIME] = pd.to_datetime(frame[SNAPSHOT_TIME], utc=True)
    return frame.sort_values([JOIN_KEY, SNAPSHOT_TIME], kind="stable", ignore_index=True)


def training_set(settings: Settings, model: str, store: FeatureStore | None = None) -> pd.DataFrame:
    """Features of ``model``'s feature service for every labelled snapshot, with the label.

    Raises:
        ConfigError: unknown model, or labels built with another horizon.
        LakeError: the features were not built.
    """
    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}; use one of: {', '.join(MODELS)}.")
    horizon = settings.features.horizon_days
    built_horizon = int(read_manifest(settings.features_dir)["horizon_days"])
    if built_horizon != horizon:
        raise ConfigError(
            f"labels were built with a {built_horizon}-day horizon, settings ask for {horizon}; "
            "run `csa features build` again."
        )
    label = label_name(model, horizon)
    path = feature_table_path(settings.features_dir, LABELS_TABLE)
    if not path.exists():
        raise LakeError(f"no labels at {path}; run `csa features build` first.")
    labels = pd.read_parquet(path, columns=[JOIN_KEY, SNAPSHOT_TIME, label])
    labelled = labels[labels[label].notna()].reset_index(drop=True)
    labelled[label] = labelled[label].astype("int64")
    frame = point_in_time_features(store or open_store(settings), model, labelled)
    # Label last: the column a reader looks for at the edge of the table.
    return frame[[c for c in frame.columns if c != label] + [label]]


def write_dataset(settings: Settings, model: str, out: Path) -> DatasetResult:
    """Build ``model``'s training set and write it as Parquet or CSV (by ``out``'s suffix)."""
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ConfigError(f"cannot write {out}: use a .parquet or .csv file name.")
    started = time.perf_counter()
    frame = training_set(settings, model)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_csv(out, index=False)
    label = label_name(model, settings.features.horizon_days)
    result = DatasetResult(
        path=out,
        rows=len(frame),
        positives=int(frame[label].sum()),
        seconds=time.perf_counter() - started,
    )
    logger.info(
        "%s training set: %d rows (%d positive) in %.1f s",
        model,
        result.rows,
        result.positives,
        result.seconds,
    )
    return result
