"""``csa train churn|expansion``: tune, fit, calibrate, evaluate, track and register a model.

The steps, each on its own window so that no number is measured on rows that shaped it:
train window -> trees; tuning window -> hyperparameters, early stopping, calibration map and
risk bands; test window (the latest labelled one) -> the reported metrics and, later, the
promotion gate's comparison.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from csa.features.definitions import MODELS, SENTIMENT, feature_descriptions
from csa.settings import Settings
from csa.training import evaluation, registry
from csa.training.baseline import LinearModel
from csa.training.calibration import choose_bands, choose_calibrator
from csa.training.model import ScoringModel
from csa.training.tables import (
    FeatureSpace,
    LabelledTable,
    Windows,
    feature_store_table,
    stratified_windows,
    time_windows,
)
from csa.training.tuning import TuningResult, base_params, study_storage, tune

logger = logging.getLogger(__name__)

TEST_WINDOW_ARTIFACT = "evaluation/test_window.parquet"


@dataclass
class TrainingResult:
    """What a training produced: metrics on the test window, the registered version, rows."""

    model: str
    version: str | None
    run_id: str
    metrics: dict[str, float]
    windows: dict[str, Any]
    calibration: str
    tuning: TuningResult
    predictions: pd.DataFrame  # test rows: id, time, label, probability
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def metrics_record(self) -> dict[str, Any]:
        """The ``--metrics-out`` JSON of the interface."""
        return {
            "model": self.model,
            "model_version": self.version,
            "run_id": self.run_id,
            "n_train": self.windows["n_train"],
            "n_tune": self.windows["n_tune"],
            "n_test": self.windows["n_test"],
            **{k: round(v, 6) for k, v in self.metrics.items()},
            "calibration": self.calibration,
            "trials": len(self.tuning.trials),
            "pruned_trials": self.tuning.pruned,
            "best_rounds": self.tuning.rounds,
            **self.extra,
        }


def train_model(
    settings: Settings,
    model: str,
    table: LabelledTable | None = None,
    test_table: LabelledTable | None = None,
    trials: int | None = None,
    pruning: bool | None = None,
    register: bool = True,
) -> TrainingResult:
    """Train ``model`` (churn or expansion) and register it as ``challenger``.

    Args:
        table: a user's labelled table; default the feature store's training set.
        test_table: a separate test table (``--test-table``); its columns must match.
        trials: Optuna trials (default ``training.trials``).
        pruning: override ``training.pruning`` (the benchmark compares both).
        register: log to MLflow and register; off only for benchmarks.

    Raises:
        ContractError: the data cannot make the three windows.
        LakeError: the feature store was not built.
    """
    started = time.perf_counter()
    config = settings.training
    if table is None:
        table = feature_store_table(settings, model)

    # Windows
    windows = _windows(settings, table, test_table)
    summary = windows.summary()
    logger.info(
        "%s windows (%s): train %d, tune %d, test %d rows",
        model,
        windows.method,
        summary["n_train"],
        summary["n_tune"],
        summary["n_test"],
    )

    # Tuning on the train and tuning windows
    space = FeatureSpace.learn(windows.train.frame, table.features)
    monotone = {
        name: direction
        for name, direction in config.monotone.get(model, {}).items()
        if name in space.numeric
    }
    params = base_params(config, monotone)
    train_matrix = _matrix(space, windows.train)
    tune_matrix = _matrix(space, windows.tune)
    study_name = f"{registry.registered_name(model)}-{time.strftime('%Y%m%dT%H%M%S')}"
    storage = study_storage(settings, study_name) if register else None
    tuning = tune(train_matrix, tune_matrix, params, config, storage, study_name, trials, pruning)

    # Final fit, calibration and bands on the tuning window
    booster = xgb.train(tuning.params, train_matrix, num_boost_round=tuning.rounds)
    linear = LinearModel.fit(space, windows.train.frame, windows.train.y)
    tune_trees = np.asarray(booster.predict(tune_matrix), dtype="float64")
    # A regression that contradicts a known direction would break the monotone guarantee.
    tree_weight = (
        choose_tree_weight(windows.tune.y, tune_trees, linear.predict(windows.tune.frame))
        if linear.respects(monotone)
        else 1.0
    )
    tune_raw = tree_weight * tune_trees + (1 - tree_weight) * linear.predict(windows.tune.frame)
    choice = choose_calibrator(windows.tune.y, tune_raw, config.seed)
    bands = choose_bands(
        choice.calibrator.apply(tune_raw), config.high_risk_share, config.medium_risk_share
    )
    scoring = ScoringModel(
        booster=booster,
        space=space,
        calibrator=choice.calibrator,
        bands=bands,
        model=model,
        label=table.label,
        descriptions=feature_descriptions() if model in MODELS else {},
        source=table.source,
        linear=linear if tree_weight < 1.0 else None,
        tree_weight=tree_weight,
    )

    # Test window
    test = windows.test
    raw = scoring.raw_probability(test.frame)
    probability = scoring.calibrator.apply(raw)
    metrics = evaluation.binary_metrics(test.y, probability)
    metrics["ece_before_calibration"] = evaluation.binary_metrics(test.y, raw)["ece"]
    metrics["tune_roc_auc"] = tuning.tune_auc
    metrics["baseline_roc_auc"] = evaluation.binary_metrics(test.y, linear.predict(test.frame))[
        "roc_auc"
    ]
    metrics["tree_weight"] = tree_weight
    metrics.update(_sentiment_gain(tuning.params, tuning.rounds, booster, space, windows))
    predictions = pd.DataFrame(
        {
            "account_id": test.frame[test.id_column].to_numpy(),
            "as_of": test.frame[test.time_column].to_numpy() if test.time_column else pd.NaT,
            "label": test.y,
            "probability": probability,
        }
    )
    logger.info(
        "%s test window: ROC AUC %.4f (logistic baseline %.4f), PR AUC %.4f, Brier %.4f, "
        "ECE %.4f (%s calibration)",
        model,
        metrics["roc_auc"],
        metrics["baseline_roc_auc"],
        metrics["pr_auc"],
        metrics["brier"],
        metrics["ece"],
        choice.calibrator.method,
    )

    result = TrainingResult(
        model=model,
        version=None,
        run_id="",
        metrics=metrics,
        windows=summary,
        calibration=choice.calibrator.method,
        tuning=tuning,
        predictions=predictions,
    )
    if register:
        _track(settings, result, scoring, windows, table, choice.brier, raw)
    result.seconds = time.perf_counter() - started
    return result


def _sentiment_gain(
    params: dict[str, Any], rounds: int, booster: xgb.Booster, space: FeatureSpace, windows: Windows
) -> dict[str, float]:
    """What the account sentiment features add to the trees' ROC AUC on the test window.

    The same parameters and rounds are fitted again with the sentiment features blanked (XGBoost
    reads them as missing, as if they did not exist); both boosters score the test window.
    Empty when the table has no sentiment feature with a value.
    """
    from sklearn.metrics import roc_auc_score

    blanked = [name for name in SENTIMENT.names if name in space.numeric]
    train, test = windows.train.frame, windows.test.frame
    if not blanked or train[blanked].isna().all().all() or len(set(windows.test.y)) < 2:
        return {}

    def without(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(**{name: np.nan for name in blanked})

    train_matrix = xgb.DMatrix(
        space.encode(without(train)), label=windows.train.y, enable_categorical=True
    )
    plain = xgb.train(params, train_matrix, num_boost_round=rounds)
    with_matrix = xgb.DMatrix(space.encode(test), enable_categorical=True)
    without_matrix = xgb.DMatrix(space.encode(without(test)), enable_categorical=True)
    full_auc = float(roc_auc_score(windows.test.y, booster.predict(with_matrix)))
    plain_auc = float(roc_auc_score(windows.test.y, plain.predict(without_matrix)))
    logger.info(
        "sentiment features: trees' test ROC AUC %.4f with them, %.4f without",
        full_auc,
        plain_auc,
    )
    return {
        "trees_roc_auc": full_auc,
        "trees_roc_auc_without_sentiment": plain_auc,
        "sentiment_roc_auc_gain": full_auc - plain_auc,
    }


def choose_tree_weight(y: np.ndarray, trees: np.ndarray, linear: np.ndarray) -> float:
    """The trees' share of the blend that ranks the tuning window best.

    Trees alone unless a blend gains at least 0.002 ROC AUC, so that noise in a small tuning
    window does not bring the regression in.
    """
    from sklearn.metrics import roc_auc_score

    best_weight, best_auc = 1.0, float(roc_auc_score(y, trees)) + 0.002
    for weight in np.linspace(0.9, 0.0, 10):
        auc = float(roc_auc_score(y, weight * trees + (1 - weight) * linear))
        if auc > best_auc:
            best_weight, best_auc = round(float(weight), 2), auc
    return best_weight


def _windows(settings: Settings, table: LabelledTable, test_table: LabelledTable | None) -> Windows:
    config = settings.training
    if test_table is not None:
        missing = [c for c in table.features if c not in test_table.frame.columns]
        if missing:
            from csa.errors import ContractError

            raise ContractError(
                f"the test table {test_table.source} lacks feature columns of the training "
                f"table: {', '.join(missing[:10])}; give both tables the same columns."
            )
        test_table.features = list(table.features)
    if table.time_column is not None and test_table is None:
        purge = config.purge_days
        if purge is None:
            purge = table.horizon_days or 0
        return time_windows(table, config.tune_days, config.test_days, purge)
    return stratified_windows(table, test_table, config.seed)


def _matrix(space: FeatureSpace, part: LabelledTable) -> xgb.DMatrix:
    return xgb.DMatrix(space.encode(part.frame), label=part.y, enable_categorical=True)


def _track(
    settings: Settings,
    result: TrainingResult,
    scoring: ScoringModel,
    windows: Windows,
    table: LabelledTable,
    calibration_brier: dict[str, float],
    test_raw: np.ndarray,
) -> None:
    """One parent run with nested trial runs, artifacts, and the registered challenger."""
    import mlflow
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.models import infer_signature

    model = result.model
    name = registry.registered_name(model)
    experiment = registry.experiment_id(settings, name)
    mlflow_client = registry.client(settings)
    config = settings.training
    with mlflow.start_run(experiment_id=experiment, run_name=f"train-{model}") as run:
        run_id = run.info.run_id
        now = int(time.time() * 1000)

        # Parameters, metrics and lineage of the parent run, in one batch each
        params = {
            **{k: v for k, v in result.tuning.params.items() if k != "monotone_constraints"},
            "monotone_constraints": json.dumps(result.tuning.params.get("monotone_constraints")),
            "rounds": result.tuning.rounds,
            "trials": len(result.tuning.trials),
            "pruning": config.pruning,
            "calibration": result.calibration,
            "bands": json.dumps(scoring.bands.to_dict()),
            "split": windows.method,
            "source": table.source,
            "label": table.label,
        }
        mlflow_client.log_batch(
            run_id,
            params=[Param(k, str(v)[:6000]) for k, v in params.items()],
            metrics=[
                Metric(k, float(v), now, 0) for k, v in result.metrics.items() if np.isfinite(v)
            ],
            tags=[RunTag("csa.model", model), RunTag("csa.data_hash", table.content_hash())],
        )

        # One nested run per trial, each written in a single batch
        for trial in result.tuning.trials:
            child = mlflow_client.create_run(
                experiment,
                run_name=f"trial-{trial.number}",
                tags={"mlflow.parentRunId": run_id, "optuna.state": trial.state},
            )
            child_id = child.info.run_id
            trial_metrics = [Metric("rounds", trial.rounds, now, 0)]
            trial_metrics.append(Metric("seconds", trial.seconds, now, 0))
            if trial.tune_auc is not None:
                trial_metrics.append(Metric("tune_roc_auc", trial.tune_auc, now, 0))
            mlflow_client.log_batch(
                child_id,
                params=[Param(k, str(v)) for k, v in trial.params.items()],
                metrics=trial_metrics,
            )
            mlflow_client.set_terminated(child_id, "FINISHED")

        # Artifacts: plots, lineage, study summary, the test window, the model
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            _write_artifacts(folder, result, scoring, windows, table, calibration_brier, test_raw)
            mlflow.log_artifacts(str(folder / "artifacts"))
            example = windows.train.frame[scoring.space.columns].head(5)
            example = example.astype({c: "string" for c in scoring.space.categories})
            example = example.astype({c: "object" for c in scoring.space.categories})
            output = pd.DataFrame({"probability": [0.1], "band": ["low"]})
            signature = infer_signature(example, output)
            scoring.save(folder / "model")
            version = registry.log_scoring_model(folder / "model", signature, example, name)

    headline = {k: result.metrics[k] for k in ("roc_auc", "pr_auc", "ece")}
    data = {"data_hash": table.content_hash(), "source": table.source}
    registry.mark_challenger(settings, name, version, headline, data)
    result.version = version
    result.run_id = run_id


def _write_artifacts(
    folder: Path,
    result: TrainingResult,
    scoring: ScoringModel,
    windows: Windows,
    table: LabelledTable,
    calibration_brier: dict[str, float],
    test_raw: np.ndarray,
) -> None:
    out = folder / "artifacts"
    test = windows.test
    probability = result.predictions["probability"].to_numpy()
    title = f"{result.model}: test window"
    evaluation.plot_roc(test.y, probability, out / "plots" / "roc.png", title)
    evaluation.plot_pr(test.y, probability, out / "plots" / "pr.png", title)
    evaluation.plot_calibration(
        test.y, test_raw, probability, out / "plots" / "calibration.png", title
    )
    importance = scoring.importance()
    evaluation.plot_importance(importance, out / "plots" / "importance.png", result.model)
    contributions = scoring.booster.predict(scoring.matrix(test.frame), pred_contribs=True)
    evaluation.plot_contributions(
        contributions, scoring.space.columns, out / "plots" / "shap_summary.png", result.model
    )
    (out / "evaluation").mkdir(parents=True, exist_ok=True)
    (out / "evaluation" / "importance.json").write_text(json.dumps(importance, indent=1))
    keep = [c for c in [test.id_column, test.time_column, *test.features, test.label] if c]
    test.frame[keep].to_parquet(out / TEST_WINDOW_ARTIFACT, index=False)
    # What drift monitoring later compares new snapshots with (csa.monitoring.reference).
    from csa.monitoring.reference import write_reference

    write_reference(out, scoring, windows.tune, result.metrics, windows.test.time_range()[1])
    lineage = {
        "source": table.source,
        "label": table.label,
        "rows": len(table.frame),
        "content_hash": table.content_hash(),
        "features": scoring.space.columns,
        **windows.summary(),
    }
    (out / "lineage.json").write_text(json.dumps(lineage, indent=1, default=str))
    study = {
        "best_params": result.tuning.params,
        "best_rounds": result.tuning.rounds,
        "best_tune_roc_auc": result.tuning.tune_auc,
        "seconds": round(result.tuning.seconds, 2),
        "calibration_brier_cross_fitted": calibration_brier,
        "trials": [trial.__dict__ for trial in result.tuning.trials],
    }
    (out / "study.json").write_text(json.dumps(study, indent=1, default=str))
