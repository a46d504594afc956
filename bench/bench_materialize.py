"""Materialization throughput: ``materialize_latest`` against Feast's ``FeatureStore.materialize``.

Both load every account's latest snapshot of the five batch feature views into a fresh SQLite
online store (local profile), from identical feature tables built once from a synthetic lake:
the tables are copied into a second home so that each side writes its own online database and
registers its own views. Ours selects each table's latest rows in DuckDB and hands Feast's
protos to the online store's own write path; the baseline is what ``feast materialize`` runs,
over a start and end that cover every snapshot: its local engine pulls every snapshot in the
range, keeps the latest per account and converts it. Both write accounts x views rows; the
snapshots Feast pulled are reported as rows read, and the seconds each side spent inside the
SQLite store's ``online_write_batch``, which both share, are reported too. Feast's lazy imports
are warmed up beforehand by a materialization of an empty window, so neither side pays them.
Afterwards a random sample of accounts is read back from both stores through
``OnlineFeatureReader`` and must agree feature by feature, event time included.
Run: ``python bench/bench_materialize.py [--accounts 2000] [--days 180]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from feast.infra.online_stores.sqlite import SqliteOnlineStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "features"))
from common import report
from synthetic_lake import write_lake

from csa.features import OnlineFeatureReader, apply_definitions, build_features
from csa.features.build import feature_table_path
from csa.features.definitions import BATCH_GROUPS, JOIN_KEY, SNAPSHOT_TIME
from csa.features.store import materialize_latest, open_store, state_dir
from csa.settings import Settings, load_settings

GOAL = 10.0
# Feast warns on every apply of the platform's on-demand view; it is there on purpose.
warnings.filterwarnings("ignore", "On demand feature view is an experimental feature")
VIEWS = [group.name for group in BATCH_GROUPS]


def local_settings(home: Path) -> Settings:
    return load_settings(profile="local", home=home)


def snapshot_range(settings: Settings) -> tuple[datetime, datetime, dict[str, int]]:
    """First and last snapshot time over every view, and each view's number of rows."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        first, last, rows = None, None, {}
        for view in VIEWS:
            path = str(feature_table_path(settings.features_dir, view))
            low, high, count = con.execute(
                f"SELECT min({SNAPSHOT_TIME}), max({SNAPSHOT_TIME}), count(*) "
                "FROM read_parquet($path)",
                {"path": path},
            ).fetchone() or (None, None, 0)
            first = low if first is None else min(first, low)
            last = high if last is None else max(last, high)
            rows[view] = count
    finally:
        con.close()
    assert first is not None and last is not None, "the feature tables are empty"
    return first, last, rows


class WriteTimer:
    """Seconds spent in the SQLite store's ``online_write_batch``, the path both sides share.

    It wraps the real method for the length of the benchmark; nothing else changes.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self._original = SqliteOnlineStore.online_write_batch

    def __enter__(self) -> WriteTimer:
        original = self._original

        def timed(store: SqliteOnlineStore, *args: Any, **kwargs: Any) -> None:
            started = time.perf_counter()
            try:
                original(store, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        SqliteOnlineStore.online_write_batch = timed  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        SqliteOnlineStore.online_write_batch = self._original  # type: ignore[method-assign]


def run_ours(settings: Settings, end: datetime) -> tuple[float, int, float]:
    with WriteTimer() as writes:
        started = time.perf_counter()
        result = materialize_latest(settings, end=end)
        seconds = time.perf_counter() - started
    return seconds, result.total_rows, writes.seconds


def feast_materialize(settings: Settings, start: datetime, end: datetime) -> None:
    store = open_store(settings)
    # Feast prints a banner and a progress bar per view; they are not part of the figures.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        store.materialize(start_date=start, end_date=end, feature_views=VIEWS)


def run_feast(settings: Settings, start: datetime, end: datetime) -> tuple[float, float]:
    with WriteTimer() as writes:
        started = time.perf_counter()
        feast_materialize(settings, start, end)
        seconds = time.perf_counter() - started
    return seconds, writes.seconds


def online_keys_per_view(settings: Settings) -> dict[str, int]:
    """Distinct entity keys each view's online table holds."""
    project = settings.features.project
    with contextlib.closing(sqlite3.connect(state_dir(settings) / "online.db")) as con:
        return {
            view: con.execute(
                f'SELECT count(DISTINCT entity_key) FROM "{project}_{view}"'
            ).fetchone()[0]
            for view in VIEWS
        }


def latest_account_ids(settings: Settings) -> list[str]:
    path = str(feature_table_path(settings.features_dir, VIEWS[0]))
    with contextlib.closing(duckdb.connect()) as con:
        rows = con.execute(
            f"SELECT DISTINCT {JOIN_KEY} FROM read_parquet($path)", {"path": path}
        ).fetchall()
    return [row[0] for row in rows]


def same_value(left: Any, right: Any) -> bool:
    """Equal, with every form of missing (None, NaN) equal to each other."""
    left_missing = left is None or (isinstance(left, float) and math.isnan(left))
    right_missing = right is None or (isinstance(right, float) and math.isnan(right))
    if left_missing or right_missing:
        return left_missing and right_missing
    if isinstance(left, float) or isinstance(right, float):
        return math.isclose(float(left), float(right), rel_tol=1e-12, abs_tol=1e-12)
    return bool(left == right)


def compare_sample(ours: Settings, feast: Settings, accounts: list[str]) -> list[str]:
    """Every feature of the sample as both stores serve it; the differences found."""
    now = datetime.now().astimezone()
    ours_values = OnlineFeatureReader(ours).read("churn", accounts, now=now)
    feast_values = OnlineFeatureReader(feast).read("churn", accounts, now=now)
    problems = []
    for account in accounts:
        mine, theirs = ours_values[account], feast_values[account]
        if set(mine) != set(theirs):
            problems.append(f"{account}: different feature sets")
            continue
        for name, value in mine.items():
            other = theirs[name]
            if value.event_ts is None or value.event_ts != other.event_ts:
                problems.append(f"{account}.{name}: event time {value.event_ts} / {other.event_ts}")
            elif not same_value(value.value, other.value):
                problems.append(f"{account}.{name}: ours {value.value!r}, feast {other.value!r}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--sample", type=int, default=300, help="accounts compared afterwards")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        ours_settings = local_settings(Path(folder) / "ours")
        feast_settings = local_settings(Path(folder) / "feast")

        print(f"writing a synthetic lake of {args.accounts:,} accounts over {args.days} days ...")
        started = time.perf_counter()
        write_lake(ours_settings.lake_dir, accounts=args.accounts, days=args.days, seed=args.seed)
        built = build_features(ours_settings)
        shutil.copytree(ours_settings.features_dir, feast_settings.features_dir)
        apply_definitions(ours_settings)
        apply_definitions(feast_settings)
        seconds = time.perf_counter() - started
        print(f"  lake and {built.snapshots:,} snapshots per view built in {seconds:.1f} s")

        first, last, rows_in_range = snapshot_range(ours_settings)
        # Feast's window is [start, end]; a second either side keeps every snapshot inside.
        start, end = first - timedelta(seconds=1), last + timedelta(seconds=1)

        # A window before the first snapshot: no rows, but every module Feast loads lazily.
        feast_materialize(feast_settings, start - timedelta(days=2), start - timedelta(days=1))
        assert sum(online_keys_per_view(feast_settings).values()) == 0

        print("materializing with csa.features.store.materialize_latest ...")
        ours_seconds, ours_rows, ours_write_seconds = run_ours(ours_settings, end)
        print("materializing with feast FeatureStore.materialize ...")
        feast_seconds, feast_write_seconds = run_feast(feast_settings, start, end)

        # Check: every account in every view on both sides, and equal values for a sample.
        accounts = sorted(latest_account_ids(ours_settings))
        expected = len(accounts) * len(VIEWS)
        ours_keys = online_keys_per_view(ours_settings)
        feast_keys = online_keys_per_view(feast_settings)
        assert ours_rows == expected, f"ours wrote {ours_rows} rows, expected {expected}"
        assert ours_keys == feast_keys, f"online keys differ: ours {ours_keys}, feast {feast_keys}"
        feast_rows = sum(feast_keys.values())
        sample = random.Random(args.seed).sample(accounts, min(args.sample, len(accounts)))
        problems = compare_sample(ours_settings, feast_settings, sample)
        assert not problems, f"{len(problems)} differences, e.g.:\n" + "\n".join(problems[:10])
        print(f"  both stores hold {feast_rows:,} rows; {len(sample)} accounts read back equal")

    ratio = feast_seconds / ours_seconds
    report(
        "materialize",
        {
            "name": "csa.features.store.materialize_latest",
            "seconds": round(ours_seconds, 2),
            "rows_written": ours_rows,
            "rows_per_second": round(ours_rows / ours_seconds),
            "seconds_in_online_write_batch": round(ours_write_seconds, 2),
        },
        {
            "name": "feast FeatureStore.materialize (DuckDB offline store, SQLite online store)",
            "seconds": round(feast_seconds, 2),
            "rows_written": feast_rows,
            "rows_per_second": round(feast_rows / feast_seconds),
            "rows_read": sum(rows_in_range.values()),
            "seconds_in_online_write_batch": round(feast_write_seconds, 2),
        },
        ratio,
        f"ours rows/s / Feast rows/s; goal at least {GOAL:g}",
        {
            "accounts": len(accounts),
            "days": args.days,
            "views": len(VIEWS),
            "snapshots": built.snapshots,
            "accounts_compared": len(sample),
            "goal": GOAL,
            "goal_met": ratio >= GOAL,
            "ratio_ceiling_through_shared_write_path": round(feast_seconds / ours_write_seconds, 2),
        },
    )
    print(f"  goal:     at least {GOAL:g}x, {'met' if ratio >= GOAL else 'MISSED'}")
    # However fast the rest, neither side can beat the write path they share.
    ceiling = feast_seconds / ours_write_seconds
    print(
        f"  shared:   {ours_write_seconds:.2f} s of ours and {feast_write_seconds:.2f} s of "
        f"Feast's are in the SQLite store's online_write_batch (one upsert per feature "
        f"value); through it the ratio cannot exceed {ceiling:.1f}"
    )


if __name__ == "__main__":
    main()
