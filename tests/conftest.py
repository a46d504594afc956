"""Fixtures shared by every test package: an isolated home and the real service connections."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from csa.settings import Settings, load_settings

# The simulated company and its trained models, shared by every package's tests.
pytest_plugins = ["tests.company"]

# Telemetry off before any library that reads these is imported by a test.
os.environ.update(
    {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "BENTOML_DO_NOT_TRACK": "true",
        "FEAST_USAGE": "False",
        "HF_HUB_OFFLINE": "1",
    }
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A CSA_HOME of the test's own, so no test sees another's files."""
    monkeypatch.setenv("CSA_HOME", str(tmp_path))
    monkeypatch.delenv("CSA_PROFILE", raising=False)
    yield tmp_path


@pytest.fixture
def settings(home: Path) -> Settings:
    return load_settings(home=home)


def _unreachable(service: str, url: str, reason: Exception) -> None:
    message = f"{service} at {url} is unreachable ({reason})"
    if os.environ.get("CI") == "true":
        pytest.fail(message + "; CI needs it running")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The real PostgreSQL of CSA_POSTGRES_URL; skip (or fail in CI) when it does not answer."""
    import sqlalchemy

    url = os.environ.get(
        "CSA_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 2})
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        _unreachable("PostgreSQL", url, exc)
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real Redis of CSA_REDIS_URL; skip (or fail in CI) when it does not answer."""
    import redis

    url = os.environ.get("CSA_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).ping()
    except Exception as exc:
        _unreachable("Redis", url, exc)
    return url
