"""Training windows and users' own tables: no look-ahead, clear errors, faithful encoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from csa.errors import ContractError
from csa.training.tables import (
    FeatureSpace,
    LabelledTable,
    binary_label,
    read_user_table,
    stratified_windows,
    time_windows,
)


def daily_table(days: int = 200, accounts: int = 30, seed: int = 0) -> LabelledTable:
    rng = np.random.default_rng(seed)
    times = pd.date_range("2024-01-01", periods=days, freq="D", tz="UTC")
    frame = pd.DataFrame(
        {
            "account_id": np.repeat([f"a{i}" for i in range(accounts)], days),
            "as_of": np.tile(times, accounts),
            "usage": rng.random(days * accounts),
            "plan": rng.choice(["starter", "growth"], days * accounts),
        }
    )
    frame["label"] = (rng.random(len(frame)) < 0.2).astype(np.int64)
    return LabelledTable(frame, "label", "account_id", "as_of", source="test")


def test_time_windows_keep_each_training_label_matured_before_tuning_starts() -> None:
    windows = time_windows(daily_table(), tune_days=30, test_days=20, purge_days=25)
    train_end = windows.train.frame["as_of"].max()
    tune = windows.tune.frame["as_of"]
    test = windows.test.frame["as_of"]

    assert train_end + pd.Timedelta(days=25) < tune.min()
    assert tune.max() < test.min()
    assert test.nunique() == 20
    assert tune.nunique() == 30
    assert len(windows.train.frame) + len(windows.tune.frame) + len(windows.test.frame) < len(
        daily_table().frame
    )  # the purged days are in no window


def test_windows_too_long_for_the_data_say_which_setting_to_change() -> None:
    with pytest.raises(ContractError, match=r"train window has 0 rows.*test_days"):
        time_windows(daily_table(days=60), tune_days=30, test_days=20, purge_days=25)


def test_stratified_windows_keep_the_positive_rate_and_share_no_row() -> None:
    table = daily_table(days=50)
    windows = stratified_windows(table, None, seed=1)
    rates = [part.y.mean() for part in (windows.train, windows.tune, windows.test)]
    keys = [
        set(zip(p.frame["account_id"], p.frame["as_of"], strict=True))
        for p in (windows.train, windows.tune, windows.test)
    ]

    assert max(rates) - min(rates) < 0.01
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    assert len(windows.test.frame) == pytest.approx(0.2 * len(table.frame), rel=0.01)


@pytest.mark.parametrize(
    ("values", "positive", "expected"),
    [
        (["Yes", "No", "yes"], None, [1, 0, 1]),
        ([1, 0, 1], None, [1, 0, 1]),
        ([True, False, False], None, [1, 0, 0]),
        (["churned", "stayed", "churned"], "churned", [1, 0, 1]),
    ],
)
def test_labels_become_zero_and_one(values: list, positive: str | None, expected: list) -> None:
    assert binary_label(pd.Series(values), positive, "t").tolist() == expected


def test_a_label_with_other_values_asks_for_positive() -> None:
    with pytest.raises(ContractError, match="--positive"):
        binary_label(pd.Series(["churned", "stayed"]), None, "accounts.csv:status")


def test_a_user_table_names_a_missing_column_and_lists_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    pd.DataFrame({"id": ["a", "b"], "usage": [1, 2], "churn": [0, 1]}).to_csv(path, index=False)

    with pytest.raises(ContractError, match=r"no column 'churned' \(given as --label\).*usage"):
        read_user_table(path, "churned", "id")


def test_a_user_table_with_one_class_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "accounts.parquet"
    pd.DataFrame({"id": ["a", "b"], "usage": [1, 2], "churn": [0, 0]}).to_parquet(path)

    with pytest.raises(ContractError, match="single class"):
        read_user_table(path, "churn", "id")


def test_feature_space_encodes_unseen_categories_as_missing_and_keeps_codes() -> None:
    train = pd.DataFrame({"plan": ["growth", "starter", None], "seats": [1, 2, 3]})
    space = FeatureSpace.learn(train, ["plan", "seats"])
    restored = FeatureSpace.from_dict(space.to_dict())
    encoded = restored.encode(pd.DataFrame({"plan": ["starter", "platinum"], "seats": ["4", "x"]}))

    assert space.categories == {"plan": ["growth", "starter"]}
    assert encoded["plan"].cat.codes.tolist() == [1, -1]
    assert encoded["seats"].iloc[0] == 4.0
    assert np.isnan(encoded["seats"].iloc[1])


def test_feature_space_names_the_columns_a_scoring_frame_lacks() -> None:
    space = FeatureSpace(numeric=["seats", "mrr"], categories={})

    with pytest.raises(ContractError, match="mrr"):
        space.encode(pd.DataFrame({"seats": [1]}))
