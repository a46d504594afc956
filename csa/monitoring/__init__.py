"""Drift monitoring: Evidently reports, a drift policy, and retraining when the policy says so.

Public surface: ``load_policy`` (``configs/drift_policy.yaml``, validated), ``monitor`` (one
pass: windows judged against each champion's reference, a decision, a retraining when asked and
due, every decision audited and tagged in MLflow), ``feature_drift`` (the fast per-feature
statistics), ``skew_report`` (what the service served against the offline features) and
``ServedLog`` (the service's sample of served scores).
"""

from csa.monitoring.drift import FeatureDrift, feature_drift
from csa.monitoring.judgement import Decision, WindowVerdict, decide, judge_window
from csa.monitoring.monitor import ModelReport, monitor
from csa.monitoring.policy import DriftPolicy, load_policy
from csa.monitoring.reference import Reference, champion_reference

__all__ = [
    "Decision",
    "DriftPolicy",
    "FeatureDrift",
    "ModelReport",
    "Reference",
    "WindowVerdict",
    "champion_reference",
    "decide",
    "feature_drift",
    "judge_window",
    "load_policy",
    "monitor",
]
