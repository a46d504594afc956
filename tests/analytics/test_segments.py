"""Segments: the stated criterion finds planted groups, names what sets them apart, gives the
same answer for the same seed, and is stored where playbooks read it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from csa.analytics import (
    SEGMENTS_FILE,
    account_behaviour,
    read_segments,
    segment_accounts,
    write_segments,
)
from csa.errors import ConfigError


def _planted(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """90 accounts in three behaviours: API-heavy, login-heavy with low seat use, and average."""
    rng = np.random.default_rng(seed)
    truth = np.repeat([0, 1, 2], 30)
    centres = {
        "share_api_call": [0.6, 0.1, 0.3],
        "share_login": [0.1, 0.5, 0.2],
        "seat_utilization": [0.8, 0.3, 0.7],
    }
    data = {
        name: np.asarray(values)[truth] + rng.normal(0, 0.03, len(truth))
        for name, values in centres.items()
    }
    index = pd.Index([f"ACC-{i:04d}" for i in range(len(truth))], name="account_id")
    return pd.DataFrame(data, index=index), truth


def test_silhouette_recovers_planted_groups_and_names_them():
    features, truth = _planted()
    active = pd.Series(True, index=features.index)
    result = segment_accounts(features, active, seed=3, min_clusters=2, max_clusters=6)

    assert result.chosen == 3
    assert result.silhouette.idxmax() == 3
    labels = result.assignments.set_index("account_id")["segment"].to_numpy()
    assert adjusted_rand_score(truth, labels) == 1.0
    names = result.assignments.drop_duplicates("segment").set_index("segment")["segment_name"]
    api_heavy = labels[0]
    assert "high api call share" in names[api_heavy]
    assert "api call share 60%" in result.descriptions[api_heavy]
    assert result.stability == pytest.approx(1.0)


def test_segments_are_numbered_by_size_whatever_the_seed():
    features, _ = _planted()
    features = features.iloc[5:]  # group 0 now the smallest
    active = pd.Series(True, index=features.index)
    first = segment_accounts(features, active, seed=1)
    other = segment_accounts(features, active, seed=99)
    assert first.assignments["segment"].tolist() == other.assignments["segment"].tolist()
    sizes = first.assignments["segment"].value_counts().sort_index()
    assert sizes.is_monotonic_decreasing


def test_too_few_accounts_is_refused_with_the_setting_to_change():
    features, _ = _planted()
    with pytest.raises(ConfigError, match=r"analytics\.min_clusters"):
        segment_accounts(features.iloc[:4], pd.Series(True, index=features.index[:4]), seed=1)


@pytest.mark.slow
def test_company_segments_are_stable_under_reruns_and_stored(company, tmp_path):
    features, active = account_behaviour(company)
    config = company.analytics
    runs = [
        segment_accounts(features, active, config.seed, config.min_clusters, config.max_clusters)
        for _ in range(2)
    ]
    pd.testing.assert_frame_equal(runs[0].assignments, runs[1].assignments)
    first = runs[0]
    assert config.min_clusters <= first.chosen <= config.max_clusters
    assert first.stability > 0.7  # refits with other seeds mostly agree
    assert len(first.descriptions) == first.chosen
    assert all("Sets it apart" in text for text in first.descriptions.values())
    # Every account gets a segment, current customers and those that left.
    assert set(first.assignments["account_id"]) == set(features.index)
    assert first.assignments["active"].sum() == active.sum()

    path = write_segments(first, tmp_path)
    assert path.name == SEGMENTS_FILE
    stored = read_segments(tmp_path)
    assert stored is not None
    assert list(stored.columns) == ["account_id", "segment", "segment_name", "active"]
    assert stored["segment_name"].str.len().min() > 0
