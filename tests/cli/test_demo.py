"""``csa demo`` and ``csa simulate`` through Typer's runner, on a tiny company."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from csa.cli import app
from tests.company import SHORT_WINDOWS

runner = CliRunner()


def test_simulate_writes_every_export_into_out(home: Path) -> None:
    out = home / "exports"
    result = runner.invoke(app, ["simulate", "--accounts", "12", "--days", "40", "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert "[1/1] simulate: 12 accounts" in result.output
    for name in ("crm_accounts.csv", "billing_invoices.csv", "support_tickets.json"):
        assert (out / name).exists(), name
    assert sorted(out.glob("usage_events_*.jsonl"))
    assert (out / "ground_truth" / "scenario.json").exists()


def test_simulate_refuses_an_unknown_scenario_with_the_choices(home: Path) -> None:
    result = runner.invoke(app, ["simulate", "--scenario", "boom", "--out", str(home / "x")])

    assert result.exit_code == 1
    assert "boom" in result.output
    assert "usage-drop" in result.output


@pytest.mark.slow
def test_demo_runs_every_stage_into_the_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in SHORT_WINDOWS.items():
        monkeypatch.setenv(key, value)
    # Expansions are rarer than churn: windows long enough that each holds some.
    monkeypatch.setenv("CSA_TRAINING__TEST_DAYS", "45")
    monkeypatch.setenv("CSA_TRAINING__TUNE_DAYS", "45")
    # The sentiment model at its smallest: a real fine-tuning of one layer on 100 short texts.
    for key, value in {
        "CSA_DEMO__SENTIMENT_MAX_TRAIN_TEXTS": "100",
        "CSA_DEMO__SENTIMENT_MAX_LENGTH": "32",
        "CSA_TRAINING__SENTIMENT__TRAIN_LAYERS": "1",
        "CSA_TRAINING__SENTIMENT__HEAD_LEARNING_RATE": "0.01",
        "CSA_TRAINING__GATE__MIN_ROC_AUC": "0.5",
    }.items():
        monkeypatch.setenv(key, value)
    result = runner.invoke(
        app, ["demo", "--accounts", "150", "--days", "365", "--seed", "5", "--no-serve"]
    )

    assert result.exit_code == 0, result.output
    stages = [
        "simulate",
        "ingest",
        "train sentiment",
        "promote sentiment",
        "score sentiment",
        "features build",
        "features apply",
        "features materialize",
        "dataset churn",
        "dataset expansion",
        "train churn",
        "promote churn",
        "train expansion",
        "promote expansion",
        "score churn",
        "score expansion",
        "report",
        "monitor",
    ]
    for number, name in enumerate(stages, start=1):
        assert f"[{number}/{len(stages)}] {name}:" in result.output
    assert "riskiest accounts" in result.output
    report = json.loads((home / "reports" / "ingest.json").read_text())
    assert report["ok"] is True
    assert report["sources"]["product_usage"]["accepted"] > 0
    churn = pd.read_parquet(home / "data" / "datasets" / "churn.parquet")
    assert len(churn) > 0
    assert "churned_within_30d" in churn.columns
    # The churn model learns from what customers wrote.
    assert churn["sentiment_mean_90d"].notna().any()
    texts = pd.read_parquet(home / "data" / "features" / "text_sentiment.parquet")
    assert len(texts) > 0 and texts["model_version"].eq("1").all()
    assert set(churn["account_id"]) <= set(
        pd.read_csv(home / "data" / "raw" / "crm_accounts.csv")["Account ID"]
    )
    assert (home / "reports" / "customer_analytics.html").stat().st_size > 10_000
    # A monitoring pass judged both champions and the output links the dashboards.
    monitoring = json.loads((home / "reports" / "monitoring.json").read_text())["models"]
    assert {m["decision"] for m in monitoring.values()} <= {
        "no_drift", "drift_unconfirmed", "retrain_recommended", "window_too_small", "no_champion"
    }  # fmt: skip
    assert "dashboards (`make ui`" in result.output
    scores = pd.read_parquet(home / "data" / "scores" / "churn.parquet")
    assert len(scores) > 0 and scores["model_version"].notna().all()
