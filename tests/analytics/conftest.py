"""A small simulated company run once through the real pipeline, with champion models.

The simulator, lake, Feast store, MLflow registry and trainer are the real ones under a
temporary ``CSA_HOME``; windows are shortened (30-day horizon and warm-up, 30-day tuning and
test windows, a few trials) so that a year of history trains both models in seconds.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from csa.features import apply_definitions, build_features, materialize_latest
from csa.ingestion.engine import ingest
from csa.ingestion.simulator import SimulationConfig, simulate
from csa.settings import Settings, load_settings
from csa.training import train_model
from csa.training.promotion import promote

SMALL_COMPANY = {
    "CSA_FEATURES__HORIZON_DAYS": "30",
    "CSA_FEATURES__WARMUP_DAYS": "30",
    "CSA_TRAINING__TEST_DAYS": "30",
    "CSA_TRAINING__TUNE_DAYS": "30",
    "CSA_TRAINING__TRIALS": "3",
    "CSA_TRAINING__MAX_ROUNDS": "60",
    "CSA_TRAINING__EARLY_STOPPING_ROUNDS": "10",
    "CSA_TRAINING__THREADS": "1",  # two threads crawl on a busy 2-core machine
    "CSA_ANALYTICS__SURVIVAL_ROUNDS": "300",
    "CSA_ANALYTICS__HORIZON_MONTHS": "1",
    "CSA_ANALYTICS__SURVIVAL_TEST_MONTHS": "4",
    "CSA_ANALYTICS__BACKTEST_ORIGINS": "2",
    "CSA_ANALYTICS__SIMULATIONS": "500",
}


def small_settings(home: Path) -> Settings:
    """Local settings rooted at ``home`` with the short windows above."""
    saved = {key: os.environ.get(key) for key in SMALL_COMPANY}
    os.environ.update(SMALL_COMPANY)
    try:
        return load_settings(profile="local", home=home)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def company(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A 120-account company over 360 days: simulated, ingested, in Feast, models promoted."""
    settings = small_settings(tmp_path_factory.mktemp("analytics_company"))
    config = SimulationConfig(accounts=120, days=360, start=dt.date(2024, 1, 1), seed=11)
    simulate(config, settings.raw_dir)
    result = ingest(settings)
    assert all(source.status == "ok" for source in result.sources.values())
    build_features(settings)
    apply_definitions(settings)
    materialize_latest(settings)
    for model in ("churn", "expansion"):
        train_model(settings, model)
        promote(settings, model, force=True, reason="test fixture: any champion will do")
    return settings
