"""The service in process over the shared simulated company, for every serving test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from csa.serving import KeyStore, build_service
from csa.settings import Settings
from csa.training import train_model
from csa.training.promotion import promote
from csa.training.sentiment import TextTable, review_corpus, train_sentiment
from tests.company import copy_home

ROLES = ("admin", "ml_engineer", "csm", "app")


@pytest.fixture(scope="package")
def served(company_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A home with a churn champion, keys of every role, and the service in process."""
    settings = copy_home(company_home, tmp_path_factory.mktemp("served"), lake=True)
    settings.training.trials = 2
    settings.serving.reload_seconds = 0.2
    settings.serving.max_body_bytes = 4096
    train_model(settings, "churn")
    promote(settings, "churn")
    store = KeyStore(settings)
    keys = {role: store.create(role, f"test {role}")[0] for role in ROLES}
    service = build_service(settings)
    with TestClient(service.to_asgi()) as client:
        yield client, settings, keys


def train_tiny_sentiment(settings: Settings, texts: int = 160) -> str:
    """A real but tiny sentiment champion: one short epoch of the top layer on a few reviews.

    Returns the registered version, promoted to champion.
    """
    settings = settings.model_copy(deep=True)  # the tiny settings stay with this training
    config = settings.training.sentiment
    config.epochs, config.max_length, config.train_layers = 1, 32, 1
    config.learning_rate, config.head_learning_rate = 3e-4, 1e-2
    config.calibration_share = 0.25
    settings.training.gate.min_roc_auc = 0.5
    train, test = review_corpus()
    result = train_sentiment(
        settings,
        TextTable(train.frame.head(texts).reset_index(drop=True), train.source, "1"),
        TextTable(test.frame.head(texts // 2).reset_index(drop=True), test.source, "1"),
    )
    assert result.version is not None
    promote(settings, "sentiment", version=result.version, force=True, reason="tests")
    return result.version
