"""Time to churn: a survival model giving each account a survival curve and expected months.

XGBoost's accelerated failure time objective models ``log(months to churn) = f(features) +
sigma * Z`` with a normal ``Z``, so an account's survival curve is
``S(t) = 1 - Phi((log t - f(x)) / sigma)``. An account still a customer when the data ends is
right-censored: it is only known to survive *at least* that long, which is what the objective
takes as an open interval.

Rows are monthly snapshots of every account (features as of that day). Judged on a time split:
the model is fitted on snapshots before the cutoff ``analytics.survival_test_months`` before the
data ends, with churn censored at the cutoff (nothing later is known to it), and scored on the
accounts that were customers at the cutoff, by Harrell's concordance index against what happened
after. Baselines on the same rows: a constant prediction (concordance 0.5 by definition) and
single-feature rules a CSM might use. The reported curves come from a refit on all snapshots.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from csa.analytics.snapshots import JOIN_KEY, SNAPSHOT_TIME, data_end, snapshot_days, snapshots_on
from csa.errors import LakeError
from csa.ingestion.contracts import BILLING_PERIODS, PLAN_TIERS, SIZE_BANDS
from csa.ingestion.lake import read_table
from csa.settings import Settings

logger = logging.getLogger(__name__)

EXPERIMENT = "csa-survival"
DAYS_PER_MONTH = 30.4375
SIGMA = 1.0  # scale of the normal error on log-time
_PARAMS = {
    "objective": "survival:aft",
    "eval_metric": "aft-nloglik",
    "aft_loss_distribution": "normal",
    "aft_loss_distribution_scale": SIGMA,
    "learning_rate": 0.04,
    "max_depth": 3,
    "min_child_weight": 5,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "lambda": 2.0,
    # One thread: on a shared 2-core machine, two threads spin-wait on each other and run the
    # same small fit up to twenty times slower.
    "nthread": 1,
}
_ORDINALS = {"plan_tier": PLAN_TIERS, "size_band": SIZE_BANDS, "billing_period": BILLING_PERIODS}
# Single-feature rules: the direction in which each predicts an earlier churn.
BASELINE_RULES = {"days_since_last_activity": 1, "days_to_renewal": -1, "tenure_days": -1}
CURVE_MONTHS = (3, 6, 12)


@dataclass
class SurvivalResult:
    """Per-account predictions, evaluation and where the run was logged."""

    accounts: pd.DataFrame  # account_id, median/expected months, survival at 3/6/12 months
    curves: pd.DataFrame  # account (rows) by month (columns): probability still a customer
    concordance: float
    baselines: dict[str, float]  # rule -> concordance on the same test rows
    n_train: int
    n_test: int
    test_events: int
    cutoff: pd.Timestamp
    test_curve: pd.DataFrame = field(default_factory=pd.DataFrame)  # months, km, predicted
    run_id: str | None = None


def concordance_index(durations: np.ndarray, events: np.ndarray, predicted: np.ndarray) -> float:
    """Harrell's C: among comparable pairs, the share ordered correctly by predicted time.

    A pair is comparable when the shorter duration ended in an observed churn; a tie in the
    prediction counts a half. 0.5 is a random ordering, 1.0 a perfect one.
    """
    durations = np.asarray(durations, dtype=float)
    events = np.asarray(events, dtype=bool)
    predicted = np.asarray(predicted, dtype=float)
    shorter = (durations[:, None] < durations[None, :]) & events[:, None]
    if not shorter.any():
        return float("nan")
    right = (predicted[:, None] < predicted[None, :]) & shorter
    tied = (predicted[:, None] == predicted[None, :]) & shorter
    return float((right.sum() + 0.5 * tied.sum()) / shorter.sum())


def kaplan_meier(durations: np.ndarray, events: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The Kaplan-Meier estimate of the share still a customer at each month of ``grid``."""
    order = np.argsort(durations, kind="stable")
    durations, events = np.asarray(durations)[order], np.asarray(events, dtype=bool)[order]
    times = np.unique(durations[events])
    at_risk = np.array([(durations >= t).sum() for t in times])
    churned = np.array([((durations == t) & events).sum() for t in times])
    survival = np.cumprod(1 - churned / np.maximum(at_risk, 1))
    steps = np.searchsorted(times, grid, side="right")
    return np.concatenate([[1.0], survival])[steps]


def survival_curves(log_time: np.ndarray, months: np.ndarray) -> np.ndarray:
    """S(t) of each row for each month of ``months`` under the normal AFT model."""
    from scipy.stats import norm

    with np.errstate(divide="ignore"):
        z = (np.log(months)[None, :] - np.asarray(log_time)[:, None]) / SIGMA
    return norm.sf(z)


def expected_months(log_time: np.ndarray, cap: int) -> np.ndarray:
    """Restricted mean months to churn within ``cap`` months: the area under S(t) up to it."""
    grid = np.linspace(0, cap, cap * 8 + 1)
    return np.trapezoid(survival_curves(log_time, grid), grid, axis=1)


def survival_frame(settings: Settings) -> pd.DataFrame:
    """Monthly snapshots of every account with features and churn time in months.

    Columns: the model features, ``account_id``, ``as_of``, ``churned_at`` (or NaT).
    """
    days = snapshot_days(settings)
    if len(days) == 0:
        raise LakeError("the feature tables hold no snapshots; run `csa features build` first.")
    monthly = days[::30].union(days[-1:])
    frame = snapshots_on(settings, monthly)
    accounts = read_table(settings.lake_dir, "accounts", ["account_id", "churned_at"])
    churn = accounts.set_index("account_id")["churned_at"]
    frame["churned_at"] = frame[JOIN_KEY].map(churn)
    return frame


def feature_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """The numeric matrix the survival model sees: batch features, categories as ordinals."""
    from csa.features.definitions import BATCH_GROUPS

    names = [spec.name for group in BATCH_GROUPS for spec in group.features]
    matrix = pd.DataFrame(index=frame.index)
    for name in names:
        if name in _ORDINALS:
            matrix[name] = frame[name].map({v: i for i, v in enumerate(_ORDINALS[name])})
        else:
            matrix[name] = pd.to_numeric(frame[name], errors="coerce")
    return matrix.astype("float64")


def _bounds(frame: pd.DataFrame, horizon_end: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """AFT label bounds in months: [t, t] for a churn seen by ``horizon_end``, else [t, inf)."""
    seen = frame["churned_at"].notna() & (frame["churned_at"] <= horizon_end)
    until = frame["churned_at"].where(seen, horizon_end)
    months = (until - frame[SNAPSHOT_TIME]).dt.total_seconds().to_numpy() / 86400 / DAYS_PER_MONTH
    lower = np.maximum(months, 1 / DAYS_PER_MONTH)  # log-time needs a positive duration
    upper = np.where(seen.to_numpy(), lower, np.inf)
    return lower, upper


def _fit(
    matrix: pd.DataFrame, lower: np.ndarray, upper: np.ndarray, seed: int, rounds: int
) -> object:
    import xgboost as xgb

    data = xgb.DMatrix(matrix)
    data.set_float_info("label_lower_bound", lower)
    data.set_float_info("label_upper_bound", upper)
    return xgb.train({**_PARAMS, "seed": seed}, data, num_boost_round=rounds)


def _log_time(booster: object, matrix: pd.DataFrame) -> np.ndarray:
    import xgboost as xgb

    assert isinstance(booster, xgb.Booster)
    return np.log(np.asarray(booster.predict(xgb.DMatrix(matrix)), dtype="float64"))


def fit_survival(settings: Settings, log_run: bool = True) -> SurvivalResult:
    """Fit, judge on the time split, refit on everything and predict every active account.

    Raises:
        LakeError: the history is too short for the test window.
    """
    started = time.perf_counter()
    config = settings.analytics
    frame = survival_frame(settings)
    end = data_end(settings)
    cutoff = end - pd.DateOffset(months=config.survival_test_months)
    origin_day = frame.loc[frame[SNAPSHOT_TIME] <= cutoff, SNAPSHOT_TIME]
    if origin_day.empty or (frame[SNAPSHOT_TIME] < origin_day.max()).sum() < 20:
        raise LakeError(
            f"the feature tables end {end:%Y-%m-%d}; holding out "
            f"{config.survival_test_months} months leaves too little history to fit on. Lower "
            "analytics.survival_test_months or ingest more history."
        )
    origin = origin_day.max()
    matrix = feature_matrix(frame)

    # Time split: the fit knows nothing after the origin; the test rows start there.
    train = (frame[SNAPSHOT_TIME] < origin).to_numpy()
    test = (frame[SNAPSHOT_TIME] == origin).to_numpy()
    lower, upper = _bounds(frame.loc[train], origin)
    booster = _fit(matrix.loc[train], lower, upper, config.seed, config.survival_rounds)
    test_lower, test_upper = _bounds(frame.loc[test], end)
    test_events = np.isfinite(test_upper)
    predicted = _log_time(booster, matrix.loc[test])
    concordance = concordance_index(test_lower, test_events, predicted)
    baselines = {"constant": 0.5}
    for rule, direction in BASELINE_RULES.items():
        # A higher value means an earlier churn when the direction is +1.
        score = -direction * matrix.loc[test, rule].fillna(matrix[rule].median()).to_numpy()
        baselines[rule] = concordance_index(test_lower, test_events, score)
    grid = np.arange(0, int(np.ceil(test_lower.max())) + 1, dtype=float)
    test_curve = pd.DataFrame(
        {
            "months": grid,
            "kaplan_meier": kaplan_meier(test_lower, test_events, grid),
            "predicted": survival_curves(predicted, np.maximum(grid, 1e-9)).mean(axis=0),
        }
    )

    # Refit on everything, censored at the end of the data, for the current accounts.
    all_lower, all_upper = _bounds(frame, end)
    final = _fit(matrix, all_lower, all_upper, config.seed, config.survival_rounds)
    current = (frame[SNAPSHOT_TIME] == frame[SNAPSHOT_TIME].max()).to_numpy()
    log_time = _log_time(final, matrix.loc[current])
    months = np.arange(1, config.survival_months + 1, dtype=float)
    curves = pd.DataFrame(
        survival_curves(log_time, months),
        index=frame.loc[current, JOIN_KEY].to_numpy(),
        columns=[int(m) for m in months],
    )
    curves.index.name = JOIN_KEY
    accounts = pd.DataFrame(
        {
            JOIN_KEY: curves.index,
            "median_months": np.round(np.exp(log_time), 2),
            "expected_months": np.round(expected_months(log_time, config.survival_months), 2),
            **{f"survival_{m}m": curves[m].round(4).to_numpy() for m in CURVE_MONTHS},
        }
    ).sort_values("expected_months", ignore_index=True)
    result = SurvivalResult(
        accounts=accounts,
        curves=curves,
        concordance=concordance,
        baselines=baselines,
        n_train=int(train.sum()),
        n_test=int(test.sum()),
        test_events=int(test_events.sum()),
        cutoff=origin,
        test_curve=test_curve,
    )
    if log_run:
        result.run_id = _log_to_mlflow(settings, result, final)
    logger.info(
        "survival: concordance %.3f on %d accounts from %s (%d churned), baselines %s, in %.1f s",
        concordance,
        result.n_test,
        origin.date(),
        result.test_events,
        ", ".join(f"{k} {v:.3f}" for k, v in baselines.items()),
        time.perf_counter() - started,
    )
    return result


def _log_to_mlflow(settings: Settings, result: SurvivalResult, booster: object) -> str:
    import mlflow
    import xgboost as xgb

    from csa.training.registry import client, experiment_id

    assert isinstance(booster, xgb.Booster)
    client(settings)
    with mlflow.start_run(experiment_id=experiment_id(settings, EXPERIMENT)) as run:
        config = settings.analytics
        mlflow.log_params({**_PARAMS, "rounds": config.survival_rounds, "seed": config.seed})
        metrics = {
            "c_index": result.concordance,
            **{f"baseline_c_index_{k}": v for k, v in result.baselines.items()},
            "n_train": result.n_train,
            "n_test": result.n_test,
            "test_churns": result.test_events,
        }
        mlflow.log_metrics(metrics)
        mlflow.set_tags({"model": "survival", "test_origin": str(result.cutoff.date())})
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder)
            booster.save_model(path / "survival_booster.json")
            (path / "evaluation.json").write_text(json.dumps(metrics, indent=2))
            result.accounts.to_csv(path / "time_to_churn.csv", index=False)
            mlflow.log_artifacts(folder)
        return str(run.info.run_id)


def survival_figure(result: SurvivalResult, segments: pd.DataFrame | None = None) -> Figure:
    """Left: observed (Kaplan-Meier) against predicted survival of the test accounts.
    Right: the mean predicted survival curve of today's accounts, by segment when known."""
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    check, today = figure.subplots(1, 2)
    curve = result.test_curve
    check.step(
        curve["months"],
        curve["kaplan_meier"],
        where="post",
        color="black",
        label="observed (Kaplan-Meier)",
    )
    check.plot(curve["months"], curve["predicted"], color="#C44E52", label="predicted (mean)")
    check.set_title(
        f"Test: accounts at {result.cutoff:%Y-%m-%d}, C-index {result.concordance:.2f}",
        fontsize=10,
    )
    check.set_xlabel("Months after the test origin")
    check.set_ylabel("Share still a customer")
    check.legend(fontsize=8)
    months = np.array(result.curves.columns, dtype=float)
    groups = {"all accounts": result.curves}
    if segments is not None and len(segments):
        lookup = segments.set_index(JOIN_KEY)["segment_name"]
        names = lookup.reindex(result.curves.index).fillna("unsegmented")
        named = {f"{name}" for name in names}
        groups |= {name: result.curves.loc[(names == name).to_numpy()] for name in sorted(named)}
    for name, rows in groups.items():
        bold = name == "all accounts"
        today.plot(
            months,
            rows.mean().to_numpy(),
            lw=2.5 if bold else 1.4,
            color="black" if bold else None,
            label=f"{name} ({len(rows)})",
        )
    today.set_title("Predicted survival of today's accounts", fontsize=10)
    today.set_xlabel("Months from today")
    today.set_ylabel("Probability still a customer")
    today.legend(fontsize=7)
    for ax in (check, today):
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    return figure
