"""``csa monitor``: one monitoring pass per model, and the loop that repeats it.

A pass reads the newest ``consecutive_windows`` windows of snapshots, judges each against the
champion's reference, decides by the policy, retrains when asked and due (train a challenger on
the feature store as it is now, which holds the new behaviour, then run the promotion gate), and
records the decision with its reason three times: in the audit log (``monitoring``), as an
MLflow run of the ``csa-monitoring`` experiment with the window's metrics, and as tags on the
champion's registry version. The drift report goes into the Evidently workspace. A promoted
challenger is served within ``serving.reload_seconds``, since the service follows the
registry's champion.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from csa.audit import append_record, read_records
from csa.errors import ConfigError
from csa.monitoring import judgement
from csa.monitoring.judgement import (
    Decision,
    WindowVerdict,
    attach_history,
    decide,
    judge_window,
)
from csa.monitoring.policy import DriftPolicy
from csa.monitoring.reference import PREDICTION, Reference, champion_reference
from csa.monitoring.windows import cut_windows, newest_snapshot, snapshot_rows
from csa.settings import Settings

logger = logging.getLogger(__name__)

AUDIT_KIND = "monitoring"
EXPERIMENT = "csa-monitoring"


@dataclass
class ModelReport:
    """One model's pass: the windows, the decision and what was done about it."""

    model: str
    champion_version: str | None
    decision: str
    reason: str
    windows: list[WindowVerdict] = field(default_factory=list)
    retraining: dict[str, Any] | None = None
    dashboard: dict[str, Any] | None = None
    skew: dict[str, Any] | None = None
    seconds: float = 0.0

    @property
    def drift_detected(self) -> bool:
        return bool(self.windows) and self.windows[0].drifted

    @property
    def drifted_features(self) -> list[str]:
        return self.windows[0].drifted_features if self.windows else []

    def to_dict(self) -> dict[str, Any]:
        """The per-model entry of ``--report``'s JSON."""
        return {
            "model": self.model,
            "champion_version": self.champion_version,
            "drift_detected": self.drift_detected,
            "drifted_features": self.drifted_features,
            "decision": self.decision,
            "reason": self.reason,
            "windows": [w.to_dict() for w in self.windows],
            "retraining": self.retraining,
            "dashboard": self.dashboard,
            "skew": self.skew,
            "seconds": round(self.seconds, 2),
        }


def monitor(
    settings: Settings,
    policy: DriftPolicy,
    retrain: bool = False,
    as_of: pd.Timestamp | None = None,
    models: list[str] | None = None,
    dashboard: bool = True,
) -> dict[str, ModelReport]:
    """One pass over ``models`` (default the policy's), each judged and decided.

    Args:
        retrain: act on a breach (train, gate, promote); otherwise only recommend.
        as_of: judge the windows ending then instead of at the newest snapshot (a replay).
        dashboard: store the Evidently report of the newest window.

    Raises:
        ConfigError: ``retrain`` with an ``as_of`` before the newest snapshot (a retraining
            would learn from data after it).
        LakeError: the feature store was not built.
    """
    newest = newest_snapshot(settings)
    end = newest if as_of is None else min(_utc(as_of), newest)
    if retrain and end < newest:
        raise ConfigError(
            f"--retrain with --as-of {end.date()} would train on snapshots up to "
            f"{newest.date()}; replay without --retrain, or leave --as-of out."
        )
    return {
        model: monitor_model(settings, policy, model, end, retrain, dashboard)
        for model in (models or policy.models)
    }


def monitor_model(
    settings: Settings,
    policy: DriftPolicy,
    model: str,
    end: pd.Timestamp,
    retrain: bool = False,
    dashboard: bool = True,
) -> ModelReport:
    """Judge ``model``'s newest windows up to ``end`` and act on the policy's decision."""
    from csa.training import registry

    started = time.perf_counter()
    name = registry.registered_name(model)
    version = registry.aliases_of(settings, name).get(registry.CHAMPION)
    if version is None:
        report = ModelReport(
            model,
            None,
            judgement.NO_CHAMPION,
            f"{name} has no champion to monitor; train and promote one first",
        )
        return _record(settings, report, end)

    # Windows against the champion's reference
    reference = champion_reference(settings, model, version)
    champion = registry.load_version(settings, name, version)
    if reference.history_window_days != policy.window_days:
        _measure_history(settings, reference, champion, policy)
    days, count = policy.window_days, policy.consecutive_windows
    horizon = pd.Timedelta(days=settings.features.horizon_days)
    frame = snapshot_rows(settings, model, end - horizon - pd.Timedelta(days=days * count), end)
    if len(frame):
        frame[PREDICTION] = champion.predict(frame)
    windows = cut_windows(frame, end, days, count)
    # Quality is judged a horizon back, on the newest windows whose labels have all matured.
    labelled = cut_windows(frame, end - horizon, days, count)
    verdicts = [
        judge_window(reference, window, policy, seed=k, labelled=labelled[k])
        for k, window in enumerate(windows)
    ]
    decision = decide(verdicts, policy, _last_retraining_end(settings, model), retrain)
    report = ModelReport(model, version, decision.decision, decision.reason, verdicts)
    logger.info(
        "monitor %s (champion %s): %d rows in the newest window, %s",
        model,
        version,
        verdicts[0].rows,
        decision.decision,
    )

    # The dashboard's report of the newest window
    if dashboard and verdicts[0].judged:
        try:
            report.dashboard = _dashboard(
                settings, reference, windows[0].frame, policy, end, decision
            )
        except Exception as exc:  # the dashboard is a view; the decision stands without it
            logger.warning("the Evidently report of csa-%s was not stored: %s", model, exc)

    # Training/serving skew of what the service logged
    try:
        from csa.monitoring.skew import skew_report

        report.skew = skew_report(settings, model)
    except Exception as exc:  # a report of its own; the drift decision does not depend on it
        logger.warning("the skew report of csa-%s failed: %s", model, exc)

    # Acting on a breach
    if decision.decision == judgement.RETRAIN_DUE:
        report.decision, report.reason, report.retraining = _retrain(
            settings, policy, model, decision
        )
    report.seconds = time.perf_counter() - started
    return _record(settings, report, end)


def _measure_history(
    settings: Settings, reference: Reference, champion: Any, policy: DriftPolicy
) -> None:
    # Once per champion and window length: the reference is cached for the process.
    start, known_until = reference.end, reference.known_until
    rows = pd.DataFrame()
    if start is not None and known_until is not None and known_until > start:
        rows = snapshot_rows(settings, reference.model, start, known_until)
        if len(rows):
            rows[PREDICTION] = champion.predict(rows)
    attach_history(reference, rows, policy)
    if reference.history:
        logger.info(
            "csa-%s version %s: its test windows up to %s measured as the company's history",
            reference.model,
            reference.version,
            known_until.date() if known_until is not None else "?",
        )
    else:
        logger.info(
            "csa-%s version %s: no test window after its reference to measure; drift is "
            "weighed by the split-half noise alone",
            reference.model,
            reference.version,
        )


def _dashboard(
    settings: Settings,
    reference: Any,
    current: pd.DataFrame,
    policy: DriftPolicy,
    end: pd.Timestamp,
    decision: Decision,
) -> dict[str, Any]:
    from csa.monitoring.dashboard import record_report

    return record_report(settings, reference, current, policy, end, {"decision": decision.decision})


def _retrain(
    settings: Settings, policy: DriftPolicy, model: str, decision: Decision
) -> tuple[str, str, dict[str, Any]]:
    """Train a challenger on the feature store as it is now, then run the promotion gate."""
    from csa.training import train_model
    from csa.training.promotion import promote

    logger.info("monitor %s: retraining (%s)", model, decision.reason)
    result = train_model(settings, model, trials=policy.retrain.trials)
    gate = promote(settings, model, result.version)
    outcome = judgement.RETRAINED_PROMOTED if gate.promoted else judgement.RETRAINED_REFUSED
    verdict = "promoted" if gate.promoted else "refused by the gate"
    reason = f"{decision.reason}. Retrained version {result.version}, {verdict}: {gate.reason}"
    details = {
        "challenger_version": result.version,
        "promoted": gate.promoted,
        "gate_reason": gate.reason,
        "test_roc_auc": round(result.metrics["roc_auc"], 4),
        "gate_metrics": gate.metrics,
        "training_windows": result.windows,
    }
    return outcome, reason, details


def _last_retraining_end(settings: Settings, model: str) -> pd.Timestamp | None:
    """The window end of the newest pass that retrained ``model``, from the audit log."""
    ends = [
        pd.Timestamp(record["window_end"])
        for record in read_records(settings, AUDIT_KIND)
        if record.get("model") == model
        and str(record.get("decision", "")).startswith("retrained")
        and record.get("window_end")
    ]
    return max(ends) if ends else None


def _record(settings: Settings, report: ModelReport, end: pd.Timestamp) -> ModelReport:
    """Audit record, MLflow run and registry tags of one decision."""

    newest = report.windows[0] if report.windows else None
    record = {
        "model": report.model,
        "champion_version": report.champion_version,
        "decision": report.decision,
        "reason": report.reason,
        "window_end": end.isoformat(),
        "drift_detected": report.drift_detected,
        "drifted_features": report.drifted_features,
        "drifted_share": None if newest is None else round(newest.drifted_share, 4),
        "windows": [
            {"end": w.end.isoformat(), "rows": w.rows, "drifted": w.drifted} for w in report.windows
        ],
        "retraining": report.retraining,
    }
    stamped = append_record(settings, AUDIT_KIND, record)
    try:
        _track(settings, report, newest, stamped)
    except Exception as exc:  # the audit log already holds the decision
        logger.warning("the decision for csa-%s was not tagged in MLflow: %s", report.model, exc)
    return report


def _track(
    settings: Settings,
    report: ModelReport,
    newest: WindowVerdict | None,
    stamped: dict[str, Any],
) -> None:
    from mlflow.entities import Metric, RunTag

    from csa.training import registry

    client = registry.client(settings)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        location = settings.mlflow_artifacts_dir.resolve().as_uri()
        experiment_id = client.create_experiment(EXPERIMENT, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    tags = {
        "csa.model": report.model,
        "csa.champion_version": str(report.champion_version),
        "csa.decision": report.decision,
        "csa.reason": report.reason[:4900],
        "csa.window_end": stamped["window_end"],
        "csa.drifted_features": ", ".join(report.drifted_features)[:4900],
    }
    run = client.create_run(experiment_id, run_name=f"monitor-{report.model}", tags=tags)
    now = int(time.time() * 1000)
    metrics = {"drift_detected": float(report.drift_detected)}
    if newest is not None and newest.judged:
        metrics["drifted_share"] = newest.drifted_share
        metrics["window_rows"] = float(newest.rows)
        metrics["drifted_features"] = float(len(newest.drifted_features))
        if newest.prediction is not None:
            metrics["prediction_drift"] = newest.prediction.score
        for key in ("roc_auc", "ece"):
            if newest.quality and key in newest.quality:
                metrics[key] = float(newest.quality[key])
        for drift in newest.features:
            metrics[f"drift.{drift.feature}"] = drift.score
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if np.isfinite(v)],
        tags=[RunTag("csa.audit_at", stamped["at"])],
    )
    client.set_terminated(run.info.run_id, "FINISHED")
    if report.champion_version is None:
        return
    name = registry.registered_name(report.model)
    key = "csa.monitor." + stamped["at"].replace(":", "").replace("+", "Z").split(".")[0]
    summary = json.dumps({k: stamped[k] for k in ("decision", "reason", "window_end")})[:4900]
    registry.set_version_tags(
        settings,
        name,
        report.champion_version,
        {key: summary, "csa.monitor.last_decision": report.decision},
    )


def run_every(run_pass: Callable[[], Any], seconds: float, stop: threading.Event) -> int:
    """Run ``run_pass`` now and every ``seconds`` until ``stop`` is set; return the passes run.

    A pass in progress always completes: ``stop`` is checked between passes and while waiting.
    """
    passes = 0
    while not stop.is_set():
        run_pass()
        passes += 1
        stop.wait(seconds)
    return passes


def parse_every(text: str) -> float:
    """Seconds in ``30s``, ``15m``, ``1h`` or ``1d``.

    Raises:
        ConfigError: another form, or not positive.
    """
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value, unit = text[:-1], text[-1:].lower()
    try:
        seconds = float(value) * units[unit]
    except (KeyError, ValueError):
        raise ConfigError(
            f"--every {text!r} is not an interval; write a number and a unit: 30s, 15m, 1h, 1d."
        ) from None
    if seconds <= 0:
        raise ConfigError(f"--every {text!r} must be longer than zero.")
    return seconds


def _utc(value: pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
