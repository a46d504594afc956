"""A small simulated company run once through the real pipeline, with champion models.

The simulator, lake, Feast store, MLflow registry and trainer are the real ones under a
temporary ``CSA_HOME``; windows are shortened (30-day horizon and warm-up, 30-day tuning and
test windows, a few trials) so that a year of history trains both models in seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from csa.settings import Settings
from csa.training import train_model
from csa.training.promotion import promote
from tests.company import build_company, settings_with

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
    return settings_with(home, SMALL_COMPANY)


@pytest.fixture(scope="session")
def company(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A 120-account company over 360 days: simulated, ingested, in Feast, models promoted."""
    settings = small_settings(tmp_path_factory.mktemp("analytics_company"))
    build_company(settings, accounts=120, days=360, seed=11)
    for model in ("churn", "expansion"):
        train_model(settings, model)
        promote(settings, model, force=True, reason="test fixture: any champion will do")
    return settings
