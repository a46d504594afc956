"""Churn, expansion and sentiment models: trained, calibrated, explained, tracked and promoted.

Public surface: ``train_model`` (tune, fit, calibrate, evaluate, register as challenger),
``train_sentiment`` and ``read_text_table`` (the fine-tuned text model and its own-table reader),
``promote`` (the gate from challenger to champion, audited), ``load_model`` (a registered
``ScoringModel`` by alias or version), ``score_accounts`` (batch scoring with drivers) and the
table readers for a user's own labelled data.
"""

from csa.training.model import Driver, Scores, ScoringModel
from csa.training.registry import CHALLENGER, CHAMPION, ModelNotFound, load_model, registered_name
from csa.training.sentiment import SentimentResult, read_text_table, train_sentiment
from csa.training.sentiment_model import SentimentModel, SentimentScores
from csa.training.tables import LabelledTable, feature_store_table, read_user_table
from csa.training.trainer import TrainingResult, train_model

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "Driver",
    "LabelledTable",
    "ModelNotFound",
    "Scores",
    "ScoringModel",
    "SentimentModel",
    "SentimentResult",
    "SentimentScores",
    "TrainingResult",
    "feature_store_table",
    "load_model",
    "read_text_table",
    "read_user_table",
    "registered_name",
    "train_model",
    "train_sentiment",
]
