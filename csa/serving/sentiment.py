"""Live sentiment for the service: the ``csa-sentiment`` champion, following the registry.

``SentimentScorer`` holds the champion it loaded. ``refresh`` asks the registry which version is
champion now; a new version is loaded and made to score a probe text (finite probabilities and
known labels) before it replaces the old one, so a version that cannot score is refused and the
old one keeps answering. Requests reach ``score`` already coalesced into batches by BentoML's
adaptive batching (see ``csa.serving.service``): one encoder pass serves many callers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from csa.serving.scoring import NoChampion, Refusal
from csa.settings import Settings
from csa.training.registry import CHAMPION, aliases_of, load_model, registered_name
from csa.training.sentiment_model import NEGATIVE, NEUTRAL, POSITIVE, SentimentModel

logger = logging.getLogger(__name__)

MODEL = "sentiment"
_PROBE = ("The onboarding call was helpful and the export finally works.", "It keeps crashing.")


class SentimentScorer:
    """Labels and scores texts with the sentiment champion; swaps champions without downtime."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._model: SentimentModel | None = None
        self._lock = threading.Lock()
        self.refused: list[Refusal] = []

    def refresh(self) -> bool:
        """Load the champion if it changed; True when the served version switched."""
        version = aliases_of(self.settings, registered_name(MODEL)).get(CHAMPION)
        current = self._model
        if version is None or (current is not None and current.version == version):
            return False
        if any(r.version == version for r in self.refused):
            return False  # refused once already: keep serving the old one quietly
        try:
            candidate = load_model(self.settings, MODEL, version)
            _check(candidate)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            self.refused.append(Refusal(MODEL, version, reason))
            logger.error(
                "refused csa-sentiment version %s, still serving %s: %s",
                version,
                current.version if current else "nothing",
                reason,
            )
            return False
        with self._lock:
            self._model = candidate
        logger.info("now serving csa-sentiment version %s", version)
        return True

    def version(self) -> str | None:
        current = self._model
        return current.version if current else None

    def score(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Per text, in order: ``label``, ``score`` (probability positive), ``model_version``.

        Raises:
            NoChampion: no sentiment version is champion, or none could be loaded.
        """
        with self._lock:
            model = self._model
        if model is None:
            raise NoChampion(
                "csa-sentiment has no champion the service could load; train and promote one "
                "(`csa train sentiment`, `csa promote sentiment`)."
            )
        scores = model.score(list(texts))
        return [
            {"label": str(label), "score": round(float(score), 6), "model_version": model.version}
            for label, score in zip(scores.label, scores.score, strict=True)
        ]


def _check(candidate: SentimentModel) -> None:
    """Refuse a model that cannot turn texts into probabilities and the platform's labels."""
    scores = candidate.score(list(_PROBE))
    if len(scores.score) != len(_PROBE) or not np.all(np.isfinite(scores.score)):
        raise ValueError("it returned no finite probability for a probe text")
    if not np.all((scores.score >= 0) & (scores.score <= 1)):
        raise ValueError("it returned a probability outside [0, 1]")
    unknown = set(map(str, scores.label)) - {POSITIVE, NEGATIVE, NEUTRAL}
    if unknown:
        raise ValueError(f"it returned labels {sorted(unknown)} the service does not know")


__all__ = ["SentimentScorer"]
