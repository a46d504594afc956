"""Hyperparameter search: Optuna's TPE over XGBoost, pruned and early-stopped on the tuning window.

Each trial fits on the training window and is judged by ROC AUC on the tuning window after every
boosting round; the median pruner stops a trial whose curve falls below the median of earlier
trials at the same round, and early stopping ends a fit once the tuning AUC stops improving.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import xgboost as xgb
from optuna.storages.journal import JournalFileBackend
from optuna_integration import XGBoostPruningCallback

from csa.settings import Settings, TrainingSettings

logger = logging.getLogger(__name__)

METRIC = "auc"
_OBSERVATION = f"tune-{METRIC}"
# On the simulated company the tuning window's AUC peaks early (the best trials at 8-22 rounds)
# and early stopping ends each trial ~30 rounds later, far short of max_rounds: a pruner that
# waits 20 rounds and for 5 finished trials saved only 5-28% of the rounds. Judged from round 5
# against 2 finished trials, the median rule trained 33-58% of an unpruned search's rounds in
# six studies (two models, three seeds) and never lowered the best tuning AUC; from round 3 it
# once lost 0.013 (bench/bench_tuning.py measures the default).
_PRUNER_STARTUP_TRIALS = 2
_PRUNER_WARMUP_ROUNDS = 5


@dataclass
class TrialRecord:
    """What one trial tried and reached, for the trial's MLflow run."""

    number: int
    params: dict[str, Any]
    state: str  # COMPLETE or PRUNED
    tune_auc: float | None
    rounds: int
    seconds: float


@dataclass
class TuningResult:
    """The best parameters and round count, and every trial."""

    params: dict[str, Any]
    rounds: int
    tune_auc: float
    trials: list[TrialRecord] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def pruned(self) -> int:
        return sum(t.state == "PRUNED" for t in self.trials)


def base_params(config: TrainingSettings, monotone: Mapping[str, int]) -> dict[str, Any]:
    """Parameters every trial and the final fit share."""
    params: dict[str, Any] = {
        "objective": "binary:logistic",
        "eval_metric": METRIC,
        "tree_method": "hist",
        "max_cat_to_onehot": 8,
        "nthread": config.threads,
        "seed": config.seed,
        "verbosity": 0,
    }
    if monotone:
        params["monotone_constraints"] = dict(monotone)
    return params


def _suggest(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "max_depth": trial.suggest_int("max_depth", 2, 8),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 50.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 20.0, log=True),
        "reg_alpha": trial.suggest_float("reg_alpha", 1e-3, 5.0, log=True),
    }


def study_storage(settings: Settings, name: str) -> optuna.storages.BaseStorage:
    """Optuna's storage: a journal file under ``home`` locally, PostgreSQL in production.

    A journal file (not SQLite) because SQLite does not take parallel writers.
    """
    if settings.profile == "production":
        return optuna.storages.RDBStorage(settings.postgres_sqlalchemy_url)
    folder = settings.data_dir / "optuna"
    folder.mkdir(parents=True, exist_ok=True)
    backend = JournalFileBackend(str(Path(folder) / f"{name}.log"))
    return optuna.storages.JournalStorage(backend)


def tune(
    train: xgb.DMatrix,
    tune_set: xgb.DMatrix,
    params: dict[str, Any],
    config: TrainingSettings,
    storage: optuna.storages.BaseStorage | None,
    study_name: str,
    trials: int | None = None,
    pruning: bool | None = None,
) -> TuningResult:
    """Search hyperparameters; the best trial's parameters and its early-stopped round count."""
    started = time.perf_counter()
    use_pruning = config.pruning if pruning is None else pruning
    pruner: optuna.pruners.BasePruner = (
        optuna.pruners.MedianPruner(
            n_startup_trials=_PRUNER_STARTUP_TRIALS, n_warmup_steps=_PRUNER_WARMUP_ROUNDS
        )
        if use_pruning
        else optuna.pruners.NopPruner()
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=config.seed),
        pruner=pruner,
        storage=storage,
    )
    records: list[TrialRecord] = []

    def objective(trial: optuna.Trial) -> float:
        trial_started = time.perf_counter()
        trial_params = {**params, **_suggest(trial)}
        callbacks: list[xgb.callback.TrainingCallback] = []
        if use_pruning:
            callbacks.append(XGBoostPruningCallback(trial, _OBSERVATION))
        history: dict[str, dict[str, list[float]]] = {}
        try:
            booster = xgb.train(
                trial_params,
                train,
                num_boost_round=config.max_rounds,
                evals=[(tune_set, "tune")],
                early_stopping_rounds=config.early_stopping_rounds,
                evals_result=history,
                verbose_eval=False,
                callbacks=callbacks,
            )
        except optuna.TrialPruned:
            curve = history.get("tune", {}).get(METRIC, [])
            records.append(
                TrialRecord(
                    number=trial.number,
                    params=_suggested(trial_params),
                    state="PRUNED",
                    tune_auc=max(curve) if curve else None,
                    rounds=len(curve),
                    seconds=time.perf_counter() - trial_started,
                )
            )
            raise
        rounds = booster.best_iteration + 1
        auc = float(booster.best_score)
        trial.set_user_attr("rounds", rounds)
        records.append(
            TrialRecord(
                number=trial.number,
                params=_suggested(trial_params),
                state="COMPLETE",
                tune_auc=auc,
                rounds=rounds,
                seconds=time.perf_counter() - trial_started,
            )
        )
        return auc

    study.optimize(
        objective, n_trials=trials or config.trials, timeout=config.timeout_seconds, n_jobs=1
    )
    best = study.best_trial
    result = TuningResult(
        params={**params, **best.params},
        rounds=int(best.user_attrs["rounds"]),
        tune_auc=float(best.value or np.nan),
        trials=records,
        seconds=time.perf_counter() - started,
    )
    logger.info(
        "tuned %d trials (%d pruned) in %.1f s: best tuning AUC %.4f at %d rounds",
        len(records),
        result.pruned,
        result.seconds,
        result.tune_auc,
        result.rounds,
    )
    return result


def _suggested(params: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "max_depth",
        "learning_rate",
        "min_child_weight",
        "subsample",
        "colsample_bytree",
        "reg_lambda",
        "reg_alpha",
    )
    return {k: params[k] for k in keys}
