"""``csa promote``: a challenger replaces the champion only if it is better on the same rows.

Both models are scored on the latest labelled test window either of them was evaluated on, so
the comparison is fair even when the champion was trained months ago. The challenger must gain
``gate.min_improvement`` ROC AUC without its calibration error growing by more than
``gate.max_ece_increase``; the first champion needs ``gate.min_roc_auc``. ``--force`` with a
reason overrides the gate. Every decision, promoted or refused, is appended to the audit log
and tagged on the challenger's registry version. Rolling back is promoting an earlier version.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from csa.audit import append_record
from csa.errors import ConfigError, ContractError
from csa.settings import Settings
from csa.training import evaluation, registry
from csa.training.registry import CHALLENGER, CHAMPION, VersionInfo
from csa.training.trainer import TEST_WINDOW_ARTIFACT

logger = logging.getLogger(__name__)

AUDIT_KIND = "promotions"


@dataclass
class Decision:
    """The gate's verdict and the evidence for it."""

    model: str
    candidate: str
    champion: str | None
    promoted: bool
    reason: str
    forced: bool = False
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    window: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)


def promote(
    settings: Settings,
    model: str,
    version: str | None = None,
    force: bool = False,
    reason: str | None = None,
) -> Decision:
    """Run the gate for ``version`` (default: the ``challenger``) of ``csa-<model>``.

    Raises:
        ConfigError: ``--force`` without a reason.
        ModelNotFound: no such version, or no challenger.
    """
    if force and not (reason and reason.strip()):
        raise ConfigError(
            "--force needs --reason TEXT: the audit log records why the gate was overridden."
        )
    name = registry.registered_name(model)
    candidate = registry.resolve_version(settings, name, version or CHALLENGER)
    aliases = registry.aliases_of(settings, name)
    champion_version = aliases.get(CHAMPION)
    champion = (
        registry.resolve_version(settings, name, champion_version) if champion_version else None
    )

    decision = Decision(
        model=model,
        candidate=candidate.version,
        champion=champion.version if champion else None,
        promoted=False,
        reason="",
        forced=force,
    )
    if champion is not None and champion.version == candidate.version:
        decision.reason = f"version {candidate.version} is already the champion"
        return _record(settings, name, decision, reason)

    # Evidence: both models on the newest test window either was evaluated on
    window, window_owner = _latest_window(settings, candidate, champion)
    decision.window = {
        "from_version": window_owner.version,
        "rows": len(window),
    }
    decision.metrics["candidate"] = _evaluate(settings, name, candidate, window)
    if champion is not None:
        try:
            decision.metrics["champion"] = _evaluate(settings, name, champion, window)
        except ContractError as exc:
            decision.metrics.pop("champion", None)
            decision.reason = f"the champion cannot be scored on the candidate's window ({exc})"
            if not force:
                return _record(settings, name, decision, reason)

    # Verdict
    if force:
        decision.promoted = True
        decision.reason = f"forced: {reason}"
    else:
        decision.promoted, decision.reason = _verdict(settings, decision)
    if decision.promoted:
        registry.set_alias(settings, name, CHAMPION, candidate.version)
    return _record(settings, name, decision, reason)


def _verdict(settings: Settings, decision: Decision) -> tuple[bool, str]:
    gate = settings.training.gate
    new = decision.metrics["candidate"]
    if "champion" not in decision.metrics:
        if new["roc_auc"] >= gate.min_roc_auc:
            return True, (
                f"first champion: ROC AUC {new['roc_auc']:.4f} meets the minimum "
                f"{gate.min_roc_auc:g}"
            )
        return False, (
            f"first champion needs ROC AUC >= {gate.min_roc_auc:g}; it has {new['roc_auc']:.4f}"
        )
    old = decision.metrics["champion"]
    gain = new["roc_auc"] - old["roc_auc"]
    worse_calibration = new["ece"] - old["ece"]
    if gain < gate.min_improvement:
        return False, (
            f"ROC AUC {new['roc_auc']:.4f} vs champion {old['roc_auc']:.4f}: gain {gain:+.4f} "
            f"is below the required {gate.min_improvement:.4f}"
        )
    if worse_calibration > gate.max_ece_increase:
        return False, (
            f"ROC AUC gains {gain:+.4f} but calibration error grows by {worse_calibration:+.4f}, "
            f"more than the allowed {gate.max_ece_increase:.4f}"
        )
    return True, (
        f"ROC AUC {new['roc_auc']:.4f} vs champion {old['roc_auc']:.4f} (gain {gain:+.4f}); "
        f"ECE {new['ece']:.4f} vs {old['ece']:.4f}"
    )


def _latest_window(
    settings: Settings, candidate: VersionInfo, champion: VersionInfo | None
) -> tuple[pd.DataFrame, VersionInfo]:
    """The test window of whichever version saw the newest data (the candidate on ties)."""
    best: tuple[pd.DataFrame, VersionInfo] | None = None
    best_end: pd.Timestamp | None = None
    for info in [candidate] + ([champion] if champion else []):
        path = registry.run_artifact(settings, info.run_id, TEST_WINDOW_ARTIFACT)
        frame = pd.read_parquet(path)
        end = frame["as_of"].max() if "as_of" in frame.columns else None
        if best is None or (end is not None and best_end is not None and end > best_end):
            best, best_end = (frame, info), end
    assert best is not None
    return best


def _evaluate(
    settings: Settings, name: str, info: VersionInfo, window: pd.DataFrame
) -> dict[str, float]:
    model = registry.load_version(settings, name, info.version)
    if model.label not in window.columns:
        raise ContractError(
            f"version {info.version} predicts {model.label!r}, which the window does not hold"
        )
    y = window[model.label].to_numpy(dtype=np.int64)
    metrics = evaluation.binary_metrics(y, model.predict(window))
    return {k: round(v, 6) for k, v in metrics.items()}


def _record(settings: Settings, name: str, decision: Decision, reason: str | None) -> Decision:
    record = {
        "model": name,
        "candidate_version": decision.candidate,
        "champion_version": decision.champion,
        "decision": "promoted" if decision.promoted else "refused",
        "forced": decision.forced,
        "reason": decision.reason,
        "operator_reason": reason,
        "metrics": decision.metrics,
        "window": decision.window,
    }
    stamped = append_record(settings, AUDIT_KIND, record)
    decision.record = stamped
    key = "csa.gate." + stamped["at"].replace(":", "").replace("+", "Z").split(".")[0]
    registry.set_version_tags(
        settings,
        name,
        decision.candidate,
        {
            key: json.dumps({k: stamped[k] for k in ("actor", "decision", "reason")})[:4900],
            "csa.gate.last_decision": record["decision"],
        },
    )
    logger.info(
        "%s version %s %s: %s", name, decision.candidate, record["decision"], decision.reason
    )
    return decision
