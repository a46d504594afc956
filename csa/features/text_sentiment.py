"""What customers wrote, scored: every ticket body and survey comment in the lake, incrementally.

``score_lake_texts`` reads the texts from the lake, hashes each one's content, and encodes only
the texts whose hash the embedding cache of the scoring model's version does not hold yet; the
cheap last steps (head, word terms, calibration) run over all texts. The result is one table,
``data/features/text_sentiment.parquet``: a row per text with its account, when it was written,
its score (probability of positive), label and the model version. The feature build turns it
into per-account aggregates (``sentiment_features``) and the customer view reads it.

The cache is a folder per model version under ``data/features/text_embeddings``, holding
Parquet parts of (content hash, embedding); a run adds one part with what it encoded, written
under a temporary name and renamed, so a crash loses at most that run's work. Texts do not
change when a ticket is updated; edited text simply has a new hash.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from csa.features.definitions import JOIN_KEY, SENTIMENT
from csa.features.windows import KEYS, safe_ratio, trailing_sums
from csa.ingestion.lake import read_table, table_exists
from csa.settings import Settings

logger = logging.getLogger(__name__)

TEXT_SCORES = "text_sentiment"
TICKET, SURVEY = "ticket", "survey"
SCORE_COLUMNS = [
    "text_id",
    "source",
    JOIN_KEY,
    "written_at",
    "content_hash",
    "score",
    "label",
    "model_version",
]
_SCHEMA = pa.schema(
    [
        pa.field("text_id", pa.string()),
        pa.field("source", pa.string()),
        pa.field(JOIN_KEY, pa.string()),
        pa.field("written_at", pa.timestamp("us", tz="UTC")),
        pa.field("content_hash", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("label", pa.string()),
        pa.field("model_version", pa.string()),
    ]
)
# Where each kind of text lives in the lake: table, id column, text column, time column.
_TEXT_SOURCES = {
    TICKET: ("tickets", "ticket_id", "body", "created_at"),
    SURVEY: ("survey_responses", "response_id", "comment", "submitted_at"),
}
_ENCODE_CHUNK = 2048  # texts encoded between two progress reports


def text_scores_path(settings: Settings) -> Path:
    return settings.features_dir / f"{TEXT_SCORES}.parquet"


def embeddings_dir(settings: Settings, version: str) -> Path:
    return settings.features_dir / "text_embeddings" / f"v{version}"


def content_hash(text: str) -> str:
    """The cache key of a text: its cleaned content, so the same words share one embedding."""
    from csa.training.sentiment_model import clean_text

    return hashlib.sha256(clean_text(text).strip().encode("utf-8")).hexdigest()[:32]


def lake_texts(settings: Settings) -> pd.DataFrame:
    """Every ticket body and non-empty survey comment: id, source, account, time and text."""
    parts = []
    for source, (table, id_column, text_column, time_column) in _TEXT_SOURCES.items():
        if not table_exists(settings.lake_dir, table):
            continue
        frame = read_table(
            settings.lake_dir, table, columns=[id_column, JOIN_KEY, text_column, time_column]
        )
        frame = frame[frame[text_column].notna()]
        frame = frame[frame[text_column].astype(str).str.strip() != ""]
        parts.append(
            pd.DataFrame(
                {
                    "text_id": f"{source}:" + frame[id_column].astype(str),
                    "source": source,
                    JOIN_KEY: frame[JOIN_KEY].astype(str),
                    "written_at": pd.to_datetime(frame[time_column], utc=True),
                    "text": frame[text_column].astype(str),
                }
            )
        )
    if not parts:
        return pd.DataFrame(columns=["text_id", "source", JOIN_KEY, "written_at", "text"])
    return pd.concat(parts, ignore_index=True)


@dataclass
class TextScoring:
    """What a lake scoring did: texts scored, how many were encoded anew, the version used."""

    texts: int
    encoded: int
    model_version: str | None
    seconds: float
    path: Path

    @property
    def cached(self) -> int:
        return self.texts - self.encoded


def score_lake_texts(
    settings: Settings,
    model: Any | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> TextScoring:
    """Score every text of the lake with ``model`` (default: the sentiment champion).

    Only texts whose content the cache of that model version lacks are encoded.

    Args:
        model: a ``SentimentModel``; it must carry its registry ``version`` to use the cache.
        progress: called with ("encode", texts encoded so far, texts to encode).

    Raises:
        ModelNotFound: no model is given and no sentiment version is champion.
    """
    from csa.training.registry import load_model

    started = time.perf_counter()
    if model is None:
        model = load_model(settings, "sentiment")
    version = str(model.version) if model.version is not None else "unregistered"
    texts = lake_texts(settings)
    texts["content_hash"] = [content_hash(text) for text in texts["text"]]

    cache = _read_cache(settings, version)
    unique = texts.drop_duplicates("content_hash")
    new = unique[~unique["content_hash"].isin(cache.keys())]
    logger.info(
        "sentiment of %d texts (%d distinct): %d to encode, %d cached for version %s",
        len(texts),
        len(unique),
        len(new),
        len(unique) - len(new),
        version,
    )
    for start in range(0, len(new), _ENCODE_CHUNK):
        chunk = new.iloc[start : start + _ENCODE_CHUNK]
        vectors = model.embeddings(chunk["text"].tolist())
        # Each chunk lands in the cache at once: an interrupted run keeps what it encoded.
        _append_cache(settings, version, chunk["content_hash"].tolist(), vectors)
        cache.update(zip(chunk["content_hash"], vectors, strict=True))
        if progress is not None:
            progress("encode", min(start + _ENCODE_CHUNK, len(new)), len(new))

    if len(texts):
        embeddings = np.stack([cache[key] for key in texts["content_hash"]])
        score = model.probability_from(embeddings, texts["text"].tolist())
        label = model.labels(score)
    else:
        score, label = np.zeros(0), np.zeros(0, dtype=object)
    scores = texts.drop(columns="text").assign(score=score, label=label, model_version=version)[
        SCORE_COLUMNS
    ]
    path = text_scores_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".parquet.partial")
    pq.write_table(pa.Table.from_pandas(scores, schema=_SCHEMA, preserve_index=False), partial)
    partial.replace(path)
    return TextScoring(
        texts=len(texts),
        encoded=len(new),
        model_version=version,
        seconds=time.perf_counter() - started,
        path=path,
    )


def read_text_scores(settings: Settings) -> pd.DataFrame:
    """The scored texts (columns ``SCORE_COLUMNS``); empty when no scoring has run."""
    path = text_scores_path(settings)
    if not path.exists():
        return pd.DataFrame({column: pd.Series(dtype="object") for column in SCORE_COLUMNS})
    return pq.read_table(path).to_pandas()


def _read_cache(settings: Settings, version: str) -> dict[str, np.ndarray]:
    folder = embeddings_dir(settings, version)
    cache: dict[str, np.ndarray] = {}
    for part in sorted(folder.glob("part-*.parquet")):
        table = pq.read_table(part)
        vectors = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
        cache.update(zip(table.column("content_hash").to_pylist(), vectors, strict=True))
    return cache


def _append_cache(settings: Settings, version: str, keys: list[str], vectors: np.ndarray) -> None:
    folder = embeddings_dir(settings, version)
    folder.mkdir(parents=True, exist_ok=True)
    number = len(list(folder.glob("part-*.parquet")))
    table = pa.table(
        {
            "content_hash": pa.array(keys, pa.string()),
            "embedding": pa.array(list(vectors.astype("float32")), pa.list_(pa.float32())),
        }
    )
    partial = folder / f"part-{number:06d}.parquet.partial"
    pq.write_table(table, partial)
    partial.replace(folder / f"part-{number:06d}.parquet")


def sentiment_features(con: duckdb.DuckDBPyConnection, scores: pd.DataFrame) -> pd.DataFrame:
    """The ``account_sentiment`` frame for every row of the ``grid`` table.

    A text counts from the moment it was written. Means and shares are unknown (null) where an
    account wrote nothing in the window, and every score-based feature is null when the lake's
    texts have not been scored (no sentiment champion yet).
    """
    from csa.training.sentiment_model import NEGATIVE

    scored = scores[scores["score"].notna()] if len(scores) else scores
    frame = pd.DataFrame(
        {
            JOIN_KEY: scored[JOIN_KEY].astype(str),
            "ts": pd.to_datetime(scored["written_at"], utc=True),
            "score": scored["score"].astype("float64"),
            "scored": 1,
            "negative": (scored["label"] == NEGATIVE).astype("int64"),
            "detractor": ((scored["label"] == NEGATIVE) & (scored["source"] == SURVEY)).astype(
                "int64"
            ),
        }
    )
    con.register("text_scores_frame", frame)
    try:
        sums = trailing_sums(
            con,
            "SELECT account_id, ts, score, scored, negative, detractor FROM text_scores_frame",
            ["score", "scored", "negative", "detractor"],
            [30, 90],
        )
    finally:
        con.unregister("text_scores_frame")
    out = sums[KEYS].copy()
    mean_30 = safe_ratio(sums["score_30d"], sums["scored_30d"])
    mean_90 = safe_ratio(sums["score_90d"], sums["scored_90d"])
    out["sentiment_mean_30d"] = mean_30
    out["sentiment_mean_90d"] = mean_90
    out["negative_text_share_90d"] = safe_ratio(sums["negative_90d"], sums["scored_90d"])
    out["sentiment_trend_30v90"] = mean_30 - mean_90
    out["detractor_comments_90d"] = sums["detractor_90d"].astype("int64")
    out["scored_texts_90d"] = sums["scored_90d"].astype("int64")
    if len(scored) == 0:
        for column in ("detractor_comments_90d", "scored_texts_90d"):
            out[column] = pd.array([pd.NA] * len(out), dtype="Int64")
    return out[KEYS + SENTIMENT.names]


def refresh_text_scores(settings: Settings) -> TextScoring | None:
    """Score the lake's new texts with the sentiment champion; None while there is none."""
    from csa.training.registry import CHAMPION, aliases_of, registered_name

    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        logger.info("no model registry yet: sentiment features stay empty")
        return None
    if CHAMPION not in aliases_of(settings, registered_name("sentiment")):
        logger.warning(
            "no sentiment model is champion: sentiment features stay empty; run "
            "`csa train sentiment` and `csa promote sentiment`, then build again"
        )
        return None
    result = score_lake_texts(settings)
    logger.info(
        "texts scored with sentiment version %s: %d (%d encoded, %d from the cache) in %.1f s",
        result.model_version,
        result.texts,
        result.encoded,
        result.cached,
        result.seconds,
    )
    return result
