"""Account snapshots on chosen dates, read straight from the feature tables.

The analyses replay the past (a survival model judged on a later window, a forecast backtested
from an earlier date), so they need every account's features as they stood on a given day: the
daily snapshots that ``csa features build`` wrote hold exactly that, one row per account and day
it was a customer.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from csa.errors import LakeError
from csa.settings import Settings

# The names the whole platform shares (ARCHITECTURE.md); spelled here rather than imported from
# csa.features, whose package import loads Feast, so that analyses of a transaction table start
# in a second.
JOIN_KEY = "account_id"
SNAPSHOT_TIME = "as_of"


def data_end(settings: Settings) -> pd.Timestamp:
    """The newest snapshot day of the feature tables.

    Raises:
        LakeError: the feature tables were never built.
    """
    from csa.features.build import read_manifest

    try:
        manifest = read_manifest(settings.features_dir)
    except Exception as exc:
        raise LakeError(
            f"no feature build under {settings.features_dir}; run `csa features build` first."
        ) from exc
    return pd.Timestamp(manifest["data_end"])


def snapshot_days(settings: Settings) -> pd.DatetimeIndex:
    """Every snapshot day the feature tables hold, oldest first."""
    from csa.features.build import feature_table_path
    from csa.features.definitions import BATCH_GROUPS

    path = feature_table_path(settings.features_dir, BATCH_GROUPS[0].name)
    if not path.exists():
        raise LakeError(
            f"no feature tables under {settings.features_dir}; run `csa features build` first."
        )
    days = pq.read_table(path, columns=[SNAPSHOT_TIME]).column(SNAPSHOT_TIME).unique()
    return pd.DatetimeIndex(sorted(pd.to_datetime(days.to_pandas(), utc=True)))


def snapshots_on(settings: Settings, days: Sequence[pd.Timestamp]) -> pd.DataFrame:
    """All batch features of every account that was a customer on each of ``days``.

    Also computes the request-time momentum ratios exactly as the online path does, so a frame
    can be scored by a champion model.
    """
    from csa.features.build import feature_table_path
    from csa.features.definitions import BATCH_GROUPS
    from csa.features.repo import usage_momentum

    wanted = pd.DatetimeIndex(pd.to_datetime(list(days), utc=True))
    frame: pd.DataFrame | None = None
    for group in BATCH_GROUPS:
        path = feature_table_path(settings.features_dir, group.name)
        table = pq.read_table(path)
        times = table.column(SNAPSHOT_TIME).cast(pq.read_schema(path).field(SNAPSHOT_TIME).type)
        keep = pc.is_in(times, value_set=_as_arrow(wanted, times.type))
        part = table.filter(keep).to_pandas()
        part[SNAPSHOT_TIME] = pd.to_datetime(part[SNAPSHOT_TIME], utc=True)
        frame = part if frame is None else frame.merge(part, on=[JOIN_KEY, SNAPSHOT_TIME])
    assert frame is not None
    inputs = {name: frame[name].astype("float64").tolist() for name in _MOMENTUM_INPUTS}
    momentum = usage_momentum(inputs)
    for name, values in momentum.items():
        frame[name] = pd.to_numeric(pd.Series(values, index=frame.index), errors="coerce")
    return frame.sort_values([SNAPSHOT_TIME, JOIN_KEY], ignore_index=True)


_MOMENTUM_INPUTS = ("events_1d", "events_30d", "active_users_1d", "seats")


def _as_arrow(days: pd.DatetimeIndex, arrow_type: object) -> object:
    import pyarrow as pa

    return pa.array(days.to_pydatetime(), type=arrow_type)
