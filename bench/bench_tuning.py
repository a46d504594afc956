"""Hyperparameter tuning: Optuna's median pruner against no pruning, and MLflow's cost per trial.

A simulated company (the demo's size by default) goes through ingest and the feature store in a
scratch ``CSA_HOME``, and its point-in-time training set is read once. Then, on the same
windows and with the same number of trials and sampler seed:

1. pruning: ``train_model(..., register=False)`` without pruning (the baseline) and with it
   (ours). Reported for each: the tuning's wall and CPU seconds, the boosting rounds its trials
   trained, its best tuning-window ROC AUC and the final model's test ROC AUC. Ratio = pruned
   tuning seconds / unpruned; the goal is at most 0.5 with a best tuning AUC no more than 0.002
   below the unpruned one. The cores are shared: XGBoost's two threads slow down many times over
   when another process takes a core, so the kinds of run take turns ``--repeats`` times and
   each kind's fastest run counts. The rounds trained, identical in every repeat, are the
   measure of work that no other load moves.
2. tracking: ``train_model`` with ``register=True`` (ours: the study in an Optuna journal file,
   one MLflow run per trial, artifacts, the registered model) against ``register=False`` (the
   baseline: study in memory, nothing logged), at the same settings, written to
   ``tuning_tracking.json``. The headline is (tracked - untracked) seconds / trials. Because a
   difference of two totals carries all the machine's other load, the parts are also timed
   directly: Optuna's ``report``/``should_prune`` calls (the journal is read and appended on
   every boosting round), MLflow's nested trial runs, and the rest of MLflow's step (plots,
   model logging, registry), which is paid once per training, not per trial.

Run: ``python bench/bench_tuning.py [--trials 20] [--model churn] [--max-rounds N]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import xgboost as xgb
from mlflow import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report
from simulated_company import DEFAULT_ACCOUNTS, DEFAULT_DAYS, DEFAULT_SEED, build_company

from csa.settings import Settings
from csa.training import LabelledTable, feature_store_table, train_model
from csa.training import trainer as trainer_module
from csa.training import tuning as tuning_module

SPEED_GOAL = 0.5  # pruned / unpruned tuning seconds, at most
AUC_TOLERANCE = 0.002  # best tuning AUC the pruned search may lose


@dataclass
class Timing:
    """Seconds spent inside wrapped functions during one training, and the pruner it used."""

    tuning_wall: float = 0.0
    tuning_cpu: float = 0.0
    tracking: float = 0.0  # the trainer's whole MLflow step
    trial_runs: float = 0.0  # of it, the nested run of each trial
    study_calls: float = 0.0  # in Optuna's report and should_prune: the study storage's cost
    pruner: str = ""
    rounds: int = 0  # boosting rounds the trials trained: the work, whatever the load


class _RoundCounter(xgb.callback.TrainingCallback):
    """Counts the boosting rounds of every fit while ``counting`` is set."""

    def __init__(self, timing: Timing) -> None:
        super().__init__()
        self.timing = timing
        self.counting = False

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        self.timing.rounds += self.counting
        return False


# What a wrapper reports: wall seconds, CPU seconds, the result, positional and keyword args.
Observer = Callable[[float, float, Any, tuple[Any, ...], dict[str, Any]], None]


def _describe(pruner: Any) -> str:
    if isinstance(pruner, optuna.pruners.NopPruner):
        return "NopPruner()"
    fields = ("percentile", "n_startup_trials", "n_warmup_steps", "interval_steps")
    known = {f: getattr(pruner, f"_{f}") for f in fields if hasattr(pruner, f"_{f}")}
    return f"{type(pruner).__name__}({', '.join(f'{k}={v}' for k, v in known.items())})"


@contextmanager
def timed_training() -> Iterator[Timing]:
    """Wrap the trainer's tuning and tracking steps and MLflow's run calls with timers.

    Nothing else changes: each wrapper calls the original and adds up its time.
    """
    timing = Timing()
    children: set[str] = set()
    originals: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, observe: Observer) -> None:
        original = getattr(owner, name)
        originals.append((owner, name, original))

        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            result = original(*args, **kwargs)
            observe(time.perf_counter() - wall, time.process_time() - cpu, result, args, kwargs)
            return result

        setattr(owner, name, timed)

    def on_track(wall: float, cpu: float, result: Any, args: tuple, kwargs: dict) -> None:
        timing.tracking += wall

    def on_study(wall: float, cpu: float, result: Any, args: tuple, kwargs: dict) -> None:
        timing.pruner = _describe(result.pruner)

    def on_study_call(wall: float, cpu: float, result: Any, args: tuple, kwargs: dict) -> None:
        timing.study_calls += wall

    def on_create_run(wall: float, cpu: float, result: Any, args: tuple, kwargs: dict) -> None:
        if "mlflow.parentRunId" in (kwargs.get("tags") or {}):
            children.add(result.info.run_id)
            timing.trial_runs += wall

    def on_run_call(wall: float, cpu: float, result: Any, args: tuple, kwargs: dict) -> None:
        # Called as client.method(run_id, ...): args[0] is the client.
        run_id = args[1] if len(args) > 1 else kwargs.get("run_id")
        if run_id in children:
            timing.trial_runs += wall

    # The tuning step: its time, and the rounds its fits train (the counter goes first among
    # a fit's callbacks, so that the round a pruning callback stops still counts).
    counter = _RoundCounter(timing)
    fit, tune = xgb.train, trainer_module.tune

    def counted_fit(*args: Any, callbacks: list[Any] | None = None, **kwargs: Any) -> Any:
        return fit(*args, callbacks=[counter, *(callbacks or [])], **kwargs)

    def timed_tune(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        counter.counting = True
        try:
            return tune(*args, **kwargs)
        finally:
            counter.counting = False
            timing.tuning_wall += time.perf_counter() - wall
            timing.tuning_cpu += time.process_time() - cpu

    originals += [(tuning_module.xgb, "train", fit), (trainer_module, "tune", tune)]
    tuning_module.xgb.train = counted_fit
    trainer_module.tune = timed_tune
    wrap(trainer_module, "_track", on_track)
    wrap(tuning_module.optuna, "create_study", on_study)
    wrap(optuna.trial.Trial, "report", on_study_call)
    wrap(optuna.trial.Trial, "should_prune", on_study_call)
    wrap(MlflowClient, "create_run", on_create_run)
    wrap(MlflowClient, "log_batch", on_run_call)
    wrap(MlflowClient, "set_terminated", on_run_call)
    try:
        yield timing
    finally:
        for owner, name, original in reversed(originals):
            setattr(owner, name, original)


@dataclass
class Run:
    """One training's figures."""

    seconds: float
    timing: Timing
    trials: int
    pruned: int
    best_tune_auc: float
    best_rounds: int
    longest_complete_trial_rounds: int
    test_roc_auc: float

    def figures(self) -> dict[str, Any]:
        return {
            "tuning_seconds": round(self.timing.tuning_wall, 1),
            "tuning_cpu_seconds": round(self.timing.tuning_cpu, 1),
            "tuning_rounds_trained": self.timing.rounds,
            "training_seconds": round(self.seconds, 1),
            "trials": self.trials,
            "pruned_trials": self.pruned,
            "best_tune_roc_auc": round(self.best_tune_auc, 4),
            "best_rounds": self.best_rounds,
            "longest_complete_trial_rounds": self.longest_complete_trial_rounds,
            "test_roc_auc": round(self.test_roc_auc, 4),
        }


def train(
    settings: Settings,
    model: str,
    table: LabelledTable,
    trials: int,
    pruning: bool,
    register: bool,
) -> Run:
    with timed_training() as timing:
        started = time.perf_counter()
        result = train_model(
            settings, model, table=table, trials=trials, pruning=pruning, register=register
        )
        seconds = time.perf_counter() - started
    complete = [t.rounds for t in result.tuning.trials if t.state == "COMPLETE"]
    stop_after = settings.training.early_stopping_rounds
    return Run(
        seconds=seconds,
        timing=timing,
        trials=len(result.tuning.trials),
        pruned=result.tuning.pruned,
        best_tune_auc=result.tuning.tune_auc,
        best_rounds=result.tuning.rounds,
        # A complete trial ran to its best round plus the early-stopping patience (or the cap).
        longest_complete_trial_rounds=min(
            max(complete, default=0) + stop_after, settings.training.max_rounds
        ),
        test_roc_auc=float(result.metrics["roc_auc"]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=DEFAULT_ACCOUNTS)
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--model", default="churn", choices=["churn", "expansion"])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--max-rounds", type=int, default=None, help="[training.max_rounds]")
    parser.add_argument("--skip-tracking", action="store_true", help="only compare pruning")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each kind; the fastest of each counts"
    )
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    with tempfile.TemporaryDirectory() as folder:
        print(f"simulating {args.accounts:,} accounts over {args.days} days ...")
        settings, _ = build_company(Path(folder), args.accounts, args.days, args.seed)
        if args.max_rounds is not None:
            settings.training.max_rounds = args.max_rounds
        table = feature_store_table(settings, args.model)
        # The kinds take turns, so that a burst of other load on the shared cores hits them
        # alike; each kind's fastest run is the least disturbed one.
        runs: dict[str, list[Run]] = {"unpruned": [], "pruned": [], "tracked": []}
        kinds = [
            ("unpruned", False, False),
            ("pruned", True, False),
            *([] if args.skip_tracking else [("tracked", True, True)]),
        ]
        for repeat in range(1, args.repeats + 1):
            for kind, pruning, register in kinds:
                run = train(settings, args.model, table, args.trials, pruning, register)
                runs[kind].append(run)
                print(
                    f"  run {repeat}/{args.repeats} {kind:8s}: tuning "
                    f"{run.timing.tuning_wall:6.1f} s, training {run.seconds:6.1f} s, "
                    f"{run.timing.rounds} rounds, "
                    f"{run.pruned} of {run.trials} trials pruned"
                )
        max_rounds = settings.training.max_rounds

    for kind, done in runs.items():
        # Same data, seeds and settings: every repeat must make the same search.
        searches = {(r.timing.rounds, r.best_tune_auc, r.test_roc_auc) for r in done}
        if len(searches) > 1:
            print(f"  WARNING: the {kind} runs made different searches: {sorted(searches)}")
    unpruned = min(runs["unpruned"], key=lambda r: r.timing.tuning_wall)
    pruned = min(runs["pruned"], key=lambda r: r.timing.tuning_wall)
    tracked = min(runs["tracked"], key=lambda r: r.seconds) if runs["tracked"] else None

    # Pruning
    ratio = pruned.timing.tuning_wall / unpruned.timing.tuning_wall
    cpu_ratio = pruned.timing.tuning_cpu / unpruned.timing.tuning_cpu
    rounds_ratio = pruned.timing.rounds / unpruned.timing.rounds
    auc_loss = unpruned.best_tune_auc - pruned.best_tune_auc
    speed_met, auc_met = ratio <= SPEED_GOAL, auc_loss <= AUC_TOLERANCE
    report(
        "tuning",
        {"name": f"Optuna TPE + {pruned.timing.pruner}", **pruned.figures()},
        {"name": "Optuna TPE, no pruning (NopPruner)", **unpruned.figures()},
        ratio,
        f"pruned / unpruned tuning wall seconds; goal at most {SPEED_GOAL:g}",
        {
            "model": args.model,
            "accounts": args.accounts,
            "days": args.days,
            "max_rounds": max_rounds,
            "early_stopping_rounds": settings.training.early_stopping_rounds,
            "training_rows": len(table.frame),
            "repeats": args.repeats,
            "tuning_seconds_of_each_run": {
                kind: [round(r.timing.tuning_wall, 1) for r in runs[kind]]
                for kind in ("unpruned", "pruned")
            },
            "cpu_ratio": round(cpu_ratio, 3),
            "rounds_ratio": round(rounds_ratio, 3),
            "best_tune_auc_loss": round(auc_loss, 4),
            "goal_speed_met": speed_met,
            "goal_auc_met": auc_met,
        },
    )
    print(
        f"  work:     pruned / unpruned tuning CPU seconds {cpu_ratio:.2f}, boosting rounds "
        f"trained {rounds_ratio:.2f} ({pruned.timing.rounds} / {unpruned.timing.rounds}); "
        "the rounds do not depend on the machine's other load, the seconds do"
    )
    print(
        f"  goals:    time at most {SPEED_GOAL:g}x: {'met' if speed_met else 'MISSED'} "
        f"({ratio:.3f}); best tuning AUC within {AUC_TOLERANCE:g}: "
        f"{'met' if auc_met else 'MISSED'} ({pruned.best_tune_auc:.4f} vs "
        f"{unpruned.best_tune_auc:.4f}); both: {'met' if speed_met and auc_met else 'NOT met'}"
    )
    longest = max(unpruned.longest_complete_trial_rounds, pruned.longest_complete_trial_rounds)
    if longest < max_rounds:
        print(
            f"  note:     no complete trial ran past round {longest} of max_rounds {max_rounds}: "
            "early stopping, not the round cap, ends trials, so a larger max_rounds "
            "changes nothing here"
        )
    if tracked is None:
        return

    # Tracking, against the fastest untracked training as a whole
    untracked = min(runs["pruned"], key=lambda r: r.seconds)
    overhead = (tracked.seconds - untracked.seconds) / tracked.trials
    # Timed directly, so other load on the machine does not enter as a difference of totals.
    journal = tracked.timing.study_calls - untracked.timing.study_calls
    direct = (tracked.timing.tracking + journal) / tracked.trials
    report(
        "tuning_tracking",
        {
            "name": "train_model(register=True): Optuna journal, MLflow runs, registry",
            "training_seconds": round(tracked.seconds, 1),
            "tuning_seconds": round(tracked.timing.tuning_wall, 1),
            "study_storage_seconds": round(tracked.timing.study_calls, 2),
            "mlflow_seconds": round(tracked.timing.tracking, 2),
            "mlflow_trial_run_seconds": round(tracked.timing.trial_runs, 2),
            "trials": tracked.trials,
            "tuning_rounds_trained": tracked.timing.rounds,
        },
        {
            "name": "train_model(register=False): nothing tracked, study in memory",
            "training_seconds": round(untracked.seconds, 1),
            "tuning_seconds": round(untracked.timing.tuning_wall, 1),
            "study_storage_seconds": round(untracked.timing.study_calls, 2),
            "trials": untracked.trials,
            "tuning_rounds_trained": untracked.timing.rounds,
        },
        tracked.seconds / untracked.seconds,
        "tracked / untracked training seconds",
        {
            "model": args.model,
            "overhead_seconds_per_trial": round(overhead, 3),
            "overhead_seconds_per_trial_timed_directly": round(direct, 3),
            "journal_seconds_per_trial": round(journal / tracked.trials, 3),
            "mlflow_trial_run_seconds_per_trial": round(
                tracked.timing.trial_runs / tracked.trials, 4
            ),
            "mlflow_once_per_training_seconds": round(
                tracked.timing.tracking - tracked.timing.trial_runs, 2
            ),
        },
    )
    print(
        f"  overhead: {overhead:.3f} s per trial ((tracked - untracked) / {tracked.trials}); "
        f"timed directly {direct:.3f} s: the Optuna journal "
        f"{journal / tracked.trials:.3f} s and MLflow's nested run "
        f"{tracked.timing.trial_runs / tracked.trials:.3f} s per trial, plus "
        f"{tracked.timing.tracking - tracked.timing.trial_runs:.1f} s of MLflow once per "
        "training (plots, artifacts, model, registry)"
    )


if __name__ == "__main__":
    main()
