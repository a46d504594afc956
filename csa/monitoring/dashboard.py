"""The Evidently workspace: one project per model, one drift report per monitoring pass.

The workspace lives under ``<home>/data/monitoring/workspace``; ``make ui`` serves it with
``evidently ui`` so the project's dashboard shows the share of drifted features and the
prediction drift over the passes. Reports use the same statistics and thresholds as the
policy (normed Wasserstein and Jensen-Shannon), on at most ``dashboard_rows`` rows per side:
the report is the view, the decision is the policy's (see ``csa.monitoring.drift``).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from csa.monitoring.drift import sample_rows
from csa.monitoring.policy import DriftPolicy
from csa.monitoring.reference import PREDICTION, Reference
from csa.settings import Settings

logger = logging.getLogger(__name__)

UI_PORT = 8000


def workspace_dir(settings: Settings) -> Path:
    return settings.data_dir / "monitoring" / "workspace"


def project_name(model: str) -> str:
    return f"csa-{model} drift"


def record_report(
    settings: Settings,
    reference: Reference,
    current: pd.DataFrame,
    policy: DriftPolicy,
    timestamp: pd.Timestamp,
    tags: dict[str, str],
) -> dict[str, Any]:
    """Run the drift report of one window, store it in the model's project, return its values.

    Returns:
        ``project_id``, ``snapshot_id`` and ``scores`` (Evidently's value per column).
    """
    with warnings.catch_warnings():
        # Evidently's UI stack warns at import about its own dependencies' deprecations.
        warnings.simplefilter("ignore")
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

    excluded = set(policy.features.exclude)
    categorical = [c for c in reference.categorical if c not in excluded]
    numeric = [c for c in reference.numeric if c not in excluded]
    columns = [*numeric, *categorical] + ([PREDICTION] if PREDICTION in current.columns else [])
    # Evidently refuses a column with no value on either side (a feature group not yet filled).
    columns = [c for c in columns if reference.frame[c].notna().any() and current[c].notna().any()]
    categorical = [c for c in categorical if c in columns]
    definition = DataDefinition(
        numerical_columns=[c for c in columns if c not in categorical],
        categorical_columns=categorical,
    )
    ref = _typed(sample_rows(reference.frame, policy.dashboard_rows), columns, categorical)
    cur = _typed(sample_rows(current, policy.dashboard_rows, 1), columns, categorical)
    limits = policy.thresholds
    report = Report(
        [
            DataDriftPreset(
                columns=columns,
                num_method="wasserstein",
                cat_method="jensenshannon",
                num_threshold=limits.numeric,
                cat_threshold=limits.categorical,
                drift_share=limits.drifted_share,
            )
        ],
        metadata={"model": reference.model, "champion_version": str(reference.version)},
        tags=[f"{k}={v}" for k, v in tags.items()],
    )
    with warnings.catch_warnings():
        # Evidently's summaries divide by zero on empty counts and say so; nothing to act on.
        warnings.simplefilter("ignore")
        snapshot = report.run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition),
            timestamp=timestamp.to_pydatetime().replace(tzinfo=None),
            name=f"csa-{reference.model} window ending {timestamp.date().isoformat()}",
        )
    workspace, project = _project(settings, reference.model)
    stored = workspace.add_run(project.id, snapshot)
    return {
        "workspace": str(workspace_dir(settings)),
        "project_id": str(project.id),
        "snapshot_id": str(getattr(stored, "id", "")),
        "scores": _column_scores(snapshot.dict()),
    }


def _typed(frame: pd.DataFrame, columns: list[str], categorical: list[str]) -> pd.DataFrame:
    out = frame[columns].copy()
    for column in categorical:
        out[column] = out[column].astype("string").astype(object)
    return out


def _project(settings: Settings, model: str) -> tuple[Any, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently.sdk.models import PanelMetric
        from evidently.sdk.panels import line_plot_panel
        from evidently.ui.workspace import Workspace

    folder = workspace_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    workspace = Workspace(str(folder))
    name = project_name(model)
    found = workspace.search_project(name)
    if found:
        return workspace, found[0]
    project = workspace.create_project(
        name, description=f"Drift of csa-{model}'s features and predictions against its champion"
    )
    project.dashboard.add_panel(
        line_plot_panel(
            title="Share of drifted features",
            values=[
                PanelMetric(
                    legend="share",
                    metric="DriftedColumnsCount",
                    metric_labels={"value_type": "share"},
                )
            ],
        )
    )
    project.dashboard.add_panel(
        line_plot_panel(
            title="Prediction drift (normed Wasserstein distance)",
            values=[
                PanelMetric(
                    legend=PREDICTION, metric="ValueDrift", metric_labels={"column": PREDICTION}
                )
            ],
        )
    )
    return workspace, project


def _column_scores(snapshot: dict[str, Any]) -> dict[str, float]:
    scores = {}
    for metric in snapshot.get("metrics", []):
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift") and "column" in config:
            scores[config["column"]] = float(metric["value"])
    return scores
