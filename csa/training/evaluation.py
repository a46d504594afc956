"""How good a model is on a window: ranking, calibration, lift; and the plots of it.

Plots are written as PNG files for MLflow; matplotlib runs without a display.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in CI

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from csa.training.calibration import expected_calibration_error, reliability_curve


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC, Brier, ECE, the top decile's lift and the base rate."""
    base_rate = float(np.mean(y))
    top = np.argsort(-p, kind="stable")[: max(1, len(p) // 10)]
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "ece": float(expected_calibration_error(y, p)),
        "lift_top_decile": float(np.mean(y[top]) / base_rate) if base_rate > 0 else float("nan"),
        "base_rate": base_rate,
    }


def plot_roc(y: np.ndarray, p: np.ndarray, path: Path, title: str) -> Path:
    fpr, tpr, _ = roc_curve(y, p)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"model (AUC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title=title)
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_pr(y: np.ndarray, p: np.ndarray, path: Path, title: str) -> Path:
    precision, recall, _ = precision_recall_curve(y, p)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(recall, precision, label=f"model (AP {average_precision_score(y, p):.3f})")
    ax.axhline(np.mean(y), linestyle="--", color="grey", label="base rate")
    ax.set(xlabel="Recall", ylabel="Precision", title=title, ylim=(0, 1.02))
    ax.legend(loc="upper right")
    return _save(fig, path)


def plot_calibration(
    y: np.ndarray, raw: np.ndarray, calibrated: np.ndarray, path: Path, title: str
) -> Path:
    fig, ax = plt.subplots(figsize=(5, 5))
    top = 0.0
    for name, p in (("before calibration", raw), ("calibrated", calibrated)):
        predicted, observed, _ = reliability_curve(y, p)
        top = max(top, float(predicted.max()), float(observed.max()))
        ax.plot(
            predicted,
            observed,
            marker="o",
            label=f"{name} (ECE {expected_calibration_error(y, p):.3f})",
        )
    top = min(1.0, top * 1.1 + 0.01)
    ax.plot([0, top], [0, top], linestyle="--", color="grey", label="perfect")
    ax.set(xlabel="Predicted probability", ylabel="Observed rate", title=title)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.legend(loc="upper left")
    return _save(fig, path)


def plot_importance(importance: dict[str, float], path: Path, title: str, top: int = 20) -> Path:
    ranked = sorted(importance.items(), key=lambda item: item[1], reverse=True)[:top][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(ranked) + 1.2))
    ax.barh([name for name, _ in ranked], [share for _, share in ranked])
    ax.set(xlabel="Share of total gain", title=title)
    return _save(fig, path)


def plot_contributions(
    contributions: np.ndarray, names: list[str], path: Path, title: str, top: int = 20
) -> Path:
    """A SHAP-style summary from XGBoost's own contributions: spread of each feature's push."""
    values = contributions[:, :-1]
    order = np.argsort(-np.abs(values).mean(axis=0))[:top][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(order) + 1.2))
    ax.boxplot(
        [values[:, i] for i in order],
        orientation="horizontal",
        tick_labels=[names[i] for i in order],
        showfliers=False,
    )
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set(xlabel="Contribution to the score (log-odds)", title=title)
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
