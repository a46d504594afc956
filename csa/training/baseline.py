"""The yardstick every training is reported against: a plain logistic regression.

Fitted on the same training window and judged on the same test rows, it tells whether the
tuned trees earn their complexity. Categoricals are one-hot encoded, numbers median-imputed and
standardised: what an analyst would do first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from csa.training.tables import FeatureSpace


def logistic_baseline(space: FeatureSpace, train: pd.DataFrame, y: np.ndarray) -> Pipeline:
    """A fitted pipeline (impute, scale, one-hot, logistic regression) over ``space``'s columns."""
    numeric = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()
    )
    categorical = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="missing"),
        OneHotEncoder(handle_unknown="ignore"),
    )
    columns = ColumnTransformer(
        [("numeric", numeric, space.numeric), ("categorical", categorical, list(space.categories))]
    )
    model = make_pipeline(columns, LogisticRegression(max_iter=2000, C=1.0))
    return model.fit(_plain(space, train), y)


def baseline_probability(model: Pipeline, space: FeatureSpace, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict_proba(_plain(space, frame))[:, 1], dtype="float64")


def _plain(space: FeatureSpace, frame: pd.DataFrame) -> pd.DataFrame:
    # scikit-learn takes object columns, not pandas categoricals with missing codes.
    encoded = space.encode(frame)
    for column in space.categories:
        encoded[column] = encoded[column].astype(object).where(encoded[column].notna(), np.nan)
    return encoded
