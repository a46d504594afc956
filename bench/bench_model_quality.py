"""Model quality against an oracle: the tuned models' test ROC AUC over the ground truth's.

A simulated company (the demo's size by default) goes through ingest and the feature store in a
scratch ``CSA_HOME``; ``train_model`` then trains churn and expansion exactly as ``csa train``
does (without registering) and returns its test window's predictions. The baseline is an
oracle that reads the simulator's ground truth: for each of the same rows (account, snapshot)
it computes the probability of the event within the horizon from the hazards the simulator
really applied on the days after the snapshot. It knows the future latent state, so no model
that sees only the snapshot can match it; a model that beats it has seen its label.

How the simulator applies its hazards (``csa/ingestion/simulator/history.py`` and
``lifecycle.py``), and so what the oracle multiplies:

- ``churn_hazard`` in ``daily-c*.parquet`` is computed every day an account is a customer, but
  it is the probability of cancelling *at a decision point*: a monthly plan's monthly billing
  anniversary (not the signup day itself), an annual plan's yearly renewal. On other days it is
  not drawn against at all. A cancellation takes effect at 00:00 of its day, and the snapshot at
  midnight of day D exists only if the account had not left by then, so the label covers
  decision days D+1 .. D+H: P(churn) = 1 - prod(1 - h_d) over those decision days.
- ``expansion_hazard`` is drawn on every monthly anniversary, by monthly and annual plans alike,
  and only by an account that neither cancelled nor contracted that day (contraction is drawn
  at decision points with ``contraction_chance`` of the day's health and of the morning's seat
  utilisation, i.e. the previous day's users over seats). An expansion happens during the
  working day, after the snapshot's midnight, so the label covers days D .. D+H-1:
  P(expansion) = 1 - prod(1 - g_d (1 - h_d [decision]) (1 - c_d [decision])) over anniversaries.

Before comparing, the ground truth's own outcomes (churn date, expansion events) are turned
into labels over the same windows and checked against the feature store's labels row by row,
which confirms that the days line up.
Run: ``python bench/bench_model_quality.py [--accounts 300] [--days 730] [--trials N]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report
from simulated_company import DEFAULT_ACCOUNTS, DEFAULT_DAYS, DEFAULT_SEED, build_company

from csa.ingestion.simulator.lifecycle import Signals, contraction_chance
from csa.ingestion.simulator.timeline import Timeline
from csa.training import train_model

GOAL = 0.9  # model ROC AUC / oracle ROC AUC, at least
NEVER = np.iinfo(np.int64).max


@dataclass
class GroundTruth:
    """The simulator's daily hazards and outcomes as dense (account, day) arrays."""

    start: dt.date
    days: int
    index: dict[str, int]  # account id -> row of the arrays
    churn_day: np.ndarray  # NEVER for an account that stayed
    expansion_days: list[np.ndarray]  # per account, the days it expanded
    churn_survival: np.ndarray  # (accounts, days + 1): cumulative log(1 - churn draw)
    expansion_survival: np.ndarray  # (accounts, days + 1): cumulative log(1 - expansion)
    # For the oracle that knows only the snapshot day's hazards: those hazards per day, and
    # cumulative counts of the anniversaries and decision points the calendar schedules.
    churn_hazard: np.ndarray
    expansion_hazard: np.ndarray
    contraction: np.ndarray
    scheduled_anniversaries: np.ndarray  # (accounts, days + 1)
    scheduled_decisions: np.ndarray  # (accounts, days + 1)

    def day_of(self, instants: pd.Series) -> np.ndarray:
        """Day indices of snapshot instants, which are UTC midnights."""
        times = pd.to_datetime(instants, utc=True)
        if (times != times.dt.floor("D")).any():
            raise ValueError("snapshot times are not UTC midnights; the oracle's days assume so")
        start = pd.Timestamp(self.start, tz="UTC")
        return ((times - start) // pd.Timedelta(days=1)).to_numpy(dtype=np.int64)


def load_ground_truth(raw_dir: Path) -> GroundTruth:
    """Read ``<raw>/ground_truth`` into per-account, per-day arrays of what was drawn."""
    folder = raw_dir / "ground_truth"
    scenario = json.loads((folder / "scenario.json").read_text())
    start, days = dt.date.fromisoformat(scenario["start"]), int(scenario["days"])
    accounts = pd.read_parquet(folder / "accounts.parquet")
    daily = pd.concat(
        [pd.read_parquet(path) for path in sorted(folder.glob("daily-c*.parquet"))],
        ignore_index=True,
    )
    events = pd.read_parquet(folder / "events.parquet")

    # Accounts: billing anchors come from the signup date, as in the simulator's company.py
    ids = accounts["account_id"].astype(str).tolist()
    index = {account: row for row, account in enumerate(ids)}
    signup = pd.to_datetime(accounts["signup_date"])
    first = pd.Timestamp(start)
    signup_day = ((signup - first) // pd.Timedelta(days=1)).to_numpy(dtype=np.int64)
    anchor_day = signup.dt.day.to_numpy(dtype=np.int64)
    anchor_month = signup.dt.month.to_numpy(dtype=np.int64)
    annual = (accounts["billing_period"] == "annual").to_numpy()
    churned = pd.to_datetime(accounts["churn_date"])
    churn_day = np.full(len(ids), NEVER, dtype=np.int64)
    left = churned.notna().to_numpy()
    churn_day[left] = ((churned[left] - first) // pd.Timedelta(days=1)).to_numpy(np.int64)

    # Daily arrays
    shape = (len(ids), days)
    rows = daily["account_id"].astype(str).map(index).to_numpy(dtype=np.int64)
    cols = ((pd.to_datetime(daily["date"]) - first) // pd.Timedelta(days=1)).to_numpy(np.int64)
    arrays = {}
    for name in ("churn_hazard", "expansion_hazard", "health", "users", "seats"):
        values = np.zeros(shape)
        values[rows, cols] = daily[name].to_numpy(dtype=np.float64)
        arrays[name] = values

    # Which days draw what: anniversaries, and decision points among them
    timeline = Timeline(start, days)
    day_numbers = np.arange(days)
    alive = (day_numbers[None, :] >= signup_day[:, None]) & (
        day_numbers[None, :] <= churn_day[:, None]
    )
    scheduled = np.zeros(shape, dtype=bool)
    for day in range(days):
        scheduled[:, day] = timeline.is_anniversary(anchor_day, day)
    scheduled &= day_numbers[None, :] > signup_day[:, None]
    renewal_month = timeline.month[None, :] == anchor_month[:, None]
    scheduled_decisions = scheduled & (~annual[:, None] | renewal_month)
    anniversary = scheduled & alive
    deciding = scheduled_decisions & alive

    # The morning's utilisation is yesterday's users over yesterday's seats
    users = np.concatenate([arrays["users"][:, :1], arrays["users"][:, :-1]], axis=1)
    seats = np.concatenate([arrays["seats"][:, :1], arrays["seats"][:, :-1]], axis=1)
    zeros = np.zeros(shape)
    contraction = contraction_chance(
        Signals(
            health=arrays["health"],
            usage_trend=zeros,
            utilisation=users / np.maximum(seats, 1.0),
            unhappy_tickets=zeros,
            detractor=zeros,
            failed_payments=zeros,
            delinquent=zeros,
        )
    )
    churn_draw = np.where(deciding, arrays["churn_hazard"], 0.0)
    contraction_draw = np.where(deciding, contraction, 0.0)
    expansion_draw = np.where(
        anniversary,
        arrays["expansion_hazard"] * (1.0 - churn_draw) * (1.0 - contraction_draw),
        0.0,
    )

    expansion_events = events.loc[events["kind"] == "expansion"]
    expansion_day = (pd.to_datetime(expansion_events["date"]) - first) // pd.Timedelta(days=1)
    by_account = expansion_day.groupby(expansion_events["account_id"].astype(str)).agg(list)
    return GroundTruth(
        start=start,
        days=days,
        index=index,
        churn_day=churn_day,
        expansion_days=[np.asarray(by_account.get(account, []), dtype=np.int64) for account in ids],
        churn_survival=_cumulative_log_survival(churn_draw),
        expansion_survival=_cumulative_log_survival(expansion_draw),
        churn_hazard=arrays["churn_hazard"],
        expansion_hazard=arrays["expansion_hazard"],
        contraction=contraction,
        scheduled_anniversaries=_cumulative_count(scheduled),
        scheduled_decisions=_cumulative_count(scheduled_decisions),
    )


def _cumulative_count(flags: np.ndarray) -> np.ndarray:
    """Column k holds how many flags are set before day k."""
    counts = np.cumsum(flags, axis=1, dtype=np.int64)
    return np.concatenate([np.zeros((len(flags), 1), dtype=np.int64), counts], axis=1)


def _cumulative_log_survival(draw: np.ndarray) -> np.ndarray:
    """Column k holds the sum of log(1 - p) over days before k (a leading zero column)."""
    logs = np.log1p(-np.clip(draw, 0.0, 1.0 - 1e-12))
    return np.concatenate([np.zeros((len(draw), 1)), np.cumsum(logs, axis=1)], axis=1)


@dataclass
class OracleScores:
    """Per prediction row: both oracles' probabilities and the ground truth's own label."""

    future: np.ndarray  # from the hazards really drawn after the snapshot
    present: np.ndarray  # from the snapshot day's hazards, held for the whole horizon
    label: np.ndarray


def oracle(truth: GroundTruth, model: str, predictions: pd.DataFrame, horizon: int) -> OracleScores:
    """The oracles' probabilities and the ground truth's label for each prediction row.

    The present-hazard oracle is a diagnostic: it knows the latent state on the snapshot day
    (no model sees that either) but not how it moves afterwards, so the distance between the
    two oracles is what only knowledge of the future buys.
    """
    rows = predictions["account_id"].astype(str).map(truth.index).to_numpy(dtype=np.int64)
    day = truth.day_of(predictions["as_of"])
    today = np.clip(day, 0, truth.days - 1)
    if model == "churn":
        # Decision days D+1 .. D+H: columns D+1 .. D+H+1 of the cumulative sums
        first, last = day + 1, day + horizon + 1
        survival = truth.churn_survival
        label = (truth.churn_day[rows] >= first) & (truth.churn_day[rows] < last)
    else:
        # Anniversaries D .. D+H-1
        first, last = day, day + horizon
        survival = truth.expansion_survival
        label = np.array(
            [
                bool(((days >= lo) & (days < hi)).any())
                for days, lo, hi in zip(
                    (truth.expansion_days[r] for r in rows), first, last, strict=True
                )
            ]
        )
    first, last = np.clip(first, 0, truth.days), np.clip(last, 0, truth.days)
    future = 1.0 - np.exp(survival[rows, last] - survival[rows, first])

    # The snapshot day's hazards on every draw the calendar schedules in the window
    decisions = truth.scheduled_decisions[rows, last] - truth.scheduled_decisions[rows, first]
    churn = truth.churn_hazard[rows, today]
    if model == "churn":
        present = 1.0 - (1.0 - churn) ** decisions
    else:
        anniversaries = (
            truth.scheduled_anniversaries[rows, last] - truth.scheduled_anniversaries[rows, first]
        )
        growth = truth.expansion_hazard[rows, today]
        at_decision = growth * (1.0 - churn) * (1.0 - truth.contraction[rows, today])
        present = 1.0 - (1.0 - at_decision) ** decisions * (1.0 - growth) ** (
            anniversaries - decisions
        )
    return OracleScores(future=future, present=present, label=label.astype(np.int64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=DEFAULT_ACCOUNTS)
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--trials", type=int, default=None, help="Optuna trials [settings]")
    parser.add_argument("--models", default="churn,expansion")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        print(f"simulating {args.accounts:,} accounts over {args.days} days ...")
        settings, _ = build_company(Path(folder), args.accounts, args.days, args.seed)
        truth = load_ground_truth(settings.raw_dir)
        horizon = settings.features.horizon_days
        for model in args.models.split(","):
            print(f"training {model} ...")
            result = train_model(settings, model, trials=args.trials, register=False)
            predictions = result.predictions
            scores = oracle(truth, model, predictions, horizon)
            label = predictions["label"].to_numpy(dtype=np.int64)
            disagree = int((scores.label != label).sum())
            model_auc = float(result.metrics["roc_auc"])
            oracle_auc = float(roc_auc_score(label, scores.future))
            present_auc = float(roc_auc_score(label, scores.present))
            ratio = model_auc / oracle_auc
            report(
                f"model_quality_{model}",
                {
                    "name": f"train_model({model!r}): tuned, calibrated XGBoost",
                    "test_roc_auc": round(model_auc, 4),
                    "logistic_baseline_roc_auc": round(result.metrics["baseline_roc_auc"], 4),
                },
                {
                    "name": "oracle: 1 - prod(1 - hazard) over the draws after the snapshot",
                    "test_roc_auc": round(oracle_auc, 4),
                    "mean_probability": round(float(scores.future.mean()), 4),
                },
                ratio,
                f"model ROC AUC / oracle ROC AUC; goal at least {GOAL:g}, never above 1",
                {
                    "accounts": args.accounts,
                    "days": args.days,
                    "test_rows": len(predictions),
                    "test_positives": int(label.sum()),
                    "horizon_days": horizon,
                    "test_positive_rate": round(float(label.mean()), 4),
                    "ground_truth_label_mismatches": disagree,
                    "present_hazard_oracle_roc_auc": round(present_auc, 4),
                    "model_over_present_hazard_oracle": round(model_auc / present_auc, 3),
                    "goal": GOAL,
                    "goal_met": GOAL <= ratio <= 1.0,
                },
            )
            print(
                f"  goal:     model / oracle at least {GOAL:g}: "
                f"{'met' if ratio >= GOAL else 'MISSED'}"
            )
            print(
                f"  present:  an oracle with only the snapshot day's hazards (no future) has "
                f"ROC AUC {present_auc:.4f}; the model reaches {model_auc / present_auc:.2f} of it"
            )
            if disagree:
                print(
                    f"  WARNING: {disagree} of {len(label)} feature-store labels differ from the "
                    "ground truth's outcomes over the same days: the oracle's windows are off"
                )
            if model_auc > oracle_auc:
                print(
                    "  " + "!" * 76 + "\n"
                    f"  WARNING: the {model} model ({model_auc:.4f}) beats the oracle "
                    f"({oracle_auc:.4f}), which knows the true future hazards: the model must "
                    "have seen its labels (leakage). Check the windows and the features.\n"
                    "  " + "!" * 76
                )


if __name__ == "__main__":
    main()
