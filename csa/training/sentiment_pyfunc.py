"""The MLflow pyfunc of the sentiment model, logged as code (never pickled).

MLflow runs this file when the model is loaded, so ``mlflow models serve`` and
``mlflow.pyfunc.load_model`` give texts in (a ``text`` column, or a list of strings) and
``label`` and ``score`` out, through the same ``SentimentModel`` the platform scores with. Its
only artifact is the folder of ``SentimentModel.save``: the encoder in safetensors and a JSON
head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext


class TextSentimentModel(PythonModel):
    """Label (positive, neutral or negative) and probability of positive for each text."""

    def load_context(self, context: PythonModelContext) -> None:
        from csa.training.sentiment_model import SentimentModel

        self._model = SentimentModel.load(Path(context.artifacts["model"]))

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame({"text": list(model_input)})
        column = "text" if "text" in model_input.columns else model_input.columns[0]
        texts = model_input[column].tolist()
        scores = self._model.score(texts)
        return pd.DataFrame({"label": scores.label, "score": scores.score})


mlflow.models.set_model(TextSentimentModel())
