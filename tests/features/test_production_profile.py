"""The production profile: SQL registry on the real PostgreSQL, online store on the real Redis.

Each test module registers a Feast project of its own name, so runs never see each other's
registry entries or Redis keys, and removes both when done.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import make_settings
from synthetic_lake import write_lake
from test_online import FEATURES, latest_offline, mismatches, same_value

from csa.features import (
    OnlineFeatureReader,
    apply_definitions,
    build_features,
    materialize_latest,
    training_set,
)
from csa.features.definitions import JOIN_KEY
from csa.features.store import open_store
from csa.settings import Settings

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture(scope="module")
def production_store(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, redis_url: str
) -> Iterator[Settings]:
    home = tmp_path_factory.mktemp("production")
    write_lake(home / "data" / "lake", accounts=25, days=150, seed=5)
    settings = make_settings(home, project=f"csa_test_{uuid.uuid4().hex[:10]}")
    settings.profile = "production"
    settings.stores.postgres_url = postgres_url
    settings.stores.redis_url = redis_url
    build_features(settings)
    apply_definitions(settings)
    materialize_latest(settings)
    yield settings

    store = open_store(settings)
    views = store.list_feature_views()
    store._get_provider().teardown_infra(store.project, views, store.list_entities())
    store.registry.delete_project(store.project, commit=True)


def test_the_registry_lives_in_postgresql_and_values_in_redis(
    production_store: Settings, redis_url: str
) -> None:
    import redis

    config = (production_store.home / "feature_repo_state" / "feature_store.yaml").read_text()
    assert "registry_type: sql" in config
    assert "type: redis" in config
    assert "socket_timeout=" in config  # the adapter sets no timeout by itself
    assert not (production_store.home / "feature_repo_state" / "online.db").exists()
    client = redis.Redis.from_url(redis_url)
    project = production_store.features.project.encode()
    assert any(key.endswith(project) for key in client.scan_iter(count=1000))


def test_production_online_values_equal_the_offline_values(production_store: Settings) -> None:
    problems = mismatches(production_store, OnlineFeatureReader(production_store))
    assert not problems, f"{len(problems)} mismatches, e.g.:\n" + "\n".join(problems[:10])


def test_production_reader_agrees_with_feast_get_online_features(
    production_store: Settings,
) -> None:
    store = open_store(production_store)
    accounts = [*sorted(latest_offline(production_store)[JOIN_KEY])[:10], "acc-unknown"]
    sdk = store.get_online_features(
        features=store.get_feature_service("churn"),
        entity_rows=[{JOIN_KEY: account} for account in accounts],
    ).to_dict()
    ours = OnlineFeatureReader(production_store).read("churn", accounts)

    for index, account in enumerate(accounts):
        for name in FEATURES:
            assert same_value(sdk[name][index], ours[account][name].value), (account, name)


def test_training_sets_are_the_same_on_both_profiles(
    production_store: Settings, tmp_path: Path
) -> None:
    local = make_settings(production_store.home)
    local.home = tmp_path
    write_lake(tmp_path / "data" / "lake", accounts=25, days=150, seed=5)
    build_features(local)
    apply_definitions(local)

    expected = training_set(local, "churn")
    actual = training_set(production_store, "churn")

    pd.testing.assert_frame_equal(actual, expected)


def test_an_unreachable_redis_is_reported_as_store_unavailable(
    production_store: Settings,
) -> None:
    from csa.errors import StoreUnavailable

    broken = production_store.model_copy(deep=True)
    broken.stores.redis_url = "redis://127.0.0.1:1/0"
    with pytest.raises(StoreUnavailable, match="CSA_REDIS_URL"):
        OnlineFeatureReader(broken).read("churn", ["acc-1"])
