"""The promotion gate: better or refused, always audited, overridable only with a reason."""

from __future__ import annotations

import pytest

from csa.audit import read_records
from csa.errors import ConfigError
from csa.settings import Settings
from csa.training import CHALLENGER, CHAMPION, ModelNotFound, train_model
from csa.training.promotion import AUDIT_KIND, promote
from csa.training.registry import aliases_of, resolve_version
from csa.training.tables import feature_store_table

pytestmark = pytest.mark.slow


@pytest.fixture
def fast(company: Settings) -> Settings:
    company.training.trials = 2
    return company


def test_the_first_model_becomes_champion_only_above_the_minimum_quality(fast: Settings) -> None:
    train_model(fast, "churn")
    fast.training.gate.min_roc_auc = 0.999

    refused = promote(fast, "churn")
    fast.training.gate.min_roc_auc = 0.6
    promoted = promote(fast, "churn")

    assert not refused.promoted
    assert "first champion needs ROC AUC >= 0.999" in refused.reason
    assert promoted.promoted
    assert aliases_of(fast, "csa-churn") == {CHALLENGER: "1", CHAMPION: "1"}


def test_a_second_training_on_the_same_data_is_refused_with_a_recorded_reason(
    fast: Settings,
) -> None:
    train_model(fast, "churn")
    promote(fast, "churn")
    train_model(fast, "churn")

    decision = promote(fast, "churn")

    assert not decision.promoted
    assert decision.metrics["candidate"]["roc_auc"] == decision.metrics["champion"]["roc_auc"]
    assert "gain +0.0000 is below the required 0.0050" in decision.reason
    assert aliases_of(fast, "csa-churn")[CHAMPION] == "1"
    last = read_records(fast, AUDIT_KIND)[-1]
    assert last["decision"] == "refused"
    assert last["candidate_version"] == "2" and last["champion_version"] == "1"
    assert last["reason"] == decision.reason
    assert last["actor"] and last["at"]
    tags = resolve_version(fast, "csa-churn", "2").tags
    assert tags["csa.gate.last_decision"] == "refused"


def test_a_challenger_that_ranks_better_is_promoted(fast: Settings) -> None:
    # A first champion that sees almost nothing, then one that sees everything.
    blind = feature_store_table(fast, "churn")
    blind.features = ["nps_change"]
    weak = train_model(fast, "churn", table=blind)
    promote(fast, "churn", force=True, reason="a baseline to beat")
    strong = train_model(fast, "churn")

    decision = promote(fast, "churn")

    assert decision.promoted, decision.reason
    assert strong.metrics["roc_auc"] > weak.metrics["roc_auc"] + 0.05
    assert aliases_of(fast, "csa-churn")[CHAMPION] == strong.version


def test_force_needs_a_reason_and_is_audited_as_forced(fast: Settings) -> None:
    train_model(fast, "churn")
    promote(fast, "churn")
    train_model(fast, "churn")

    with pytest.raises(ConfigError, match="--reason"):
        promote(fast, "churn", force=True)
    decision = promote(fast, "churn", force=True, reason="hotfix for the EMEA segment")

    assert decision.promoted
    assert aliases_of(fast, "csa-churn")[CHAMPION] == "2"
    last = read_records(fast, AUDIT_KIND)[-1]
    assert last["forced"] is True
    assert last["operator_reason"] == "hotfix for the EMEA segment"


def test_rolling_back_is_promoting_an_earlier_version(fast: Settings) -> None:
    train_model(fast, "churn")
    promote(fast, "churn")
    train_model(fast, "churn")
    promote(fast, "churn", force=True, reason="try the new one")

    rollback = promote(fast, "churn", version="1", force=True, reason="roll back")

    assert rollback.promoted
    assert aliases_of(fast, "csa-churn")[CHAMPION] == "1"
    assert [r["decision"] for r in read_records(fast, AUDIT_KIND)] == ["promoted"] * 3


def test_the_audit_log_only_grows(fast: Settings) -> None:
    train_model(fast, "churn")
    promote(fast, "churn")
    before = (fast.audit_dir / f"{AUDIT_KIND}.jsonl").read_bytes()
    promote(fast, "churn")  # already the champion: refused, and recorded

    after = (fast.audit_dir / f"{AUDIT_KIND}.jsonl").read_bytes()
    assert after.startswith(before) and len(after) > len(before)
    assert "already the champion" in read_records(fast, AUDIT_KIND)[-1]["reason"]


def test_promoting_a_model_that_was_never_trained_names_the_fix(company: Settings) -> None:
    with pytest.raises(ModelNotFound, match="csa train"):
        promote(company, "expansion")
