"""Connectors other than the pre-built exports: Parquet files and SQL through SQLAlchemy."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy
import yaml

from csa.errors import ConfigError
from csa.ingestion.engine import ingest
from csa.ingestion.lake import read_table
from csa.settings import Settings

SURVEY_MAPPING = {
    "rename": {
        "id": "response_id",
        "account": "account_id",
        "email": "respondent_email",
        "nps": "score",
        "text": "comment",
        "at": "submitted_at",
    },
    "parse": {"score": "int", "submitted_at": "timestamp", "response_id": "str"},
}


def _use_sources(settings: Settings, monkeypatch: pytest.MonkeyPatch, sources: dict) -> None:
    path = settings.home / "sources.yaml"
    path.write_text(yaml.safe_dump({"sources": sources}))
    monkeypatch.setattr(settings.ingestion, "sources_file", path)


def _survey_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3],
            "account": ["ACC-1", "ACC-2", "ACC-3"],
            "email": ["a@x.example", None, "c@x.example"],
            "nps": [10, 4, 42],
            "text": ["Love it", None, "??"],
            "at": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True),
        }
    )


def test_parquet_connector_loads_and_quarantines(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.raw_dir.mkdir(parents=True)
    _survey_frame().to_parquet(settings.raw_dir / "survey.parquet")
    _use_sources(
        settings,
        monkeypatch,
        {
            "survey": {
                "connector": "parquet",
                "location": "{raw}/survey.parquet",
                "table": "survey_responses",
                "mapping": SURVEY_MAPPING,
            }
        },
    )

    result = ingest(settings).sources["survey"]

    assert (result.read, result.accepted, result.quarantined) == (3, 2, 1)
    stored = read_table(settings.lake_dir, "survey_responses")
    assert sorted(stored["response_id"]) == ["1", "2"]


@pytest.mark.postgres
def test_sql_connector_reads_a_postgresql_table(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    table = f"survey_{uuid.uuid4().hex[:8]}"
    engine = sqlalchemy.create_engine(postgres_url)
    _survey_frame().to_sql(table, engine, index=False)
    try:
        _use_sources(
            settings,
            monkeypatch,
            {
                "survey_db": {
                    "connector": "sql",
                    "location": postgres_url,
                    "table": "survey_responses",
                    "query": f"SELECT * FROM {table} ORDER BY id",
                    "mapping": SURVEY_MAPPING,
                }
            },
        )
        first = ingest(settings).sources["survey_db"]
        second = ingest(settings).sources["survey_db"]
    finally:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f"DROP TABLE {table}"))
        engine.dispose()

    assert (first.accepted, first.quarantined) == (2, 1)
    assert (second.accepted, second.duplicates) == (0, 2)
    assert read_table(settings.lake_dir, "survey_responses")["score"].tolist() == [10, 4]


def test_sql_connector_failure_names_the_source_without_the_password(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_sources(
        settings,
        monkeypatch,
        {
            "survey_db": {
                "connector": "sql",
                "location": "postgresql+psycopg://u:secret@127.0.0.1:1/none",
                "table": "survey_responses",
                "query": "SELECT 1",
                "mapping": SURVEY_MAPPING,
            }
        },
    )
    result = ingest(settings).sources["survey_db"]
    assert result.status == "failed"
    assert "survey_db" in str(result.error) and "secret" not in str(result.error)


def test_a_bad_derive_expression_names_the_column_and_file(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.raw_dir.mkdir(parents=True)
    _survey_frame().to_parquet(settings.raw_dir / "survey.parquet")
    mapping = {**SURVEY_MAPPING, "derive": {"comment": "upper(no_such_column)"}}
    _use_sources(
        settings,
        monkeypatch,
        {
            "survey": {
                "connector": "parquet",
                "location": "{raw}/survey.parquet",
                "table": "survey_responses",
                "mapping": mapping,
            }
        },
    )
    result = ingest(settings).sources["survey"]
    assert result.status == "failed"
    assert "derived column 'comment'" in str(result.error)
    assert "sources.yaml" in str(result.error)


def test_unknown_keys_in_sources_file_fail_before_any_load(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_sources(
        settings,
        monkeypatch,
        {
            "survey": {
                "connector": "parquet",
                "location": "x",
                "table": "survey_responses",
                "mapin": {},
            }
        },
    )
    with pytest.raises(ConfigError, match=r"survey\.mapin"):
        ingest(settings)
    assert not (settings.lake_dir / "survey_responses").exists()


def test_the_prebuilt_sources_file_maps_every_canonical_table(settings: Settings) -> None:
    from csa.ingestion.contracts import CANONICAL_TABLES
    from csa.ingestion.sources import load_sources

    tables = {source.table for source in load_sources(settings.sources_file)}
    assert tables == set(CANONICAL_TABLES)


def test_a_path_outside_the_raw_folder_is_allowed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "exports"
    elsewhere.mkdir()
    _survey_frame().to_parquet(elsewhere / "s.parquet")
    _use_sources(
        settings,
        monkeypatch,
        {
            "survey": {
                "connector": "parquet",
                "location": str(elsewhere / "*.parquet"),
                "table": "survey_responses",
                "mapping": SURVEY_MAPPING,
            }
        },
    )
    assert ingest(settings).sources["survey"].accepted == 2
