"""``csa train``, ``promote``, ``models`` and ``score`` through Typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from csa.cli import app
from csa.features.definitions import JOIN_KEY
from csa.training.scoring import active_accounts
from tests.company import SHORT_WINDOWS, copy_home

pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.fixture
def cli_home(company_home: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key, value in SHORT_WINDOWS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CSA_TRAINING__TRIALS", "2")
    copy_home(company_home, home)
    return home


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_train_promote_models_and_score_from_the_command_line(cli_home: Path) -> None:
    metrics_out = cli_home / "out" / "metrics.json"
    predictions_out = cli_home / "out" / "predictions.csv"
    scores_out = cli_home / "out" / "scores.parquet"

    trained = invoke(
        "train", "churn", "--metrics-out", str(metrics_out),
        "--predictions-out", str(predictions_out),
    )  # fmt: skip
    promoted = invoke("promote", "churn")
    listing = invoke("models")
    scored = invoke("score", "churn", "--out", str(scores_out))

    assert "[1/1] train churn: csa-churn version 1 (challenger)" in trained
    metrics = json.loads(metrics_out.read_text())
    for key in ("model", "n_train", "n_test", "roc_auc", "pr_auc", "brier", "ece"):
        assert key in metrics
    assert metrics["model_version"] == "1"
    predictions = pd.read_csv(predictions_out)
    assert list(predictions.columns) == ["account_id", "as_of", "label", "probability"]
    assert len(predictions) == metrics["n_test"]
    assert "version 1 promoted to champion" in promoted
    assert "csa-churn" in listing and "champion" in listing
    scores = pd.read_parquet(scores_out)
    assert "accounts" in scored
    assert set(scores[JOIN_KEY]) == set(active_accounts_of(cli_home))
    assert scores["probability"].is_monotonic_decreasing
    assert set(scores["risk_band"]) <= {"low", "medium", "high"}
    assert (scores["model_version"] == "1").all()
    first = json.loads(scores["drivers"].iloc[0])
    assert {"feature", "value", "contribution", "description"} <= set(first[0])
    plays = [play for row in scores["plays"] for play in json.loads(row)]
    assert plays, "no account of the company needs any play"
    assert {"play", "title", "priority", "owner", "message"} <= set(plays[0])


def active_accounts_of(home: Path) -> list[str]:
    from csa.settings import load_settings

    return active_accounts(load_settings(home=home))


def test_score_of_listed_accounts_only(cli_home: Path) -> None:
    invoke("train", "churn")
    invoke("promote", "churn", "--force", "--reason", "test")
    accounts = active_accounts_of(cli_home)[:3]
    listed = cli_home / "accounts.txt"
    listed.write_text("\n".join(accounts) + "\n")

    invoke("score", "churn", "--out", str(cli_home / "s.csv"), "--accounts", str(listed))

    assert sorted(pd.read_csv(cli_home / "s.csv")[JOIN_KEY]) == sorted(accounts)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "upsell"], "unknown model 'upsell'"),
        (["promote", "churn"], "csa train"),
        (["promote", "churn", "--force"], "--reason"),
        (["score", "churn", "--out", "x.parquet"], "csa train"),
        (["train", "churn", "--table", "missing.csv", "--label", "y", "--id", "id"], "missing"),
        (["train", "churn", "--table", "t.csv"], "--label COL and --id COL"),
    ],
)
def test_bad_requests_exit_1_with_the_reason(cli_home: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, args)

    assert result.exit_code == 1
    assert message in result.output
