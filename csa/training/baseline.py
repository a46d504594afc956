"""A logistic regression over the model's features: the yardstick, and a partner for the trees.

Every training fits it on the same training window and reports its test ROC AUC, so the tuned
trees must earn their complexity. Where the relationship is close to linear (IBM Telco churn is),
a blend of the two ranks better than either; the trainer picks the blend's weight on the tuning
window. Numbers are median-imputed and standardised, categories one-hot encoded by the feature
space's known values, and the fitted model is stored as plain numbers, never pickled.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from csa.training.tables import FeatureSpace


@dataclass
class LinearModel:
    """Logistic regression on imputed, standardised numbers and one-hot categories."""

    space: FeatureSpace
    medians: list[float]
    means: list[float]
    scales: list[float]
    coef: list[float]
    intercept: float

    @classmethod
    def fit(cls, space: FeatureSpace, frame: pd.DataFrame, y: np.ndarray) -> LinearModel:
        numbers = space.encode(frame)[space.numeric].to_numpy(dtype="float64")
        with warnings.catch_warnings():
            # A feature without any value in the window (no text scored yet) has no median;
            # nan_to_num imputes it as 0, which is what numpy's warning is about.
            warnings.simplefilter("ignore", RuntimeWarning)
            medians = np.nan_to_num(np.nanmedian(numbers, axis=0)) if len(space.numeric) else []
        model = cls(space, list(map(float, medians)), [], [], [], 0.0)
        filled = model._impute(numbers)
        means, scales = filled.mean(axis=0), filled.std(axis=0)
        model.means = [float(v) for v in means]
        model.scales = [float(v) if v > 0 else 1.0 for v in scales]
        regression = LogisticRegression(max_iter=2000, C=1.0)
        regression.fit(model.design(frame), y)
        model.coef = [float(v) for v in regression.coef_[0]]
        model.intercept = float(regression.intercept_[0])
        return model

    def _impute(self, numbers: np.ndarray) -> np.ndarray:
        gaps = np.isnan(numbers)
        return np.where(gaps, np.asarray(self.medians, dtype="float64"), numbers)

    def design(self, frame: pd.DataFrame) -> np.ndarray:
        """The regression's input: scaled numbers, then one column per known category."""
        return self._design(self.space.encode(frame))

    def _design(self, encoded: pd.DataFrame) -> np.ndarray:
        parts = []
        if self.space.numeric:
            numbers = self._impute(encoded[self.space.numeric].to_numpy(dtype="float64"))
            parts.append((numbers - np.asarray(self.means)) / np.asarray(self.scales))
        for column, known in self.space.categories.items():
            codes = encoded[column].cat.codes.to_numpy()
            onehot = np.zeros((len(encoded), len(known)))
            seen = codes >= 0  # a missing or unseen value sets no column
            onehot[np.flatnonzero(seen), codes[seen]] = 1.0
            parts.append(onehot)
        return np.hstack(parts) if parts else np.zeros((len(encoded), 0))

    def respects(self, directions: Mapping[str, int]) -> bool:
        """Whether every numeric feature's coefficient has the sign a known direction asks."""
        return all(
            self.coef[self.space.numeric.index(name)] * direction >= 0
            for name, direction in directions.items()
            if name in self.space.numeric
        )

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_encoded(self.space.encode(frame))

    def predict_encoded(self, encoded: pd.DataFrame) -> np.ndarray:
        """Probabilities of rows already encoded by ``space``."""
        margin = self._design(encoded) @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-margin))

    def to_dict(self) -> dict[str, Any]:
        return {
            "medians": self.medians,
            "means": self.means,
            "scales": self.scales,
            "coef": self.coef,
            "intercept": self.intercept,
        }

    @classmethod
    def from_dict(cls, space: FeatureSpace, data: dict[str, Any]) -> LinearModel:
        return cls(space=space, **data)
