"""``csa features build``: the lake in, one Parquet feature table per group and labels out.

Each table holds a row per account and snapshot (``account_id``, ``as_of``, features); these
files are the batch sources of the Feast feature views. Every file is written next to its final
name and renamed into place, so a reader (or a crashed build) never sees half a table.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from csa.errors import ConfigError
from csa.features.account import contract_state, profile_features
from csa.features.billing import LOOKBACK_DAYS, billing_features
from csa.features.definitions import (
    BATCH_GROUPS,
    BILLING,
    JOIN_KEY,
    PROFILE,
    SENTIMENT,
    SNAPSHOT_TIME,
    SUPPORT,
    USAGE,
    USAGE_LIVE,
    FeatureGroup,
)
from csa.features.labels import snapshot_labels
from csa.features.lake_views import open_lake
from csa.features.snapshots import (
    account_lifetimes,
    data_end,
    first_snapshot,
    observed_start,
    snapshot_grid,
)
from csa.features.support import support_features
from csa.features.text_sentiment import read_text_scores, refresh_text_scores, sentiment_features
from csa.features.usage import usage_features
from csa.features.windows import register_grid
from csa.settings import Settings

logger = logging.getLogger(__name__)

LABELS_TABLE = "labels"
_MANIFEST = "manifest.json"
_ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "string": pa.string()}


@dataclass
class BuildResult:
    """What a build wrote: rows per table, the data's end and the time it took."""

    rows: dict[str, int] = field(default_factory=dict)
    accounts: int = 0
    snapshots: int = 0
    data_end: pd.Timestamp | None = None
    seconds: float = 0.0


def feature_table_path(features_dir: Path, name: str) -> Path:
    """Where the feature table (or the labels table) called ``name`` lives."""
    return features_dir / f"{name}.parquet"


def check_feature_settings(settings: Settings) -> None:
    """Reject settings under which snapshots would fall out of their own TTL."""
    features = settings.features
    if features.ttl_days < features.cadence_days:
        raise ConfigError(
            f"features.ttl_days ({features.ttl_days}) is shorter than features.cadence_days "
            f"({features.cadence_days}): every value would expire before the next snapshot; "
            "raise ttl_days in configs/platform.yaml or CSA_FEATURES__TTL_DAYS."
        )


def build_features(settings: Settings) -> BuildResult:
    """Compute every feature group and the labels from the lake and write them.

    Raises:
        LakeError: the lake lacks accounts or subscriptions (run ``csa ingest``).
        ConfigError: the feature settings are inconsistent.
    """
    check_feature_settings(settings)
    started = time.perf_counter()
    features = settings.features
    if features.score_texts:
        refresh_text_scores(settings)
    con = open_lake(settings.lake_dir)
    try:
        # Snapshot grid
        end = data_end(con)
        first = first_snapshot(observed_start(con), end, features.warmup_days)
        lifetimes = account_lifetimes(con)
        grid = snapshot_grid(lifetimes, end, features.cadence_days, first)
        register_grid(con, grid)
        logger.debug("grid: %d rows for %d accounts up to %s", len(grid), len(lifetimes), end)

        # Feature groups, each aligned with the grid's order
        state = contract_state(con)
        tables: dict[str, pd.DataFrame] = {
            PROFILE.name: profile_features(state, lifetimes),
            BILLING.name: billing_features(con, state, contract_state(con, LOOKBACK_DAYS)),
            SUPPORT.name: support_features(con),
            SENTIMENT.name: sentiment_features(con, read_text_scores(settings)),
        }
        tables[USAGE.name], tables[USAGE_LIVE.name] = usage_features(con, state["seats"])
        labels = snapshot_labels(con, lifetimes, features.horizon_days, end)
    finally:
        con.close()

    # Write
    settings.features_dir.mkdir(parents=True, exist_ok=True)
    result = BuildResult(accounts=int(grid[JOIN_KEY].nunique()), snapshots=len(grid), data_end=end)
    for group in BATCH_GROUPS:
        table = _to_arrow(tables[group.name], group)
        _write_atomically(table, feature_table_path(settings.features_dir, group.name))
        result.rows[group.name] = table.num_rows
    labels_table = pa.Table.from_pandas(labels, preserve_index=False)
    _write_atomically(labels_table, feature_table_path(settings.features_dir, LABELS_TABLE))
    result.rows[LABELS_TABLE] = labels_table.num_rows
    _write_manifest(settings, end, first)

    result.seconds = time.perf_counter() - started
    logger.info(
        "features built: %d snapshots of %d accounts, %d tables in %.1f s",
        result.snapshots,
        result.accounts,
        len(result.rows),
        result.seconds,
    )
    return result


def read_manifest(features_dir: Path) -> dict[str, Any]:
    """The facts the last build recorded (``data_end``, ``first_snapshot``, cadence, horizon)."""
    path = features_dir / _MANIFEST
    if not path.exists():
        from csa.errors import LakeError

        raise LakeError(f"no feature build found in {features_dir}; run `csa features build`.")
    content: dict[str, Any] = json.loads(path.read_text())
    return content


def _to_arrow(frame: pd.DataFrame, group: FeatureGroup) -> pa.Table:
    # Feast's duckdb store reads the files as they are: give every column its declared type
    # and microsecond UTC timestamps (the lake's unit; Spark cannot read nanoseconds).
    fields = [
        pa.field(JOIN_KEY, pa.string()),
        pa.field(SNAPSHOT_TIME, pa.timestamp("us", tz="UTC")),
    ] + [pa.field(spec.name, _ARROW_TYPES[spec.dtype]) for spec in group.features]
    return pa.Table.from_pandas(frame, schema=pa.schema(fields), preserve_index=False)


def _write_atomically(table: pa.Table, path: Path) -> None:
    partial = path.with_suffix(".parquet.partial")
    pq.write_table(table, partial)
    partial.replace(path)


def _write_manifest(settings: Settings, end: pd.Timestamp, first: pd.Timestamp | None) -> None:
    manifest = {
        "data_end": end.isoformat(),
        "first_snapshot": None if first is None else first.isoformat(),
        "cadence_days": settings.features.cadence_days,
        "horizon_days": settings.features.horizon_days,
    }
    (settings.features_dir / _MANIFEST).write_text(json.dumps(manifest, indent=2))
