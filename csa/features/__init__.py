"""Account features: computed from the lake, served by Feast for training and scoring.

Public surface: build the tables (``build_features``), register and load the Feast store
(``apply_definitions``, ``materialize_latest``, ``open_store``), assemble point-in-time
training sets (``training_set``, ``write_dataset``, ``point_in_time_features``) and read the
online values for scoring (``OnlineFeatureReader``). Feature names and their business
descriptions come from ``feature_descriptions``.
"""

from csa.features.build import BuildResult, build_features
from csa.features.dataset import point_in_time_features, training_set, write_dataset
from csa.features.definitions import feature_descriptions, label_name
from csa.features.online import FeatureValue, OnlineFeatureReader
from csa.features.store import apply_definitions, materialize_latest, open_store

__all__ = [
    "BuildResult",
    "FeatureValue",
    "OnlineFeatureReader",
    "apply_definitions",
    "build_features",
    "feature_descriptions",
    "label_name",
    "materialize_latest",
    "open_store",
    "point_in_time_features",
    "training_set",
    "write_dataset",
]
