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
    write_text_scores(home, seed=11)
    yield home


def write_text_scores(home: Path, seed: int) -> None:
    """Scores for every ticket and survey answer of the lake, as a sentiment scoring writes them.

    The aggregation is what the feature tests check, not the model, so the scores are random.
    """
    import numpy as np

    from csa.features.text_sentiment import SCORE_COLUMNS, text_scores_path
    from csa.ingestion.lake import read_table

    lake = home / "data" / "lake"
    tickets = read_table(lake, "tickets")
    surveys = read_table(lake, "survey_responses")
    rows = pd.concat(
        [
            pd.DataFrame(
                {
                    "text_id": "ticket:" + tickets["ticket_id"],
                    "source": "ticket",
                    "account_id": tickets["account_id"],
                    "written_at": tickets["created_at"],
                }
            ),
            pd.DataFrame(
                {
                    "text_id": "survey:" + surveys["response_id"],
                    "source": "survey",
                    "account_id": surveys["account_id"],
                    "written_at": surveys["submitted_at"],
                }
            ),
        ],
        ignore_index=True,
    )
    rng = np.random.default_rng(seed)
    rows["content_hash"] = [f"{i:032x}" for i in range(len(rows))]
    rows["score"] = rng.uniform(0.0, 1.0, len(rows))
    rows["label"] = np.where(
        rows["score"] > 0.6, "positive", np.where(rows["score"] < 0.4, "negative", "neutral")
    )
    rows["model_version"] = "1"
    path = text_scores_path(make_settings(home))
    path.parent.mkdir(parents=True, exist_ok=True)
    rows[SCORE_COLUMNS].to_parquet(path, index=False)


@pytest.fixture(scope="module")
def lake_tables(lake_home: Path) -> dict[str, pd.DataFrame]:
    """The lake's tables as the lake returns them (for the brute-force oracle)."""
    from csa.features.text_sentiment import read_text_scores
    from csa.ingestion.contracts import CANONICAL_TABLES
    from csa.ingestion.lake import read_table

    tables = {name: read_table(lake_home / "data" / "lake", name) for name in CANONICAL_TABLES}
    tables["text_sentiment"] = read_text_scores(make_settings(lake_home))
    return tables


@pytest.fixture(scope="module")
def local_store(lake_home: Path) -> Settings:
    """The local profile built, applied and materialized over ``lake_home``."""
    settings = make_settings(lake_home)
    build_features(settings)
    apply_definitions(settings)
    materialize_latest(settings)
    return settings
