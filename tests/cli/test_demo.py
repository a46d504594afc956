"""``csa demo`` and ``csa simulate`` through Typer's runner, on a tiny company."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from csa.cli import app

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
def test_demo_runs_every_stage_into_the_home(home: Path) -> None:
    result = runner.invoke(app, ["demo", "--accounts", "25", "--days", "150", "--seed", "3"])

    assert result.exit_code == 0, result.output
    for number, name in enumerate(
        [
            "simulate",
            "ingest",
            "features build",
            "features apply",
            "features materialize",
            "dataset churn",
            "dataset expansion",
        ],
        start=1,
    ):
        assert f"[{number}/7] {name}:" in result.output
    report = json.loads((home / "reports" / "ingest.json").read_text())
    assert report["ok"] is True
    assert report["sources"]["product_usage"]["accepted"] > 0
    churn = pd.read_parquet(home / "data" / "datasets" / "churn.parquet")
    assert len(churn) > 0
    assert "churned_within_90d" in churn.columns
    assert set(churn["account_id"]) <= set(
        pd.read_csv(home / "data" / "raw" / "crm_accounts.csv")["Account ID"]
    )
