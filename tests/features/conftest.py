"""Fixtures of the feature tests: a synthetic lake and a built, applied, materialized store.

Each module gets its own ``CSA_HOME`` under pytest's temporary folder, so stores never share
a registry, an online database or feature files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

# Before Feast is imported anywhere: no usage reporting from tests.
os.environ.setdefault("FEAST_USAGE", "False")

from synthetic_lake import write_lake

from csa.features import apply_definitions, build_features, materialize_latest
from csa.settings import Settings, load_settings


def make_settings(home: Path, **features: object) -> Settings:
    """Local-profile settings rooted at ``home``, with feature settings overridden."""
    settings = load_settings(profile="local", home=home)
    for name, value in features.items():
        setattr(settings.features, name, value)
    return settings


@pytest.fixture(scope="module")
def lake_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A home whose lake holds a 40-account, 200-day synthetic company."""
    home = tmp_path_factory.mktemp("home")
    write_lake(home / "data" / "lake", accounts=40, days=200, seed=11)
    yield home


@pytest.fixture(scope="module")
def lake_tables(lake_home: Path) -> dict[str, pd.DataFrame]:
    """The lake's tables as the lake returns them (for the brute-force oracle)."""
    from csa.ingestion.contracts import CANONICAL_TABLES
    from csa.ingestion.lake import read_table

    return {name: read_table(lake_home / "data" / "lake", name) for name in CANONICAL_TABLES}


@pytest.fixture(scope="module")
def local_store(lake_home: Path) -> Settings:
    """The local profile built, applied and materialized over ``lake_home``."""
    settings = make_settings(lake_home)
    build_features(settings)
    apply_definitions(settings)
    materialize_latest(settings)
    return settings
