"""A trained churn or expansion model as the platform scores with it.

``ScoringModel`` is the booster (saved in XGBoost's own JSON format) plus ``scoring.json``: the
feature space, the calibration map, the risk bands and the features' business descriptions.
Both files are plain data, so loading a model never runs code that came with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from csa.errors import ConfigError
from csa.training.baseline import LinearModel
from csa.training.calibration import Calibrator, RiskBands
from csa.training.tables import FeatureSpace

BOOSTER_FILE = "booster.json"
SCORING_FILE = "scoring.json"


@dataclass(frozen=True)
class Driver:
    """One feature's push on one account's score."""

    feature: str
    value: Any
    contribution: float  # in log-odds of the raw model; positive raises the score
    description: str


@dataclass
class Scores:
    """Calibrated probabilities, bands and (when asked for) drivers, row by row."""

    probability: np.ndarray
    band: np.ndarray
    drivers: list[list[Driver]] | None = None


@dataclass
class ScoringModel:
    """A booster and everything needed to turn rows into explained, calibrated scores."""

    booster: xgb.Booster
    space: FeatureSpace
    calibrator: Calibrator
    bands: RiskBands
    model: str  # churn, expansion, or the name of a user's target
    label: str
    descriptions: dict[str, str] = field(default_factory=dict)
    source: str = ""
    version: str | None = None  # the registry version, once loaded from the registry
    # A share of a logistic regression in the raw probability, when that ranked better on the
    # tuning window (near-linear data); drivers still come from the trees.
    linear: LinearModel | None = None
    tree_weight: float = 1.0

    def __post_init__(self) -> None:
        # Scoring one account at a time is dominated by call overhead; one thread avoids the
        # thread-pool handoff that makes small batches several times slower on 2 cores.
        self.booster.set_param({"nthread": 1})

    def matrix(self, frame: pd.DataFrame) -> xgb.DMatrix:
        return self._matrix(self.space.encode(frame))

    def _matrix(self, encoded: pd.DataFrame) -> xgb.DMatrix:
        # Handed to XGBoost as one float array, categories as their codes: the same values the
        # trees were fitted on (the codes follow ``space.categories``), without XGBoost's
        # per-column pandas conversion, which costs several times the prediction of one row.
        space = self.space
        values = np.empty((len(encoded), len(space.columns)), dtype="float64")
        values[:, : len(space.numeric)] = encoded[space.numeric].to_numpy(dtype="float64")
        for position, column in enumerate(space.categories, start=len(space.numeric)):
            codes = encoded[column].cat.codes.to_numpy()
            values[:, position] = np.where(codes < 0, np.nan, codes)
        kinds = ["q"] * len(space.numeric) + ["c"] * len(space.categories)
        return xgb.DMatrix(
            values, feature_names=space.columns, feature_types=kinds, enable_categorical=True
        )

    def raw_probability(self, frame: pd.DataFrame) -> np.ndarray:
        """The probability before calibration: the trees', or their blend with the regression."""
        encoded = self.space.encode(frame)
        return self._blend(frame, encoded, self.booster.predict(self._matrix(encoded)))

    def _blend(self, frame: pd.DataFrame, encoded: pd.DataFrame, trees: np.ndarray) -> np.ndarray:
        trees = np.asarray(trees, dtype="float64")
        if self.linear is None or self.tree_weight >= 1.0:
            return trees
        # The regression reads the same columns as the trees, so their encoding is shared.
        if self.linear.space == self.space:
            linear = self.linear.predict_encoded(encoded)
        else:
            linear = self.linear.predict(frame)
        return self.tree_weight * trees + (1.0 - self.tree_weight) * linear

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities, one per row."""
        return self.calibrator.apply(self.raw_probability(frame))

    def score(self, frame: pd.DataFrame, top: int = 0) -> Scores:
        """Probabilities, bands and, with ``top`` > 0, each row's ``top`` strongest drivers."""
        encoded = self.space.encode(frame)
        matrix = self._matrix(encoded)
        raw = self._blend(frame, encoded, self.booster.predict(matrix))
        probability = self.calibrator.apply(raw)
        scores = Scores(probability=probability, band=self.bands.bands(probability))
        if top > 0:
            contributions = self.booster.predict(matrix, pred_contribs=True)
            scores.drivers = self._drivers(frame, contributions, top)
        return scores

    def _drivers(
        self, frame: pd.DataFrame, contributions: np.ndarray, top: int
    ) -> list[list[Driver]]:
        names = self.space.columns
        values = frame[names].to_numpy(dtype=object)
        # The last column of XGBoost's contributions is the bias, not a feature.
        strength = np.abs(contributions[:, :-1])
        order = np.argsort(-strength, axis=1, kind="stable")[:, :top]
        out: list[list[Driver]] = []
        for row, picks in enumerate(order):
            drivers = []
            for column in picks:
                name = names[column]
                drivers.append(
                    Driver(
                        feature=name,
                        value=_plain(values[row, column]),
                        contribution=round(float(contributions[row, column]), 4),
                        description=self.descriptions.get(name, name.replace("_", " ")),
                    )
                )
            out.append(drivers)
        return out

    def importance(self) -> dict[str, float]:
        """Total gain of each feature, the share of the model's learning it carries."""
        gains = {
            name: float(np.sum(value))
            for name, value in self.booster.get_score(importance_type="total_gain").items()
        }
        total = sum(gains.values()) or 1.0
        return {name: gains.get(name, 0.0) / total for name in self.space.columns}

    # Persistence
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / BOOSTER_FILE))
        spec = {
            "model": self.model,
            "label": self.label,
            "source": self.source,
            "features": self.space.to_dict(),
            "calibration": self.calibrator.to_dict(),
            "bands": self.bands.to_dict(),
            "tree_weight": self.tree_weight,
            "linear": None if self.linear is None else self.linear.to_dict(),
            "descriptions": {
                n: self.descriptions[n] for n in self.space.columns if n in self.descriptions
            },
        }
        (folder / SCORING_FILE).write_text(json.dumps(spec, indent=1))

    @classmethod
    def load(cls, folder: Path, version: str | None = None) -> ScoringModel:
        """Load a model folder written by ``save``.

        Raises:
            ConfigError: the folder is not a model of this platform.
        """
        booster_path, spec_path = folder / BOOSTER_FILE, folder / SCORING_FILE
        if not booster_path.exists() or not spec_path.exists():
            raise ConfigError(
                f"{folder} holds no {BOOSTER_FILE} and {SCORING_FILE}; it was not written by "
                "`csa train`. Register models with `csa train`."
            )
        booster = xgb.Booster()
        booster.load_model(str(booster_path))
        spec = json.loads(spec_path.read_text())
        space = FeatureSpace.from_dict(spec["features"])
        linear = spec.get("linear")
        return cls(
            booster=booster,
            space=space,
            calibrator=Calibrator.from_dict(spec["calibration"]),
            bands=RiskBands.from_dict(spec["bands"]),
            model=spec["model"],
            label=spec["label"],
            descriptions=spec.get("descriptions", {}),
            source=spec.get("source", ""),
            version=version,
            linear=None if linear is None else LinearModel.from_dict(space, linear),
            tree_weight=float(spec.get("tree_weight", 1.0)),
        )


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar: numpy numbers as Python ones, NaN as None."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value
