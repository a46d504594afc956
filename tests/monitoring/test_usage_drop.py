"""End to end on the simulator's ``usage-drop`` scenario: detect, retrain, promote, serve.

One company of 200 accounts over 420 days; from day 240 every account creates reports 30% as
often. The champion is trained on what was known before the change. Replayed passes must not
flag the report features before the change and must flag them after it; a pass with
``--retrain`` at the end of the data trains a challenger that the gate promotes because it
scores better on snapshots after the change, the service switches to it, and its served scores
show no skew against the offline features. The tests run in order: the retraining comes last
but one, since it replaces the champion the earlier ones judge with.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from csa.audit import read_records
from csa.features import materialize_latest
from csa.features.definitions import SNAPSHOT_TIME
from csa.monitoring import load_policy, monitor
from csa.monitoring.judgement import NO_DRIFT, RETRAINED_PROMOTED
from csa.monitoring.monitor import AUDIT_KIND
from csa.monitoring.skew import skew_report
from csa.settings import Settings
from csa.training import feature_store_table, registry, train_model
from csa.training.promotion import promote
from tests.company import SHORT_WINDOWS
from tests.monitoring.scenario import day, scenario_company

pytestmark = pytest.mark.slow

CHANGE_DAY = 240
# The 90-day count takes months to fall far enough; the 7- and 30-day counts show it at once.
REPORT_FEATURES = {f"events_report_created_{days}d" for days in (7, 30)}


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The usage-drop company with a churn champion trained before the change."""
    home = tmp_path_factory.mktemp("usage_drop")
    settings = scenario_company(
        home, 200, 420, seed=3, scenario="usage-drop", change_day=CHANGE_DAY
    )
    table = feature_store_table(settings, "churn")
    horizon = pd.Timedelta(days=settings.features.horizon_days)
    known_before = (table.frame[SNAPSHOT_TIME] + horizon <= day(CHANGE_DAY)).to_numpy()
    train_model(settings, "churn", table=table.subset(known_before))
    assert promote(settings, "churn").promoted
    return settings


def test_usage_drop_is_flagged_after_the_change_and_not_before(company: Settings) -> None:
    policy = load_policy()
    before = [monitor(company, policy, as_of=day(d), models=["churn"], dashboard=False)["churn"]
              for d in (CHANGE_DAY - 45, CHANGE_DAY - 1)]  # fmt: skip
    for report in before:
        assert not REPORT_FEATURES & set(report.drifted_features), report.drifted_features
        assert report.decision == NO_DRIFT, report.reason

    after = monitor(company, policy, as_of=day(CHANGE_DAY + 98), models=["churn"])["churn"]
    assert after.drift_detected
    assert set(after.drifted_features) >= REPORT_FEATURES, after.drifted_features
    assert after.decision == "retrain_recommended", after.reason
    # The dashboard's report of the same window agrees on the report features.
    assert after.dashboard is not None
    assert all(after.dashboard["scores"][f] >= 0.1 for f in REPORT_FEATURES)


def test_csa_monitor_writes_the_report_of_the_interface(
    company: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from csa.cli import app

    for key, value in SHORT_WINDOWS.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "monitoring.json"
    when = day(CHANGE_DAY + 98).date().isoformat()
    result = CliRunner().invoke(
        app,
        ["--home", str(company.home), "monitor", "--as-of", when, "--report", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "monitor churn:" in result.output and "dashboards (`make ui`" in result.output
    models = json.loads(out.read_text())["models"]
    churn = models["churn"]
    assert {"drift_detected", "drifted_features", "decision", "reason"} <= set(churn)
    assert churn["drift_detected"] is True
    assert set(churn["drifted_features"]) >= REPORT_FEATURES
    assert models["expansion"]["decision"] == "no_champion"

    policy = tmp_path / "policy.yaml"
    policy.write_text("consecutive_windows: many\n")
    result = CliRunner().invoke(
        app, ["--home", str(company.home), "monitor", "--policy", str(policy)]
    )
    assert result.exit_code == 1
    assert "consecutive_windows" in result.output and str(policy) in result.output


def test_retraining_promotes_a_better_champion_that_serving_picks_up(
    company: Settings, tmp_path: Path
) -> None:
    from csa.serving.scoring import ChampionScorer

    policy = load_policy()
    name = registry.registered_name("churn")
    old = registry.aliases_of(company, name)[registry.CHAMPION]
    materialize_latest(company)
    scorer = ChampionScorer(company)
    scorer.refresh()
    assert scorer.version("churn") == old

    report = monitor(company, policy, retrain=True, models=["churn"])["churn"]

    assert report.decision == RETRAINED_PROMOTED, report.reason
    new = registry.aliases_of(company, name)[registry.CHAMPION]
    assert new == report.retraining["challenger_version"] != old
    # The gate scored both on the newest test window, which lies after the change.
    gate = report.retraining["gate_metrics"]
    assert gate["candidate"]["roc_auc"] > gate["champion"]["roc_auc"]
    assert report.retraining["training_windows"]["test_from"] > str(day(CHANGE_DAY).date())
    # Serving follows the registry's champion.
    assert scorer.refresh() == ["churn"]
    assert scorer.version("churn") == new

    # The decision is audited and tagged on the old champion's version and in MLflow.
    records = [r for r in read_records(company, AUDIT_KIND) if r["model"] == "churn"]
    assert records[-1]["decision"] == RETRAINED_PROMOTED
    tags = registry.resolve_version(company, name, old).tags
    assert tags["csa.monitor.last_decision"] == RETRAINED_PROMOTED

    # The next pass does not retrain again: the new champion's reference holds the change.
    again = monitor(company, policy, retrain=True, models=["churn"], dashboard=False)["churn"]
    assert again.decision in {"no_drift", "drift_unconfirmed", "drift_within_cooldown"}, (
        again.reason
    )

    # What the service scored matches the offline features of the same snapshots.
    served_scores(scorer, company)
    skew = skew_report(company, "churn")
    assert skew is not None and skew["rows"] > 0
    assert skew["probability_gap_max"] < 1e-6
    assert not skew["skewed_features"], skew["skewed_features"]


def served_scores(scorer: object, settings: Settings) -> None:
    from csa.training.scoring import active_accounts

    accounts = active_accounts(settings)
    for start in range(0, len(accounts), 50):
        scorer.score("churn", accounts[start : start + 50])  # type: ignore[attr-defined]
