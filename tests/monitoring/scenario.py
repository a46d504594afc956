"""Simulated companies for the monitoring tests, and a champion's reference built cheaply.

``scenario_company`` runs the real simulator, ingestion, feature build and Feast registry for a
scenario. ``tiny_reference`` stands in for a full training when a test only judges windows
(the false-alarm count over many seeds): a small real XGBoost model fitted on the company's
training window, whose predictions and importance fill a ``Reference`` exactly as
``write_reference`` fills it at training time.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb

from csa.features import apply_definitions, build_features
from csa.features.definitions import SNAPSHOT_TIME, label_name
from csa.ingestion.engine import ingest
from csa.ingestion.simulator import SimulationConfig, simulate
from csa.monitoring.reference import PREDICTION, Reference
from csa.monitoring.windows import MATURED, snapshot_rows
from csa.settings import Settings
from csa.training.evaluation import binary_metrics
from csa.training.tables import FeatureSpace
from tests.company import short_settings

START = dt.date(2024, 1, 1)


def scenario_company(
    home: Path,
    accounts: int,
    days: int,
    seed: int,
    scenario: str = "baseline",
    change_day: int | None = None,
) -> Settings:
    """A company of ``scenario`` simulated, ingested, built and registered in Feast."""
    settings = short_settings(home)
    change = START + dt.timedelta(days=change_day) if change_day is not None else None
    config = SimulationConfig(
        accounts=accounts, days=days, start=START, seed=seed, scenario=scenario, change_date=change
    )
    simulate(config, settings.raw_dir)
    result = ingest(settings)
    assert all(source.status == "ok" for source in result.sources.values())
    build_features(settings)
    apply_definitions(settings)
    return settings


def day(index: int) -> pd.Timestamp:
    return pd.Timestamp(START + dt.timedelta(days=index), tz="UTC")


def all_snapshots(settings: Settings, model: str) -> pd.DataFrame:
    """Every snapshot of the company with the model's features (one point-in-time join)."""
    return snapshot_rows(settings, model, day(-1), day(100_000))


def tiny_reference(
    settings: Settings,
    model: str,
    rows: pd.DataFrame,
    reference_start: int,
    days: int = 30,
    test_days: int = 60,
) -> tuple[Reference, xgb.Booster, FeatureSpace]:
    """The reference a small model would record, its tuning window ``days`` from a day on.

    The trees learn from the matured snapshots before the window, the test metrics come from
    the ``test_days`` after it (60, the training default), and the reference is the window
    itself, as in ``write_reference``; it knows the data up to the test window's end.
    """
    horizon = settings.features.horizon_days
    label = label_name(model, horizon)
    times = pd.to_datetime(rows[SNAPSHOT_TIME], utc=True)
    tune_start, test_start = day(reference_start), day(reference_start + days)
    matured = rows[label].notna() & (times + pd.Timedelta(days=horizon) <= test_start)
    train = rows.loc[matured & (times <= tune_start)]
    tune = rows.loc[(times > tune_start) & (times <= test_start)].reset_index(drop=True)
    test_end = day(reference_start + days + test_days)
    test = rows.loc[(times > test_start) & (times <= test_end)]
    test = test.loc[test[label].notna()]
    features = [c for c in rows.columns if c not in {"account_id", SNAPSHOT_TIME, MATURED}]
    features = [c for c in features if not c.endswith(f"_within_{horizon}d")]
    space = FeatureSpace.learn(train, features)
    # A category column with no value yet (no text scored) gives XGBoost nothing to encode.
    space.categories = {name: known for name, known in space.categories.items() if known}
    matrix = xgb.DMatrix(
        space.encode(train), label=train[label].astype(int), enable_categorical=True
    )
    params = {"max_depth": 3, "eta": 0.2, "objective": "binary:logistic", "nthread": 1, "seed": 1}
    booster = xgb.train(params, matrix, num_boost_round=40)
    gains = booster.get_score(importance_type="total_gain")
    total = sum(gains.values()) or 1.0
    frame = tune.copy()
    frame[PREDICTION] = predict(booster, space, tune)
    metrics = binary_metrics(test[label].to_numpy(dtype=int), predict(booster, space, test))
    reference = Reference(
        model=model,
        version="tiny",
        frame=frame,
        numeric=space.numeric,
        categorical=list(space.categories),
        importance={name: gains.get(name, 0.0) / total for name in space.columns},
        metrics={"roc_auc": metrics["roc_auc"], "ece": metrics["ece"]},
        label=label,
        known_until=test_end,
    )
    return reference, booster, space


def predict(booster: xgb.Booster, space: FeatureSpace, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(
        booster.predict(xgb.DMatrix(space.encode(frame), enable_categorical=True)), dtype=float
    )
