"""The drift policy: which features count and how much, thresholds, windows, cooldown.

It lives in ``configs/drift_policy.yaml`` (another file: ``CSA_DRIFT_POLICY`` or
``csa monitor --policy FILE``), is validated strictly (an unknown key or a value out of range
fails before anything runs, naming the file and the key) and is read by ``csa monitor`` and by
the service, which takes the share of scores it logs for the skew report from it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from csa.errors import ConfigError
from csa.features.definitions import MODELS
from csa.settings import config_dir

logger = logging.getLogger(__name__)

POLICY_FILE = "drift_policy.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeatureWeights(_Strict):
    """Which features count toward a window's drift, and how much."""

    weight: Literal["importance", "equal"] = Field(
        "importance",
        description="A drifted feature counts its share of the champion's importance, or 1/n.",
    )
    exclude: list[str] = Field(
        default_factory=lambda: ["tenure_days", "days_to_renewal"],
        description="Features that move with the calendar by construction; reported, not judged.",
    )


class Thresholds(_Strict):
    """When a feature, the predictions and a whole window count as drifted."""

    numeric: float = Field(
        0.1, gt=0, description="Normed Wasserstein distance at which a numeric feature drifts."
    )
    categorical: float = Field(
        0.1, gt=0, le=1, description="Jensen-Shannon distance at which a category drifts."
    )
    drifted_share: float = Field(
        0.15, gt=0, le=1, description="Weight share of drifted features that drifts a window."
    )
    prediction: float | None = Field(
        0.025,
        gt=0,
        le=1,
        description=(
            "Shift of the predicted probabilities (Wasserstein distance in probability points) "
            "that drifts a window (none: reported, not judged)."
        ),
    )
    noise_factor: float = Field(
        1.5,
        ge=0,
        description=(
            "A distance also has to reach this multiple of the distance two random halves of "
            "the reference's accounts show (0: thresholds alone)."
        ),
    )
    history_factor: float = Field(
        1.75,
        ge=0,
        description=(
            "A distance also has to reach this multiple of the largest distance between the "
            "reference and the windows of the champion's test data, which it was trained "
            "and judged on (0: no history check)."
        ),
    )


class QualityLimits(_Strict):
    """How far the champion's quality on matured labels may fall before a window drifts."""

    min_labelled_rows: int = Field(
        200, ge=10, description="Matured labels a window needs before its quality is judged."
    )
    min_positive_accounts: int = Field(
        20,
        ge=1,
        description=(
            "Distinct accounts with a positive label a window needs before its quality is "
            "judged: a churner's daily snapshots are one outcome, not many."
        ),
    )
    max_roc_auc_drop: float = Field(
        0.05, gt=0, le=1, description="ROC AUC below the champion's test ROC AUC that drifts."
    )
    max_ece_increase: float = Field(
        0.05, gt=0, le=1, description="Calibration error above the champion's that drifts."
    )


class RetrainSettings(_Strict):
    """How a breach retrains."""

    trials: int | None = Field(None, ge=1, description="Optuna trials (none: training.trials).")


class ServedLogSettings(_Strict):
    """What the service logs of its scores for the training/serving skew report."""

    sample_share: float = Field(
        0.1, ge=0, le=1, description="Share of scored account snapshots logged (0: none)."
    )


class DriftPolicy(_Strict):
    """Everything ``csa monitor`` decides with."""

    models: list[str] = Field(default_factory=lambda: list(MODELS), min_length=1)
    window_days: int = Field(14, ge=1, description="Days of snapshots in one window.")
    min_window_rows: int = Field(
        300, ge=1, description="Snapshot rows a window needs to be judged at all."
    )
    consecutive_windows: int = Field(
        3, ge=1, description="Consecutive drifted windows that make a breach."
    )
    history_windows: int = Field(
        4,
        ge=0,
        description=(
            "Windows of the champion's test data (after its reference) that measure how far "
            "the company's own windows move without drift (0: none)."
        ),
    )
    cooldown_days: int = Field(
        60, ge=0, description="Days of data after a drift retraining in which no other starts."
    )
    max_rows: int = Field(
        200_000, ge=1_000, description="Rows per side the drift statistics read; more are sampled."
    )
    dashboard_rows: int = Field(
        2_000, ge=100, description="Rows per side of the Evidently report for the dashboard."
    )
    features: FeatureWeights = FeatureWeights()
    thresholds: Thresholds = Thresholds()
    quality: QualityLimits = QualityLimits()
    retrain: RetrainSettings = RetrainSettings()
    served_log: ServedLogSettings = ServedLogSettings()

    @field_validator("models")
    @classmethod
    def _known_models(cls, models: list[str]) -> list[str]:
        unknown = [m for m in models if m not in MODELS]
        if unknown:
            raise ValueError(f"unknown model {unknown[0]!r}; use {', '.join(MODELS)}")
        return models


def policy_path() -> Path:
    """``CSA_DRIFT_POLICY`` when set, else ``drift_policy.yaml`` in the settings folder."""
    override = os.environ.get("CSA_DRIFT_POLICY")
    return Path(override) if override else config_dir() / POLICY_FILE


def load_policy(path: Path | None = None) -> DriftPolicy:
    """The drift policy of ``path`` (default ``policy_path()``), validated.

    A missing default file gives the documented defaults; a missing file that was asked for
    by name is an error.

    Raises:
        ConfigError: the file is unreadable, not a mapping, or holds an invalid value.
    """
    chosen = path or policy_path()
    if not chosen.exists():
        if path is not None or os.environ.get("CSA_DRIFT_POLICY"):
            raise ConfigError(
                f"drift policy {chosen} does not exist; pass an existing YAML file or copy "
                f"configs/{POLICY_FILE}."
            )
        logger.info("no drift policy at %s: using the defaults", chosen)
        return DriftPolicy()
    try:
        content = yaml.safe_load(chosen.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"drift policy {chosen} is not valid YAML ({exc}); fix it.") from exc
    if not isinstance(content, dict):
        raise ConfigError(f"drift policy {chosen} must hold a mapping of settings.")
    try:
        return DriftPolicy(**content)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ConfigError(
            f"drift policy {chosen} is invalid: {where}: {error['msg']}; fix that key "
            "(csa/monitoring/policy.py documents each one)."
        ) from exc
