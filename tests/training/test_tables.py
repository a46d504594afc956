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


def test_scoring_matches_the_booster_on_the_frame_it_was_trained_with() -> None:
    """The scoring path hands XGBoost a float array of category codes; the trees must see
    exactly what a pandas frame of the same categoricals shows them, unseen values included."""
    import xgboost as xgb

    from csa.training.baseline import LinearModel
    from csa.training.calibration import Calibrator, RiskBands
    from csa.training.model import ScoringModel

    rng = np.random.default_rng(3)
    n = 2_000
    frame = pd.DataFrame(
        {
            "seats": rng.integers(1, 200, n).astype(float),
            "usage": rng.normal(0, 1, n),
            "plan": rng.choice(["basic", "pro", "enterprise"], n),
            "region": rng.choice(["eu", "us", None], n),
        }
    )
    frame.loc[rng.random(n) < 0.1, "usage"] = np.nan
    y = ((frame["plan"] == "basic") & (frame["usage"].fillna(0) < 0)).to_numpy(dtype=int)
    space = FeatureSpace.learn(frame, ["seats", "usage", "plan", "region"])
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "seed": 1},
        xgb.DMatrix(space.encode(frame), label=y, enable_categorical=True),
        num_boost_round=20,
    )
    linear = LinearModel.fit(space, frame, y)
    scoring = ScoringModel(
        booster=booster,
        space=space,
        calibrator=Calibrator(),
        bands=RiskBands(medium=0.3, high=0.6),
        model="churn",
        label="churned",
        linear=linear,
        tree_weight=0.7,
    )
    later = frame.sample(300, random_state=1).reset_index(drop=True)
    later.loc[:20, "plan"] = "startup"  # a plan the trees never saw reads as missing
    later.loc[21:40, "region"] = None

    pandas_trees = booster.predict(xgb.DMatrix(space.encode(later), enable_categorical=True))
    expected = 0.7 * pandas_trees + 0.3 * linear.predict(later)
    assert np.allclose(scoring.raw_probability(later), expected, atol=1e-6)
    scores = scoring.score(later, top=2)
    assert np.allclose(scores.probability, expected, atol=1e-6)
    contributions = booster.predict(
        xgb.DMatrix(space.encode(later), enable_categorical=True), pred_contribs=True
    )
    strongest = np.abs(contributions[0, :-1]).argmax()
    assert scores.drivers is not None
    assert scores.drivers[0][0].feature == space.columns[strongest]
