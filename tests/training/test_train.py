"""Training on the feature store: tracked, registered, calibrated, explained, reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from csa.features.definitions import feature_descriptions
from csa.settings import Settings
from csa.training import CHALLENGER, load_model, train_model
from csa.training.registry import aliases_of, registered_name, run_artifact
from csa.training.tables import feature_store_table
from tests.company import Trained

pytestmark = pytest.mark.slow


def test_training_registers_a_challenger_with_its_run_and_artifacts(trained: Trained) -> None:
    settings, result = trained
    client = MlflowClient(settings.mlflow_tracking_uri)
    run = client.get_run(result.run_id)
    children = client.search_runs(
        [run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{result.run_id}'"
    )
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "plots")}

    assert aliases_of(settings, "csa-churn")[CHALLENGER] == result.version
    assert len(children) == len(result.tuning.trials) == settings.training.trials
    for metric in ("roc_auc", "pr_auc", "brier", "ece", "lift_top_decile"):
        assert metric in run.data.metrics
    assert {"plots/roc.png", "plots/pr.png", "plots/calibration.png"} <= artifacts
    assert {"plots/importance.png", "plots/shap_summary.png"} <= artifacts
    lineage = json.loads(run_artifact(settings, result.run_id, "lineage.json").read_text())
    assert lineage["source"] == "feature service churn"
    assert lineage["n_test"] == result.windows["n_test"]
    assert len(lineage["content_hash"]) == 16


def test_the_model_is_saved_as_xgboost_json_never_a_pickle(trained: Trained) -> None:
    settings, result = trained
    folder = settings.data_dir / "models" / "csa-churn" / str(result.version)
    load_model(settings, "churn", str(result.version))
    files = [p for p in folder.rglob("*") if p.is_file()]

    assert any(p.name == "booster.json" for p in files)
    assert not [p for p in files if p.suffix in (".pkl", ".pickle", ".joblib")]
    assert not [p for p in files if p.name.startswith("python_model")]


def test_the_pyfunc_gives_the_same_probabilities_as_the_platform(trained: Trained) -> None:
    import mlflow

    settings, result = trained
    model = load_model(settings, "churn", str(result.version))
    rows = feature_store_table(settings, "churn").frame.tail(50)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/csa-churn/{result.version}")
    inputs = rows[model.space.columns].astype({c: object for c in model.space.categories})

    served = pyfunc.predict(inputs)

    np.testing.assert_allclose(served["probability"], model.predict(rows), rtol=1e-9)
    assert set(served["band"]) <= {"low", "medium", "high"}


def test_the_model_beats_chance_and_its_metrics_are_the_test_windows(trained: Trained) -> None:
    _, result = trained
    predictions = result.predictions

    assert result.metrics["roc_auc"] > 0.7
    assert len(predictions) == result.windows["n_test"]
    assert set(predictions.columns) == {"account_id", "as_of", "label", "probability"}
    assert predictions["as_of"].min() > pd.Timestamp(result.windows["tune_to"])


def test_drivers_are_the_largest_contributions_with_business_descriptions(
    trained: Trained,
) -> None:
    settings, result = trained
    model = load_model(settings, "churn", str(result.version))
    rows = feature_store_table(settings, "churn").frame.tail(20)
    matrix = model.matrix(rows)
    contributions = model.booster.predict(matrix, pred_contribs=True)
    scores = model.score(rows, top=3)
    descriptions = feature_descriptions()

    # XGBoost's contributions add up to the raw score: nothing is left unexplained.
    margin = model.booster.predict(matrix, output_margin=True)
    np.testing.assert_allclose(contributions.sum(axis=1), margin, rtol=1e-4, atol=1e-4)
    assert scores.drivers is not None
    for row, drivers in enumerate(scores.drivers):
        strengths = [abs(d.contribution) for d in drivers]
        assert strengths == sorted(strengths, reverse=True)
        assert strengths[0] == pytest.approx(np.abs(contributions[row, :-1]).max(), abs=1e-4)
        for driver in drivers:
            assert driver.description == descriptions[driver.feature]


def test_more_failed_payments_never_lower_the_churn_risk(trained: Trained) -> None:
    settings, result = trained
    model = load_model(settings, "churn", str(result.version))
    rows = feature_store_table(settings, "churn").frame.sample(200, random_state=1)
    curves = []
    for failed in range(0, 8):
        rows = rows.assign(failed_payments_90d=failed)
        curves.append(model.raw_probability(rows))

    steps = np.diff(np.vstack(curves), axis=0)
    assert (steps >= -1e-12).all()


def test_the_same_data_and_seed_give_the_same_model(company: Settings) -> None:
    company.training.trials = 2
    first = train_model(company, "churn", register=False)
    second = train_model(company, "churn", register=False)

    assert first.tuning.params == second.tuning.params
    np.testing.assert_array_equal(
        first.predictions["probability"], second.predictions["probability"]
    )


def test_expansion_trains_on_its_own_feature_service(company: Settings) -> None:
    # Expansions are rarer than churn: longer windows so that each holds some.
    company.training.test_days = company.training.tune_days = 60
    result = train_model(company, "expansion")

    assert result.version == "1"
    assert aliases_of(company, registered_name("expansion")) == {CHALLENGER: "1"}
    assert result.predictions["label"].sum() > 0


def test_batch_scores_from_the_online_store_equal_scores_of_the_offline_features(
    trained: Trained, tmp_path: Path
) -> None:
    from csa.features import point_in_time_features
    from csa.features.store import open_store
    from csa.training.scoring import active_accounts, score_accounts

    settings, result = trained
    out = tmp_path / "scores.parquet"
    written = score_accounts(settings, "churn", out)
    scores = pd.read_parquet(out).set_index("account_id")
    model = load_model(settings, "churn")
    accounts = active_accounts(settings)
    rows = pd.DataFrame({"account_id": accounts, "as_of": scores.loc[accounts, "as_of"].values})
    offline = point_in_time_features(open_store(settings), "churn", rows)

    assert written.accounts == len(accounts) and written.version == result.version
    np.testing.assert_allclose(
        scores.loc[offline["account_id"], "probability"].to_numpy(),
        model.predict(offline).round(6),
        atol=1e-6,
    )
