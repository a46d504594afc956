"""The service in process over the shared simulated company, for every serving test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from csa.serving import KeyStore, build_service
from csa.training import train_model
from csa.training.promotion import promote
from tests.company import copy_home


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
    roles = ("admin", "ml_engineer", "csm", "app")
    keys = {role: store.create(role, f"test {role}")[0] for role in roles}
    service = build_service(settings)
    with TestClient(service.to_asgi()) as client:
        yield client, settings, keys
