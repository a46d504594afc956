"""Online reads: the values served for scoring are the offline values of the latest snapshot."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pandas as pd
import pytest

from csa.errors import ConfigError
from csa.features import OnlineFeatureReader, point_in_time_features
from csa.features.build import feature_table_path
from csa.features.definitions import ALL_GROUPS, BATCH_GROUPS, JOIN_KEY, SNAPSHOT_TIME
from csa.features.store import latest_rows, open_store
from csa.settings import Settings

FEATURES = [spec.name for group in ALL_GROUPS for spec in group.features]


def same_value(expected: Any, actual: Any) -> bool:
    """Equal, with missing (None / NaN / NA) equal to missing and floats to 1e-9."""
    missing_expected = expected is None or (isinstance(expected, float) and math.isnan(expected))
    missing_actual = actual is None or (isinstance(actual, float) and math.isnan(actual))
    if missing_expected or missing_actual:
        return missing_expected and missing_actual
    if pd.isna(expected):
        return actual is None
    if isinstance(expected, float) or isinstance(actual, float):
        return math.isclose(float(expected), float(actual), rel_tol=1e-9, abs_tol=1e-12)
    return bool(expected == actual)


def latest_offline(settings: Settings) -> pd.DataFrame:
    """Feast's point-in-time join at each account's latest snapshot: the offline truth."""
    latest = latest_rows(feature_table_path(settings.features_dir, BATCH_GROUPS[0].name))
    rows = latest.select([JOIN_KEY, SNAPSHOT_TIME]).to_pandas()
    return point_in_time_features(open_store(settings), "churn", rows)


def mismatches(settings: Settings, reader: OnlineFeatureReader) -> list[str]:
    offline = latest_offline(settings)
    online = reader.read("churn", offline[JOIN_KEY].tolist())
    problems = []
    for row in offline.itertuples(index=False):
        served = online[row.account_id]
        for name in FEATURES:
            if not same_value(getattr(row, name), served[name].value):
                problems.append(
                    f"{row.account_id}.{name}: online {served[name].value!r}, "
                    f"offline {getattr(row, name)!r}"
                )
    return problems


def test_online_values_equal_the_offline_values_of_the_latest_snapshot(
    local_store: Settings,
) -> None:
    problems = mismatches(local_store, OnlineFeatureReader(local_store))
    assert not problems, f"{len(problems)} mismatches, e.g.:\n" + "\n".join(problems[:10])


def test_reader_agrees_with_feast_get_online_features(local_store: Settings) -> None:
    store = open_store(local_store)
    accounts = [*sorted(latest_offline(local_store)[JOIN_KEY])[:15], "acc-unknown"]
    sdk = store.get_online_features(
        features=store.get_feature_service("churn"),
        entity_rows=[{JOIN_KEY: account} for account in accounts],
    ).to_dict()
    ours = OnlineFeatureReader(local_store).read("churn", accounts)

    for index, account in enumerate(accounts):
        for name in FEATURES:
            assert same_value(sdk[name][index], ours[account][name].value), (account, name)


def test_event_time_is_the_snapshot_and_staleness_follows_the_ttl(local_store: Settings) -> None:
    reader = OnlineFeatureReader(local_store)
    latest = latest_rows(feature_table_path(local_store.features_dir, "account_usage"))
    account = latest.column(JOIN_KEY)[0].as_py()
    snapshot = latest.column(SNAPSHOT_TIME)[0].as_py().astimezone(dt.UTC)
    ttl = dt.timedelta(days=local_store.features.ttl_days)

    fresh = reader.read("churn", [account], now=snapshot + ttl)[account]["events_30d"]
    stale = reader.read("churn", [account], now=snapshot + ttl + dt.timedelta(seconds=1))

    assert fresh.event_ts == snapshot
    assert fresh.stale is False
    assert stale[account]["events_30d"].stale is True
    assert stale[account]["events_30d"].value == fresh.value  # stale is flagged, not hidden


def test_an_unknown_account_gets_every_feature_missing(local_store: Settings) -> None:
    values = OnlineFeatureReader(local_store).read("churn", ["acc-never-seen"])["acc-never-seen"]

    assert set(values) == set(FEATURES)
    assert all(v.value is None and v.event_ts is None and v.stale for v in values.values())


def test_repeated_accounts_are_answered_once(local_store: Settings) -> None:
    accounts = sorted(latest_offline(local_store)[JOIN_KEY])[:2]
    values = OnlineFeatureReader(local_store).read("churn", [*accounts, accounts[0]])

    assert list(values) == accounts


def test_an_unknown_feature_service_names_the_choices(local_store: Settings) -> None:
    with pytest.raises(ConfigError, match="churn or expansion"):
        OnlineFeatureReader(local_store).read("upsell", ["acc-1"])
