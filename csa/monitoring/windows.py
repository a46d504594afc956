"""The snapshots a monitoring pass judges, read as the model reads them, and cut into windows.

Rows come from the feature store's point-in-time join (the path training used), one per
account snapshot in the period, with the label where it has matured: a snapshot's label counts
only once its whole horizon lies inside the data, as in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from csa.errors import LakeError
from csa.features.build import LABELS_TABLE, feature_table_path, read_manifest
from csa.features.definitions import JOIN_KEY, SNAPSHOT_TIME, label_name
from csa.settings import Settings

MATURED = "label_matured"


@dataclass
class Window:
    """Snapshots with ``start < as_of <= end``."""

    start: pd.Timestamp
    end: pd.Timestamp
    frame: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def data_end(settings: Settings) -> pd.Timestamp:
    """The newest day the feature store's build saw."""
    return pd.Timestamp(read_manifest(settings.features_dir)["data_end"])


def newest_snapshot(settings: Settings) -> pd.Timestamp:
    """The newest snapshot time in the feature store.

    Raises:
        LakeError: the features were not built.
    """
    path = feature_table_path(settings.features_dir, LABELS_TABLE)
    if not path.exists():
        raise LakeError(f"no feature tables at {settings.features_dir}; run `csa features build`.")
    times = pd.read_parquet(path, columns=[SNAPSHOT_TIME])[SNAPSHOT_TIME]
    return pd.Timestamp(times.max())


def snapshot_rows(
    settings: Settings,
    model: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    store: Any = None,
) -> pd.DataFrame:
    """Every snapshot with ``start < as_of <= end``: the model's features, label, ``MATURED``.

    A label counts as matured when its horizon ended by ``end`` (and by the data's end), so a
    replay of an earlier date never sees an outcome that was unknown then.

    Raises:
        LakeError: the features were not built.
    """
    from csa.features import point_in_time_features
    from csa.features.store import open_store

    horizon = settings.features.horizon_days
    label = label_name(model, horizon)
    path = feature_table_path(settings.features_dir, LABELS_TABLE)
    if not path.exists():
        raise LakeError(f"no labels at {path}; run `csa features build` first.")
    labels = pd.read_parquet(path, columns=[JOIN_KEY, SNAPSHOT_TIME, label])
    times = pd.to_datetime(labels[SNAPSHOT_TIME], utc=True)
    rows = labels.loc[(times > _utc(start)) & (times <= _utc(end))].reset_index(drop=True)
    if rows.empty:
        return rows.assign(**{MATURED: pd.Series(dtype=bool)})
    frame = point_in_time_features(store or open_store(settings), model, rows)
    matured = pd.to_datetime(frame[SNAPSHOT_TIME], utc=True) + pd.Timedelta(days=horizon)
    known_at = min(_utc(end), _utc(data_end(settings)))
    frame[MATURED] = frame[label].notna() & (matured <= known_at)
    return frame


def cut_windows(frame: pd.DataFrame, end: pd.Timestamp, days: int, count: int) -> list[Window]:
    """``count`` consecutive windows of ``days`` days ending at ``end``, newest first."""
    times = pd.to_datetime(frame[SNAPSHOT_TIME], utc=True) if len(frame) else None
    out = []
    for k in range(count):
        w_end = _utc(end) - pd.Timedelta(days=days * k)
        w_start = w_end - pd.Timedelta(days=days)
        if times is None:
            part = frame
        else:
            part = frame.loc[(times > w_start) & (times <= w_end)].reset_index(drop=True)
        out.append(Window(start=w_start, end=w_end, frame=part))
    return out


def _utc(value: pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
