"""The MLflow pyfunc of a churn or expansion model, logged as code (never pickled).

MLflow runs this file when the model is loaded, so ``mlflow models serve`` and
``mlflow.pyfunc.load_model`` give feature rows in, ``probability`` and ``band`` out, through the
same ``ScoringModel`` the platform serves with. Its only artifact is the model folder of
``ScoringModel.save`` (an XGBoost JSON booster and a JSON scoring spec).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext


class AccountScoreModel(PythonModel):
    """Calibrated probability and risk band for each row of account features."""

    def load_context(self, context: PythonModelContext) -> None:
        from csa.training.model import ScoringModel

        self._model = ScoringModel.load(Path(context.artifacts["model"]))

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        scores = self._model.score(model_input)
        return pd.DataFrame({"probability": scores.probability, "band": scores.band})


mlflow.models.set_model(AccountScoreModel())
