"""Honest probabilities: calibration error, its correction, and risk bands.

A churn probability is acted on as a rate ("three in ten such accounts leave within 90 days"),
so it must be calibrated on data the trees did not fit. The correction is chosen on the tuning
window by cross-fitting: each candidate map (none, Platt scaling, isotonic) is fitted on one
half and judged by Brier score on the other, and the best is refitted on the whole window. Maps
are stored as numbers (two coefficients, or breakpoints), never as pickled objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

Method = Literal["none", "platt", "isotonic"]
_EPS = 1e-6
_TIE_BREAK = 1e-6


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean gap between predicted and observed rates over equal-count bins, weighted by size.

    Equal-count bins keep the estimate stable when most probabilities are small, as churn
    probabilities are.
    """
    if len(y) == 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    gaps = 0.0
    for chunk in np.array_split(order, min(bins, len(order))):
        if len(chunk):
            gaps += len(chunk) * abs(float(p[chunk].mean()) - float(y[chunk].mean()))
    return gaps / len(y)


def reliability_curve(
    y: np.ndarray, p: np.ndarray, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean predicted and observed rate per equal-count bin, and the bin sizes."""
    order = np.argsort(p, kind="stable")
    chunks = [c for c in np.array_split(order, min(bins, max(len(order), 1))) if len(c)]
    predicted = np.array([p[c].mean() for c in chunks])
    observed = np.array([y[c].mean() for c in chunks])
    sizes = np.array([len(c) for c in chunks])
    return predicted, observed, sizes


@dataclass
class Calibrator:
    """A monotone map from the trees' raw probability to a calibrated one."""

    method: Method = "none"
    coef: float = 1.0
    intercept: float = 0.0
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype="float64")
        if self.method == "platt":
            logit = np.log(np.clip(raw, _EPS, 1 - _EPS) / np.clip(1 - raw, _EPS, 1))
            return 1.0 / (1.0 + np.exp(-(self.coef * logit + self.intercept)))
        if self.method == "isotonic":
            # Isotonic regression is a staircase: on its flat steps every account would tie,
            # and the ranking the trees learned would be lost. A slope far below any
            # probability a person reads keeps their order. And a step fitted on a handful of
            # top rows can reach 0 or 1, a certainty finite data never justifies.
            stepped = np.clip(np.interp(raw, self.x, self.y), 0.001, 0.999)
            return stepped + _TIE_BREAK * raw
        return raw

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "coef": self.coef,
            "intercept": self.intercept,
            "x": self.x,
            "y": self.y,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        return cls(**data)


def fit_calibrator(method: Method, y: np.ndarray, raw: np.ndarray) -> Calibrator:
    """Fit one calibration map on (label, raw probability) pairs."""
    if method == "platt":
        logit = np.log(np.clip(raw, _EPS, 1 - _EPS) / np.clip(1 - raw, _EPS, 1))
        regression = LogisticRegression(C=1e6).fit(logit.reshape(-1, 1), y)
        return Calibrator(
            "platt", coef=float(regression.coef_[0, 0]), intercept=float(regression.intercept_[0])
        )
    if method == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y)
        return Calibrator(
            "isotonic",
            x=[float(v) for v in iso.X_thresholds_],
            y=[float(v) for v in iso.y_thresholds_],
        )
    return Calibrator()


@dataclass
class CalibrationChoice:
    """The chosen map and what each candidate scored when cross-fitted."""

    calibrator: Calibrator
    brier: dict[str, float]


def choose_calibrator(y: np.ndarray, raw: np.ndarray, seed: int) -> CalibrationChoice:
    """The map with the lowest cross-fitted Brier score on the tuning window, refitted on it.

    "none" wins unless a correction helps on rows it was not fitted on, so a well-calibrated
    model is left alone.
    """
    rng = np.random.default_rng(seed)
    half = rng.random(len(y)) < 0.5
    scores: dict[str, float] = {}
    methods: tuple[Method, ...] = ("none", "platt", "isotonic")
    for method in methods:
        errors = []
        for fit_part in (half, ~half):
            judge = ~fit_part
            if len(np.unique(y[fit_part])) < 2 or not judge.any():
                errors.append(np.inf if method != "none" else 0.0)
                continue
            calibrator = fit_calibrator(method, y[fit_part], raw[fit_part])
            errors.append(float(np.mean((calibrator.apply(raw[judge]) - y[judge]) ** 2)))
        scores[method] = float(np.mean(errors))
    # Prefer the simpler map when a more flexible one gains almost nothing.
    best: Method = "none"
    for method in ("platt", "isotonic"):
        if scores[method] < scores[best] * 0.995:
            best = method
    return CalibrationChoice(fit_calibrator(best, y, raw), scores)


BANDS = ("low", "medium", "high")


@dataclass
class RiskBands:
    """Probability thresholds of the ``medium`` and ``high`` bands."""

    medium: float
    high: float

    def band(self, probability: float) -> str:
        if probability >= self.high:
            return "high"
        if probability >= self.medium:
            return "medium"
        return "low"

    def bands(self, probabilities: np.ndarray) -> np.ndarray:
        out = np.full(len(probabilities), "low", dtype=object)
        out[probabilities >= self.medium] = "medium"
        out[probabilities >= self.high] = "high"
        return out

    def to_dict(self) -> dict[str, float]:
        return {"medium": self.medium, "high": self.high}

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> RiskBands:
        return cls(medium=float(data["medium"]), high=float(data["high"]))


def choose_bands(probabilities: np.ndarray, high_share: float, medium_share: float) -> RiskBands:
    """Thresholds that put ``high_share`` of the tuning window in ``high`` and the next
    ``medium_share`` in ``medium``: a team's capacity to act, not a fixed probability."""
    high = float(np.quantile(probabilities, 1 - high_share))
    medium = float(np.quantile(probabilities, max(1 - high_share - medium_share, 0.0)))
    return RiskBands(medium=min(medium, high), high=high)
