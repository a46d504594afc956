"""The sentiment model as the platform scores with it: a MiniLM encoder and a linear head.

A text is cut to ``max_length`` tokens, encoded, mean-pooled over its tokens and normalised
(the pooling all-MiniLM-L6-v2 was trained with); a linear head turns the embedding into a
logit, and a Platt map fitted on held-out texts turns the logit into the score: the probability
that the text is positive. Scores inside the neutral band are labelled ``neutral``.

On disk a model is the encoder and tokenizer as written by ``save_pretrained`` (safetensors)
and ``sentiment.json`` holding the head's weights, the calibration and the band: plain data, so
loading a model never runs code that came with it.
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
class SentimentModel:
    """Encoder, head, calibration and neutral band: texts in, labels and scores out."""

    encoder: Any  # a transformers model in eval mode
    tokenizer: Any
    weight: np.ndarray  # the head: one weight per embedding dimension
    bias: float
    slope: float  # Platt calibration: score = sigmoid(slope * logit + intercept)
    intercept: float
    max_length: int
    neutral_low: float
    neutral_high: float
    positive_value: str = "1"  # what a positive label was called in the training data
    source: str = ""
    threads: int = 2
    version: str | None = None  # the registry version, once loaded from the registry
    label: str = WINDOW_LABEL  # the window column the promotion gate reads the truth from

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """The head's raw logits, before calibration."""
        import torch

        texts = [_clean(text) for text in texts]
        out = np.zeros(len(texts), dtype="float64")
        if not texts:
            return out
        weight = torch.tensor(self.weight, dtype=torch.float32)
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
                    out[rows] = (vectors @ weight).double().numpy() + self.bias
        finally:
            torch.set_num_threads(previous)
        return out

    def calibrate(self, logits: np.ndarray) -> np.ndarray:
        return np.asarray(1.0 / (1.0 + np.exp(-(self.slope * logits + self.intercept))))

    def probability(self, texts: Sequence[str]) -> np.ndarray:
        """The calibrated probability that each text is positive."""
        return self.calibrate(self.logits(texts))

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
            "calibration": {"slope": float(self.slope), "intercept": float(self.intercept)},
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
            max_length=int(spec["max_length"]),
            neutral_low=float(low),
            neutral_high=float(high),
            positive_value=str(spec.get("positive_value", "1")),
            source=str(spec.get("source", "")),
            threads=int(spec.get("threads", 2)),
            version=version,
        )


def _clean(text: Any) -> str:
    """A text as the encoder should read it: review exports carry HTML line breaks."""
    if text is None or (isinstance(text, float) and text != text):
        return ""
    return str(text).replace("<br />", " ").replace("<br>", " ")
