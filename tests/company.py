"""A small simulated company, run through the real pipeline once for the tests that need it.

Registered as a plugin by ``tests/conftest.py``, so training, serving and CLI tests share the
one session-scoped company.

The windows are shortened (30-day horizon and warm-up, 30-day tuning and test windows) so that
300 simulated days hold a training window of about five months; everything else is the real
simulator, lake, Feast store and MLflow registry under a temporary ``CSA_HOME``.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from csa.features import apply_definitions, build_features, materialize_latest
from csa.ingestion.engine import ingest
from csa.ingestion.simulator import SimulationConfig, simulate
from csa.settings import Settings, load_settings
from csa.training import TrainingResult, train_model
from csa.training.promotion import promote

# Settings the tests train under, also as CSA_ variables for commands run through the CLI.
SHORT_WINDOWS = {
    "CSA_FEATURES__HORIZON_DAYS": "30",
    "CSA_FEATURES__WARMUP_DAYS": "30",
    "CSA_TRAINING__TEST_DAYS": "30",
    "CSA_TRAINING__TUNE_DAYS": "30",
    "CSA_TRAINING__TRIALS": "4",
    "CSA_TRAINING__MAX_ROUNDS": "80",
    "CSA_TRAINING__EARLY_STOPPING_ROUNDS": "15",
}


def settings_with(home: Path, overrides: dict[str, str]) -> Settings:
    """Local settings rooted at ``home`` with ``CSA_`` overrides, the environment left as it was."""
    saved = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    try:
        return load_settings(profile="local", home=home)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def short_settings(home: Path) -> Settings:
    """Local settings rooted at ``home`` with the short windows above."""
    return settings_with(home, SHORT_WINDOWS)


def build_company(settings: Settings, accounts: int, days: int, seed: int) -> None:
    """Simulate a company into ``settings``' home and run it through ingest and Feast."""
    config = SimulationConfig(accounts=accounts, days=days, start=dt.date(2024, 1, 1), seed=seed)
    simulate(config, settings.raw_dir)
    result = ingest(settings)
    assert all(source.status == "ok" for source in result.sources.values())
    build_features(settings)
    apply_definitions(settings)
    materialize_latest(settings)


@pytest.fixture(scope="session")
def company_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home holding an 80-account, 300-day company: simulated, ingested, in Feast."""
    home = tmp_path_factory.mktemp("company")
    build_company(short_settings(home), accounts=80, days=300, seed=5)
    return home


def copy_home(source: Path, target: Path, lake: bool = False) -> Settings:
    """A fresh home with ``source``'s feature tables, applied and materialized anew.

    Only the feature tables are copied: the Feast state holds absolute paths, and each home
    needs a registry and an MLflow store of its own. Apply and materialize take well under a
    second on this size.
    """
    shutil.copytree(source / "data" / "features", target / "data" / "features")
    if lake:  # the customer view reads the CRM, ticket and survey tables
        shutil.copytree(source / "data" / "lake", target / "data" / "lake")
    settings = short_settings(target)
    apply_definitions(settings)
    materialize_latest(settings)
    return settings


@pytest.fixture
def company(company_home: Path, tmp_path: Path) -> Iterator[Settings]:
    """The company in a home of the test's own, with an empty model registry."""
    yield copy_home(company_home, tmp_path / "home")


class Trained(NamedTuple):
    settings: Settings
    result: TrainingResult


@pytest.fixture(scope="session")
def trained(company_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Churn trained once and promoted, for the tests that only read the result."""
    settings = copy_home(company_home, tmp_path_factory.mktemp("trained"))
    result = train_model(settings, "churn")
    promote(settings, "churn")
    return Trained(settings, result)
