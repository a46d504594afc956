"""The sentiment model: fine-tuned on a few hundred real reviews, logged, gated and served as text.

Every test trains the real packaged encoder for one short epoch on texts cut to 32 tokens; the
review corpus is the one ``csa train sentiment`` uses by default.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from csa.audit import read_records
from csa.cli import app
from csa.errors import ContractError
from csa.features import apply_definitions, build_features, materialize_latest
from csa.features.build import feature_table_path
from csa.features.definitions import SENTIMENT
from csa.features.online import OnlineFeatureReader
from csa.features.store import open_store
from csa.features.text_sentiment import lake_texts, read_text_scores, score_lake_texts
from csa.ingestion.lake import read_table, replace_table
from csa.settings import Settings, load_settings
from csa.training import CHALLENGER, CHAMPION, registered_name, train_model
from csa.training.promotion import AUDIT_KIND, promote
from csa.training.registry import aliases_of, load_model, resolve_version
from csa.training.sentiment import (
    SentimentResult,
    TextTable,
    read_text_table,
    review_corpus,
    train_sentiment,
)
from csa.training.sentiment_model import NEUTRAL, SentimentModel

runner = CliRunner()

# A tiny but real training: the same code path as the default, only less of everything.
TINY = {
    "CSA_TRAINING__SENTIMENT__EPOCHS": "1",
    "CSA_TRAINING__SENTIMENT__MAX_LENGTH": "32",
    "CSA_TRAINING__SENTIMENT__BATCH_SIZE": "16",
    "CSA_TRAINING__SENTIMENT__TRAIN_LAYERS": "1",
    "CSA_TRAINING__SENTIMENT__LEARNING_RATE": "0.0003",
    "CSA_TRAINING__SENTIMENT__HEAD_LEARNING_RATE": "0.01",
    "CSA_TRAINING__SENTIMENT__CALIBRATION_SHARE": "0.25",
    "CSA_TRAINING__GATE__MIN_ROC_AUC": "0.5",
}
TRAIN_TEXTS, TEST_TEXTS = 200, 100
# The shared company's 300 days hold a churn training only with short windows.
SHORT_TRAINING = [
    ("features", "horizon_days", 30),
    ("features", "warmup_days", 30),
    ("training", "test_days", 30),
    ("training", "tune_days", 30),
    ("training", "trials", 2),
    ("training", "max_rounds", 60),
]


@pytest.fixture(scope="module")
def reviews(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Small training and test CSVs of real reviews, in the shape a user would bring."""
    folder = tmp_path_factory.mktemp("reviews")
    train, test = review_corpus()
    paths = []
    for table, rows, name in ((train, TRAIN_TEXTS, "train"), (test, TEST_TEXTS, "test")):
        frame = table.frame.head(rows)
        own = pd.DataFrame(
            {
                "comment": frame["text"],
                "rating": np.where(frame["label"] == 1, "great", "other"),
            }
        )
        path = folder / f"{name}.csv"
        own.to_csv(path, index=False)
        paths.append(path)
    return paths[0], paths[1]


def tiny_settings(home: Path) -> Settings:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in TINY.items():
            patch.setenv(key, value)
        return load_settings(profile="local", home=home)


class Trained:
    def __init__(self, settings: Settings, result: SentimentResult) -> None:
        self.settings, self.result = settings, result


@pytest.fixture(scope="module")
def trained(reviews: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """One tiny sentiment model, trained and registered as version 1, then promoted."""
    settings = tiny_settings(tmp_path_factory.mktemp("sentiment"))
    table = read_text_table(reviews[0], "comment", "rating", "great")
    test = read_text_table(reviews[1], "comment", "rating", "great")
    result = train_sentiment(settings, table, test)
    return Trained(settings, result)


@pytest.mark.slow
def test_a_tiny_fine_tuning_learns_and_reports_beside_the_baseline(trained: Trained) -> None:
    result = trained.result
    record = result.metrics_record()

    assert result.version == "1"
    assert result.counts == {"n_train": 150, "n_calibration": 50, "n_test": TEST_TEXTS}
    for key in ("model", "n_train", "n_test", "accuracy", "roc_auc", "macro_f1", "model_version"):
        assert key in record
    assert record["model"] == "sentiment" and record["model_version"] == "1"
    assert {"baseline_roc_auc", "baseline_accuracy", "baseline_macro_f1"} <= set(record)
    assert "encoder_roc_auc" in record
    # 150 texts and one epoch of one layer already rank better than chance on unseen reviews.
    assert result.metrics["roc_auc"] > 0.5
    assert len(result.predictions) == TEST_TEXTS


@pytest.mark.slow
def test_the_registered_pyfunc_gives_the_same_labels_and_scores_as_the_model(
    trained: Trained,
) -> None:
    texts = [
        "Absolutely delicious, my kids love these and I will order again.",
        "Stale, tasteless and overpriced. Save your money.",
        "It is a box of crackers.",
    ]
    in_process = load_model(trained.settings, "sentiment", CHALLENGER)
    expected = in_process.score(texts)

    pyfunc = mlflow.pyfunc.load_model(f"models:/{registered_name('sentiment')}@{CHALLENGER}")
    answer = pyfunc.predict(pd.DataFrame({"text": texts}))

    assert isinstance(in_process, SentimentModel)
    assert list(answer.columns) == ["label", "score"]
    assert answer["label"].tolist() == expected.label.tolist()
    np.testing.assert_allclose(answer["score"].to_numpy(), expected.score, rtol=1e-5)
    assert set(answer["label"]) <= {"positive", "negative", NEUTRAL}
    assert ((answer["score"] >= 0) & (answer["score"] <= 1)).all()
    # The logged artifact scores the test texts exactly as the trained model did in memory.
    tested = trained.result.predictions.head(20)
    again = pyfunc.predict(pd.DataFrame({"text": tested["text"]}))
    np.testing.assert_allclose(again["score"].to_numpy(), tested["probability"], rtol=1e-5)
    assert again["label"].tolist() == tested["predicted"].tolist()


@pytest.mark.slow
def test_labels_follow_the_neutral_band(trained: Trained) -> None:
    model = load_model(trained.settings, "sentiment", CHALLENGER)

    labels = model.labels(np.array([0.05, model.neutral_low, 0.5, model.neutral_high, 0.95]))

    assert labels.tolist() == ["negative", NEUTRAL, NEUTRAL, NEUTRAL, "positive"]


@pytest.mark.slow
def test_sentiment_goes_through_the_gate_and_an_identical_retraining_is_refused(
    trained: Trained, reviews: tuple[Path, Path]
) -> None:
    settings = trained.settings
    first = promote(settings, "sentiment")
    table = read_text_table(reviews[0], "comment", "rating", "great")
    test = read_text_table(reviews[1], "comment", "rating", "great")
    again = train_sentiment(settings, table, test)

    second = promote(settings, "sentiment")

    assert first.promoted, first.reason
    assert "first champion" in first.reason
    assert again.version == "2"
    assert again.metrics["roc_auc"] == pytest.approx(trained.result.metrics["roc_auc"])
    assert not second.promoted
    assert "gain +0.0000 is below the required" in second.reason
    assert second.window["rows"] == TEST_TEXTS
    assert aliases_of(settings, "csa-sentiment") == {CHAMPION: "1", CHALLENGER: "2"}
    last = read_records(settings, AUDIT_KIND)[-1]
    assert last["model"] == "csa-sentiment" and last["decision"] == "refused"
    assert resolve_version(settings, "csa-sentiment", "2").tags["csa.gate.last_decision"] == (
        "refused"
    )


@pytest.mark.slow
def test_own_table_training_through_the_command_line(
    reviews: tuple[Path, Path], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in TINY.items():
        monkeypatch.setenv(key, value)
    metrics_out = home / "out" / "metrics.json"

    result = runner.invoke(
        app,
        ["train", "sentiment", "--table", str(reviews[0]), "--text-column", "comment",
         "--label", "rating", "--positive", "great", "--test-table", str(reviews[1]),
         "--metrics-out", str(metrics_out)],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "[1/1] train sentiment: csa-sentiment version 1 (challenger)" in result.output
    metrics = json.loads(metrics_out.read_text())
    assert metrics["n_test"] == TEST_TEXTS and metrics["model_version"] == "1"
    assert metrics["source"] == str(reviews[0])


def test_a_missing_text_column_is_named_with_the_columns_there_are(
    reviews: tuple[Path, Path], home: Path
) -> None:
    result = runner.invoke(
        app,
        ["train", "sentiment", "--table", str(reviews[0]), "--text-column", "body",
         "--label", "rating", "--positive", "great"],
    )  # fmt: skip

    assert result.exit_code == 1
    assert "has no column 'body'" in result.output and "comment, rating" in result.output


def test_a_table_of_one_class_is_refused(tmp_path: Path, home: Path) -> None:
    path = tmp_path / "happy.csv"
    pd.DataFrame({"comment": ["great", "lovely", "superb"], "rating": ["great"] * 3}).to_csv(
        path, index=False
    )

    result = runner.invoke(
        app,
        ["train", "sentiment", "--table", str(path), "--text-column", "comment",
         "--label", "rating", "--positive", "great"],
    )  # fmt: skip

    assert result.exit_code == 1
    assert "single class" in result.output


def test_account_options_are_refused_for_sentiment(home: Path) -> None:
    result = runner.invoke(app, ["train", "sentiment", "--trials", "3"])

    assert result.exit_code == 1
    assert "--trials apply to churn and expansion only" in result.output


def test_a_label_without_the_positive_value_is_refused(reviews: tuple[Path, Path]) -> None:
    with pytest.raises(ContractError, match="no value 'excellent' to count as positive"):
        read_text_table(reviews[0], "comment", "rating", "excellent")


def test_blank_texts_are_dropped_and_labels_become_zero_and_one(tmp_path: Path) -> None:
    path = tmp_path / "texts.parquet"
    pd.DataFrame(
        {"comment": ["good", "", None, "bad", "<br />"], "happy": [True, False, True, False, True]}
    ).to_parquet(path)

    table = read_text_table(path, "comment", "happy")

    assert isinstance(table, TextTable)
    assert table.texts == ["good", "bad"]
    assert table.y.tolist() == [1, 0]


@pytest.mark.slow
def test_the_lake_texts_are_scored_once_and_become_account_features(
    trained: Trained, company_home: Path
) -> None:
    settings = trained.settings
    if CHAMPION not in aliases_of(settings, registered_name("sentiment")):
        promote(settings, "sentiment")
    champion = aliases_of(settings, registered_name("sentiment"))[CHAMPION]
    shutil.copytree(company_home / "data" / "lake", settings.lake_dir)
    tickets = read_table(settings.lake_dir, "tickets")
    comments = read_table(settings.lake_dir, "survey_responses")["comment"]
    written = len(tickets) + int((comments.fillna("").str.strip() != "").sum())

    # The build scores every text with the champion, then aggregates per snapshot.
    for section, name, value in SHORT_TRAINING:
        setattr(getattr(settings, section), name, value)
    build_features(settings)
    scores = read_text_scores(settings)
    first = score_lake_texts(settings)  # everything is in the cache now

    assert len(scores) == written and scores["text_id"].is_unique
    assert set(scores["model_version"]) == {champion}
    assert set(scores["label"]) <= {"positive", "negative", NEUTRAL}
    assert first.texts == written and first.encoded == 0
    # The cache holds each distinct content once, and the scores come from the model itself.
    model = load_model(settings, "sentiment", CHAMPION)
    sample = scores.merge(
        lake_texts(settings)[["text_id", "text"]], on="text_id", validate="one_to_one"
    ).head(8)
    np.testing.assert_allclose(
        model.probability(sample["text"].tolist()), sample["score"], rtol=1e-5, atol=1e-6
    )

    # A new ticket is the only text encoded by the next scoring.
    new = tickets.iloc[[0]].assign(
        ticket_id="T-new", body="The new dashboard is fantastic, thank you so much!"
    )
    replace_table(settings.lake_dir, "tickets", pd.concat([tickets, new], ignore_index=True))
    second = score_lake_texts(settings)
    rescored = read_text_scores(settings)

    assert (second.texts, second.encoded) == (written + 1, 1)
    assert "ticket:T-new" in set(rescored["text_id"])
    kept = rescored.set_index("text_id").loc[scores["text_id"], "score"].to_numpy()
    np.testing.assert_allclose(kept, scores["score"].to_numpy(), rtol=1e-9)

    # The account view of the latest snapshot agrees with the texts it summarises.
    table = pd.read_parquet(feature_table_path(settings.features_dir, SENTIMENT.name))
    latest = table[table["as_of"] == table["as_of"].max()]
    busy = latest.sort_values("scored_texts_90d").iloc[-1]
    mine = scores[
        (scores["account_id"] == busy["account_id"])
        & (scores["written_at"] <= busy["as_of"])
        & (scores["written_at"] > busy["as_of"] - pd.Timedelta(days=90))
    ]
    assert busy["scored_texts_90d"] == len(mine) > 0
    assert busy["sentiment_mean_90d"] == pytest.approx(mine["score"].mean())
    assert busy["negative_text_share_90d"] == pytest.approx((mine["label"] == "negative").mean())

    # Both feature services serve the sentiment view.
    apply_definitions(settings)
    store = open_store(settings)
    for service in ("churn", "expansion"):
        views = {p.name for p in store.get_feature_service(service).feature_view_projections}
        assert SENTIMENT.name in views
    materialize_latest(settings)
    # The churn model's evaluation says what the sentiment features add.
    churn = train_model(settings, "churn", register=False)
    assert {"trees_roc_auc", "trees_roc_auc_without_sentiment"} <= set(churn.metrics)
    assert churn.metrics["sentiment_roc_auc_gain"] == pytest.approx(
        churn.metrics["trees_roc_auc"] - churn.metrics["trees_roc_auc_without_sentiment"]
    )

    account = str(busy["account_id"])
    online = OnlineFeatureReader(settings).read("churn", [account])
    assert online[account]["sentiment_mean_90d"].value == pytest.approx(busy["sentiment_mean_90d"])
