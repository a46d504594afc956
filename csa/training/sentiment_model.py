"""The sentiment model as the platform scores with it: a MiniLM encoder, a head, word terms.

A text is cut to ``max_length`` tokens, encoded, mean-pooled over its tokens and normalised
(the pooling all-MiniLM-L6-v2 was trained with); a linear head turns the embedding into a
logit. A TF-IDF logistic regression over words and word pairs gives a second logit, and a
logistic map fitted on held-out texts blends and calibrates the two into the score: the
probability that the text is positive. Scores inside the neutral band are labelled ``neutral``.

On disk a model is the encoder and tokenizer as written by ``save_pretrained`` (safetensors)
and ``sentiment.json`` holding the head's weights, the word terms, the blend and the band:
plain data, so loading a model never runs code that came with it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from csa.errors import ConfigError, ContractError

ENCODER_FOLDER = "encoder"
SPEC_FILE = "sentiment.json"
# Columns of the test window the gate scores every version on.
WINDOW_TEXT = "text"
WINDOW_LABEL = "label"
POSITIVE, NEGATIVE, NEUTRAL = "positive", "negative", "neutral"
_SCORING_BATCH = 64


@dataclass
class SentimentScores:
    """Per text: ``positive``, ``negative`` or ``neutral``, and the probability of positive."""

    label: np.ndarray
    score: np.ndarray


def embed(encoder: Any, tokenizer: Any, texts: Sequence[str], max_length: int) -> Any:
    """Normalised mean-pooled embeddings of a batch (a torch tensor, texts x hidden size)."""
    import torch

    batch = tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    tokens = encoder(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
    pooled = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


@dataclass
class WordTerms:
    """A TF-IDF (words and word pairs) logistic regression, kept as plain numbers."""

    vocabulary: dict[str, int]
    idf: np.ndarray
    coef: np.ndarray
    intercept: float

    @classmethod
    def fit(cls, texts: Sequence[str], y: np.ndarray, c: float) -> WordTerms:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vectoriser = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        matrix = vectoriser.fit_transform([clean_text(text) for text in texts])
        fitted = LogisticRegression(C=c, max_iter=2000).fit(matrix, y)
        return cls(
            vocabulary={term: int(i) for term, i in vectoriser.vocabulary_.items()},
            idf=np.asarray(vectoriser.idf_, dtype="float64"),
            coef=np.asarray(fitted.coef_[0], dtype="float64"),
            intercept=float(fitted.intercept_[0]),
        )

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectoriser = TfidfVectorizer(
            ngram_range=(1, 2), sublinear_tf=True, vocabulary=self.vocabulary
        )
        vectoriser.idf_ = self.idf
        matrix = vectoriser.transform([clean_text(text) for text in texts])
        return np.asarray(matrix @ self.coef + self.intercept, dtype="float64")

    def to_dict(self) -> dict[str, Any]:
        return {
            "vocabulary": self.vocabulary,
            "idf": self.idf.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> WordTerms:
        return cls(
            vocabulary={str(k): int(v) for k, v in spec["vocabulary"].items()},
            idf=np.asarray(spec["idf"], dtype="float64"),
            coef=np.asarray(spec["coef"], dtype="float64"),
            intercept=float(spec["intercept"]),
        )


@dataclass
class SentimentModel:
    """Encoder, head, calibration and neutral band: texts in, labels and scores out."""

    encoder: Any  # a transformers model in eval mode
    tokenizer: Any
    weight: np.ndarray  # the head: one weight per embedding dimension
    bias: float
    # The blend: score = sigmoid(slope * encoder logit + terms_slope * terms logit + intercept)
    slope: float
    intercept: float
    max_length: int
    neutral_low: float
    neutral_high: float
    terms: WordTerms | None = None
    terms_slope: float = 0.0
    positive_value: str = "1"  # what a positive label was called in the training data
    source: str = ""
    threads: int = 2
    version: str | None = None  # the registry version, once loaded from the registry
    label: str = WINDOW_LABEL  # the window column the promotion gate reads the truth from

    def embeddings(self, texts: Sequence[str]) -> np.ndarray:
        """The encoder's normalised embedding of each text (texts x hidden size, float32)."""
        import torch

        texts = [clean_text(text) for text in texts]
        out = np.zeros((len(texts), len(self.weight)), dtype="float32")
        if not texts:
            return out
        # Batches of similar length waste little work on padding.
        order = np.argsort([len(text) for text in texts], kind="stable")
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                for start in range(0, len(order), _SCORING_BATCH):
                    rows = order[start : start + _SCORING_BATCH]
                    vectors = embed(
                        self.encoder, self.tokenizer, [texts[i] for i in rows], self.max_length
                    )
                    out[rows] = vectors.numpy()
        finally:
            torch.set_num_threads(previous)
        return out

    def head_logits(self, embeddings: np.ndarray) -> np.ndarray:
        """The head's raw logits of embeddings made by ``embeddings``."""
        return np.asarray(embeddings, dtype="float64") @ self.weight.astype("float64") + self.bias

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """The head's raw logits, before calibration."""
        return self.head_logits(self.embeddings(texts))

    def terms_logits(self, texts: Sequence[str]) -> np.ndarray:
        if self.terms is None:
            return np.zeros(len(texts), dtype="float64")
        return self.terms.logits(texts)

    def calibrate(self, logits: np.ndarray, terms_logits: np.ndarray) -> np.ndarray:
        """Blend the two logits into the calibrated probability of positive."""
        blended = self.slope * logits + self.terms_slope * terms_logits + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-blended)))

    def probability(self, texts: Sequence[str]) -> np.ndarray:
        """The calibrated probability that each text is positive."""
        return self.calibrate(self.logits(texts), self.terms_logits(texts))

    def probability_from(self, embeddings: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """The calibrated probability of texts whose embeddings are already known."""
        return self.calibrate(self.head_logits(embeddings), self.terms_logits(texts))

    def predict(self, window: pd.DataFrame) -> np.ndarray:
        """Probabilities for the ``text`` column of a window, as the promotion gate asks."""
        if WINDOW_TEXT not in window.columns:
            raise ContractError(
                f"the window has no {WINDOW_TEXT!r} column; sentiment is scored on texts."
            )
        return self.probability(window[WINDOW_TEXT].tolist())

    def labels(self, score: np.ndarray) -> np.ndarray:
        """``positive`` above the band, ``negative`` below it, ``neutral`` inside it."""
        return np.where(
            score > self.neutral_high,
            POSITIVE,
            np.where(score < self.neutral_low, NEGATIVE, NEUTRAL),
        )

    def score(self, texts: Sequence[str]) -> SentimentScores:
        """Label and score of each text."""
        probability = self.probability(texts)
        return SentimentScores(label=self.labels(probability), score=probability)

    # Persistence
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(str(folder / ENCODER_FOLDER), safe_serialization=True)
        self.tokenizer.save_pretrained(str(folder / ENCODER_FOLDER))
        spec = {
            "head": {"weight": [float(w) for w in self.weight], "bias": float(self.bias)},
            "calibration": {
                "slope": float(self.slope),
                "terms_slope": float(self.terms_slope),
                "intercept": float(self.intercept),
            },
            "terms": self.terms.to_dict() if self.terms is not None else None,
            "max_length": self.max_length,
            "neutral_band": [self.neutral_low, self.neutral_high],
            "positive_value": self.positive_value,
            "source": self.source,
            "threads": self.threads,
        }
        (folder / SPEC_FILE).write_text(json.dumps(spec, indent=1))

    @classmethod
    def load(cls, folder: Path, version: str | None = None) -> SentimentModel:
        """Load a model folder written by ``save``.

        Raises:
            ConfigError: the folder is not a sentiment model of this platform.
        """
        from transformers import AutoModel, AutoTokenizer

        spec_path, encoder_path = folder / SPEC_FILE, folder / ENCODER_FOLDER
        if not spec_path.exists() or not encoder_path.is_dir():
            raise ConfigError(
                f"{folder} holds no {SPEC_FILE} and {ENCODER_FOLDER}/; it was not written by "
                "`csa train sentiment`. Register sentiment models with `csa train sentiment`."
            )
        spec = json.loads(spec_path.read_text())
        encoder = AutoModel.from_pretrained(str(encoder_path), local_files_only=True)
        encoder.eval()
        tokenizer = AutoTokenizer.from_pretrained(str(encoder_path), local_files_only=True)
        low, high = spec["neutral_band"]
        return cls(
            encoder=encoder,
            tokenizer=tokenizer,
            weight=np.asarray(spec["head"]["weight"], dtype="float32"),
            bias=float(spec["head"]["bias"]),
            slope=float(spec["calibration"]["slope"]),
            intercept=float(spec["calibration"]["intercept"]),
            terms=WordTerms.from_dict(spec["terms"]) if spec.get("terms") else None,
            terms_slope=float(spec["calibration"].get("terms_slope", 0.0)),
            max_length=int(spec["max_length"]),
            neutral_low=float(low),
            neutral_high=float(high),
            positive_value=str(spec.get("positive_value", "1")),
            source=str(spec.get("source", "")),
            threads=int(spec.get("threads", 2)),
            version=version,
        )


def clean_text(text: Any) -> str:
    """A text as the encoder should read it: review exports carry HTML line breaks."""
    if text is None or (isinstance(text, float) and text != text):
        return ""
    return str(text).replace("<br />", " ").replace("<br>", " ")
