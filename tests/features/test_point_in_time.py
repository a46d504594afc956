"""The training set agrees with a brute-force oracle computed straight from the lake."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from oracle import Oracle, same

from csa.features import point_in_time_features, training_set
from csa.features.definitions import ALL_GROUPS, label_name
from csa.features.store import open_store
from csa.settings import Settings

FEATURES = [spec.name for group in ALL_GROUPS for spec in group.features]


@pytest.fixture(scope="module")
def oracle(local_store: Settings, lake_tables: dict[str, pd.DataFrame]) -> Oracle:
    features = local_store.features
    return Oracle(lake_tables, features.cadence_days, features.ttl_days, features.warmup_days)


def _random_instants(oracle: Oracle, accounts: list[str], n: int, seed: int) -> pd.DataFrame:
    """(account, instant) pairs that hit every edge: snapshot midnights, a microsecond before,
    random times, before a start, after a churn, past the TTL, an unknown account, repeats."""
    rng = np.random.default_rng(seed)
    first = oracle.last_snapshot - pd.Timedelta(days=230)
    days = rng.integers(0, 245, n)
    base = first + pd.to_timedelta(days, unit="D")
    kind = rng.integers(0, 4, n)
    offsets = np.where(
        kind == 0,
        0,  # exactly on a snapshot: ties with the feature rows' timestamps
        np.where(kind == 1, -1, rng.integers(1, 86_400_000_000, n)),  # 1 µs before, or random
    )
    instants = base + pd.to_timedelta(offsets, unit="us")
    frame = pd.DataFrame(
        {"account_id": rng.choice([*accounts, "acc-unknown"], n), "as_of": instants}
    )
    # Entity rows sharing account and instant must each get their features.
    return pd.concat([frame, frame.sample(n // 20, random_state=seed)], ignore_index=True)


def _mismatches(oracle: Oracle, frame: pd.DataFrame) -> list[str]:
    problems = []
    for row in frame.itertuples(index=False):
        expected = oracle.features(row.account_id, pd.Timestamp(row.as_of))
        for name in FEATURES:
            want = None if expected is None else expected[name]
            got = getattr(row, name)
            if not same(want, got):
                problems.append(f"{row.account_id} @ {row.as_of}: {name} = {got!r}, want {want!r}")
    return problems


@pytest.mark.slow
@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_point_in_time_join_matches_brute_force_oracle(
    local_store: Settings, oracle: Oracle, zone: str
) -> None:
    accounts = sorted(oracle.accounts.index)
    pairs = _random_instants(oracle, accounts, 1200, seed=len(zone))
    # The same instants written in another zone (New York has DST, Kolkata a half-hour offset).
    pairs["as_of"] = pairs["as_of"].dt.tz_convert(zone)
    result = point_in_time_features(open_store(local_store), "churn", pairs)

    assert len(result) == len(pairs)
    problems = _mismatches(oracle, result)
    assert not problems, f"{len(problems)} mismatches, e.g.:\n" + "\n".join(problems[:10])
    served = sum(
        oracle.features(a, pd.Timestamp(t)) is not None
        for a, t in zip(result["account_id"], result["as_of"], strict=True)
    )
    assert served > len(result) * 0.5  # the pairs mostly land where there are values


@pytest.mark.slow
def test_training_set_rows_and_labels_match_oracle(local_store: Settings, oracle: Oracle) -> None:
    frame = training_set(local_store, "churn")
    horizon = local_store.features.horizon_days
    label = label_name("churn", horizon)

    assert frame[label].isna().sum() == 0
    sample = frame.sample(400, random_state=0)
    assert not _mismatches(oracle, sample)
    for row in sample.itertuples(index=False):
        churned, _ = oracle.labels(row.account_id, pd.Timestamp(row.as_of), horizon)
        assert churned == getattr(row, label)


def test_expansion_labels_are_censored_only_near_the_end(
    local_store: Settings, oracle: Oracle
) -> None:
    labels = pd.read_parquet(local_store.features_dir / "labels.parquet")
    horizon = local_store.features.horizon_days
    label = label_name("expansion", horizon)
    censored = labels[labels[label].isna()]
    assert len(censored) > 0
    assert (censored["as_of"] + pd.Timedelta(days=horizon) > oracle.data_end).all()
    for row in labels.sample(300, random_state=1).itertuples(index=False):
        _, expanded = oracle.labels(row.account_id, row.as_of, horizon)
        value = getattr(row, label)
        assert (expanded is None and pd.isna(value)) or expanded == value


def test_no_snapshot_after_an_account_churned(local_store: Settings, oracle: Oracle) -> None:
    usage = pd.read_parquet(local_store.features_dir / "account_usage.parquet")
    last = usage.groupby("account_id")["as_of"].max()
    for account, latest in last.items():
        _, churn = oracle.lifetime(str(account))
        assert churn is None or latest < churn
