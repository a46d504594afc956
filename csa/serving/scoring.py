"""Live scores for the service: online features, the champion model, and following the registry.

``ChampionScorer`` holds, per model, the champion it loaded and the online reader. ``refresh``
asks the registry which version is champion now; a new version is loaded and checked (its
features must all be in the feature service, and it must score a real row) before it replaces
the old one under a lock, so a request is always answered by one whole model and a broken
version is refused while the old one keeps serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from csa.errors import CsaError, StoreUnavailable
from csa.features.definitions import JOIN_KEY
from csa.features.online import OnlineFeatureReader
from csa.monitoring.served_log import ServedLog
from csa.settings import Settings
from csa.training.model import ScoringModel
from csa.training.registry import CHAMPION, aliases_of, load_model, registered_name
from csa.training.scoring import online_frame

logger = logging.getLogger(__name__)

SCORED_MODELS = ("churn", "expansion")


class UnknownAccount(CsaError):
    """Every requested account is unknown to the online store."""

    http_status = 404


class NoChampion(CsaError):
    """No model version is champion yet."""

    http_status = 503


@dataclass
class Refusal:
    """A version the scorer would not switch to, and why."""

    model: str
    version: str
    reason: str


class ChampionScorer:
    """Scores accounts with each model's champion; swaps champions without downtime."""

    def __init__(self, settings: Settings, reader: OnlineFeatureReader | None = None) -> None:
        self.settings = settings
        self.reader = reader or OnlineFeatureReader(settings)
        self._models: dict[str, ScoringModel] = {}
        self._lock = threading.Lock()
        self.refused: list[Refusal] = []
        self.served_log = ServedLog.for_settings(settings)  # a sample for the skew report

    def refresh(self) -> list[str]:
        """Load any champion that changed; return the models that switched."""
        switched = []
        for model in SCORED_MODELS:
            version = aliases_of(self.settings, registered_name(model)).get(CHAMPION)
            current = self._models.get(model)
            if version is None or (current is not None and current.version == version):
                continue
            if any(r.model == model and r.version == version for r in self.refused):
                continue  # refused once already: keep serving the old one quietly
            try:
                candidate = load_model(self.settings, model, version)
                self._check(model, candidate)
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                self.refused.append(Refusal(model, version, reason))
                logger.error(
                    "refused csa-%s version %s, still serving %s: %s",
                    model,
                    version,
                    current.version if current else "nothing",
                    reason,
                )
                continue
            with self._lock:
                self._models[model] = candidate
            switched.append(model)
            logger.info("now serving csa-%s version %s", model, version)
        return switched

    def _check(self, model: str, candidate: ScoringModel) -> None:
        """Refuse a model that reads features the service does not have, or cannot score."""
        if not candidate.source.startswith("feature service"):
            raise ValueError(f"it was trained on {candidate.source}, not the feature store")
        # An account the store does not know reads as every feature of the service, missing.
        probe = online_frame(self.reader, model, ["__probe__"])
        missing = [c for c in candidate.space.columns if c not in probe.columns]
        if missing:
            raise ValueError(f"it needs features the {model} service lacks: {missing[:5]}")
        probability = candidate.predict(probe)
        if not np.all(np.isfinite(probability)):
            raise ValueError("it returned a non-finite probability for a row of missing values")

    def version(self, model: str) -> str | None:
        current = self._models.get(model)
        return current.version if current else None

    def score(self, model: str, account_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Per account: probability, band, drivers and the version that scored it.

        Raises:
            NoChampion: no version of the model is champion.
            UnknownAccount: none of the accounts is in the online store.
            StoreUnavailable: the online store does not answer.
        """
        with self._lock:
            scoring = self._models.get(model)
        if scoring is None:
            raise NoChampion(
                f"csa-{model} has no champion yet; train and promote one "
                f"(`csa train {model}`, `csa promote {model}`)."
            )
        frame = online_frame(self.reader, model, list(dict.fromkeys(account_ids)))
        known = frame["as_of"].notna().to_numpy()
        if not known.any():
            raise UnknownAccount(
                f"none of the accounts {list(account_ids)[:5]} has features in the online store; "
                "check the ids, or materialize the store (`csa features materialize`)."
            )
        scores = scoring.score(frame, top=self.settings.training.top_drivers)
        drivers = scores.drivers or []
        self.served_log.record(
            model, scoring.version, frame, scoring.space.columns, scores.probability, known
        )
        out = []
        for row, account in enumerate(frame[JOIN_KEY]):
            if not known[row]:
                out.append({"account_id": account, "error": "unknown account"})
                continue
            out.append(
                {
                    "account_id": account,
                    "probability": round(float(scores.probability[row]), 6),
                    "risk_band": str(scores.band[row]),
                    "drivers": [d.__dict__ for d in drivers[row]],
                    "model_version": scoring.version,
                    "as_of": frame["as_of"].iloc[row].isoformat(),
                }
            )
        return out


__all__ = ["ChampionScorer", "NoChampion", "StoreUnavailable", "UnknownAccount"]
