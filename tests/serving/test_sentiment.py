"""``/sentiment`` (the champion's labels and scores, batched, capped) and the view's sentiment."""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from csa.features.text_sentiment import read_text_scores, score_lake_texts, text_scores_path
from csa.ingestion.lake import read_table
from csa.serving.sentiment import SentimentScorer
from csa.settings import Settings
from csa.training.registry import (
    CHAMPION,
    client,
    load_model,
    model_folder,
    registered_name,
    set_alias,
)
from csa.training.sentiment_model import SPEC_FILE
from tests.serving.conftest import ROLES, train_tiny_sentiment
from tests.serving.test_service import account_with_everything, call

pytestmark = pytest.mark.slow

TEXTS = [
    "Support answered within minutes and fixed the export. Great team!",
    "The dashboard has been down all week and nobody replies to our tickets.",
    "Renewal is next month.",
    "Terrible onboarding, we are considering other vendors.",
]


def wait_for_version(client_: TestClient, key: str, version: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = call(client_, "/sentiment", {"texts": ["ok"]}, key)
        if response.status_code == 200 and response.json()[0]["model_version"] == version:
            return
        time.sleep(0.1)
    raise AssertionError(f"the service did not serve csa-sentiment {version} within {seconds} s")


def test_sentiment_without_a_champion_answers_503_with_the_way_out(served: Any) -> None:
    client_, settings, keys = served
    if SentimentScorer(settings).refresh():
        pytest.skip("a sentiment champion is already registered in this home")

    response = call(client_, "/sentiment", {"texts": TEXTS}, keys["app"])

    assert response.status_code == 503
    assert "csa train sentiment" in response.text


@pytest.fixture(scope="module")
def sentiment_served(served: Any) -> Any:
    """The served home with a tiny sentiment champion that the service has picked up."""
    client_, settings, keys = served
    version = train_tiny_sentiment(settings)
    wait_for_version(client_, keys["app"], version)
    return client_, settings, keys, version


@pytest.mark.parametrize("role", ROLES)
def test_every_role_gets_the_champions_label_and_score_per_text(
    sentiment_served: Any, role: str
) -> None:
    client_, settings, keys, version = sentiment_served
    expected = load_model(settings, "sentiment").score(TEXTS)

    response = call(client_, "/sentiment", {"texts": TEXTS}, keys[role])

    assert response.status_code == 200, response.text
    answers = response.json()
    assert [a["label"] for a in answers] == [str(label) for label in expected.label]
    assert np.allclose([a["score"] for a in answers], expected.score, atol=1e-5)
    assert all(a["model_version"] == version for a in answers)


def test_concurrent_callers_are_batched_and_each_gets_its_own_answers(
    sentiment_served: Any,
) -> None:
    client_, settings, keys, _ = sentiment_served
    requests = [[f"{text} (caller {i})" for text in TEXTS[: 1 + i % 4]] for i in range(24)]
    expected = load_model(settings, "sentiment").score([t for texts in requests for t in texts])

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(
            pool.map(lambda texts: call(client_, "/sentiment", {"texts": texts}, keys["app"]),
                     requests)
        )  # fmt: skip

    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    served_scores = [a["score"] for r in responses for a in r.json()]
    assert [len(r.json()) for r in responses] == [len(texts) for texts in requests]
    assert np.allclose(served_scores, expected.score, atol=1e-5)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"texts": []}, "texts"),
        ({"texts": "one text"}, "texts"),
        ({"texts": [1, 2]}, "texts"),
        ({"texts": [""]}, "texts"),
        ({"text": ["a"]}, "texts"),
        ({"texts": ["fine"] * 257}, "256"),
    ],
)
def test_malformed_or_oversized_sentiment_bodies_answer_400_with_the_reason(
    sentiment_served: Any, body: Any, reason: str
) -> None:
    client_, _, keys, _ = sentiment_served
    response = call(client_, "/sentiment", body, keys["app"])

    assert response.status_code == 400, response.text
    assert reason in response.text


def test_a_sentiment_version_that_cannot_score_is_refused_and_the_old_keeps_serving(
    sentiment_served: Any,
) -> None:
    client_, settings, keys, version = sentiment_served
    broken = register_broken_copy(settings, version)
    # The gate would refuse it; an alias moved by hand (the MLflow UI) is what must not hurt.
    set_alias(settings, registered_name("sentiment"), CHAMPION, broken)
    time.sleep(1.0)  # five registry polls of the test service

    response = call(client_, "/sentiment", {"texts": TEXTS}, keys["app"])

    assert response.status_code == 200
    assert {a["model_version"] for a in response.json()} == {version}
    scorer = SentimentScorer(settings)
    scorer.refresh()
    assert scorer.version() is None
    assert "finite" in scorer.refused[0].reason
    set_alias(settings, registered_name("sentiment"), CHAMPION, version)


def register_broken_copy(settings: Settings, version: str) -> str:
    """A new registered version with the weights of ``version`` but a head of NaNs."""
    name = registered_name("sentiment")
    mlflow_client = client(settings)
    source = mlflow_client.get_model_version(name, version)
    created = mlflow_client.create_model_version(name, source.source, run_id=source.run_id)
    good = model_folder(settings, name, version)
    target = settings.data_dir / "models" / name / str(created.version) / "artifacts" / "model"
    shutil.copytree(good, target)
    spec = json.loads((target / SPEC_FILE).read_text())
    spec["head"]["weight"] = [float("nan")] * len(spec["head"]["weight"])
    (target / SPEC_FILE).write_text(json.dumps(spec))
    return str(created.version)


def view(client_: TestClient, key: str, account: str) -> dict[str, Any]:
    response = call(client_, "/account", {"account_id": account}, key)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def write_scores(settings: Settings, rows: list[tuple[str, str, str, float, str]]) -> None:
    """A scored-texts file as ``csa score sentiment`` writes it: (text id, account, time, score,
    label) per text; the service notices the new file within a second."""
    frame = pd.DataFrame(
        {
            "text_id": [r[0] for r in rows],
            "source": [r[0].split(":")[0] for r in rows],
            "account_id": [r[1] for r in rows],
            "written_at": pd.to_datetime([r[2] for r in rows], utc=True),
            "content_hash": [f"h{i}" for i in range(len(rows))],
            "score": [r[3] for r in rows],
            "label": [r[4] for r in rows],
            "model_version": "7",
        }
    )
    path = text_scores_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path.with_suffix(".partial"), index=False)
    path.with_suffix(".partial").replace(path)
    time.sleep(1.1)  # the view looks at the file at most once a second


def test_the_account_view_summarises_the_lakes_scored_texts_and_masks_their_words(
    sentiment_served: Any,
) -> None:
    client_, settings, keys, version = sentiment_served
    account = account_with_everything(settings)
    scoring = score_lake_texts(settings)
    time.sleep(1.1)  # the view looks at the file at most once a second
    scores = read_text_scores(settings)
    mine = scores[scores["account_id"] == account]

    shown = view(client_, keys["csm"], account)["sentiment"]
    hidden = view(client_, keys["ml_engineer"], account)["sentiment"]

    assert scoring.model_version == version
    assert shown["model_version"] == version
    end = pd.Timestamp(shown["window_end"])
    assert end == scores["written_at"].max()
    window = mine[mine["written_at"] > end - pd.Timedelta(days=90)]
    assert shown["texts"] == len(window) == shown["tickets"] + shown["survey_comments"]
    if len(window):
        assert shown["mean_score"] == pytest.approx(window["score"].mean(), abs=1e-4)
    negative = window[window["label"] == "negative"]
    assert shown["negative"] == len(negative)
    assert len(shown["recent_negative"]) == min(5, len(negative))
    tickets = read_table(settings.lake_dir, "tickets")
    for item, masked in zip(shown["recent_negative"], hidden["recent_negative"], strict=True):
        assert item["id"] == masked["id"] and masked["text"] == {"masked": True}
        if item["source"] == "ticket":
            body = tickets.loc[tickets["ticket_id"].astype(str) == item["id"], "body"].iloc[0]
            assert item["text"] == body
    assert {k: v for k, v in shown.items() if k != "recent_negative"} == {
        k: v for k, v in hidden.items() if k != "recent_negative"
    }


def test_the_sentiment_summary_counts_the_last_90_days_and_lists_the_newest_negatives_first(
    sentiment_served: Any,
) -> None:
    client_, settings, keys, _ = sentiment_served
    account = account_with_everything(settings)
    answers = read_table(settings.lake_dir, "survey_responses")
    comment = answers[(answers["account_id"] == account) & answers["comment"].notna()].iloc[0]
    write_scores(
        settings,
        [
            ("ticket:old", account, "2024-01-01", 0.05, "negative"),  # before the window
            ("ticket:t1", account, "2024-09-01", 0.10, "negative"),
            (f"survey:{comment['response_id']}", account, "2024-09-20", 0.20, "negative"),
            ("ticket:t3", account, "2024-09-25", 0.90, "positive"),
            ("ticket:t4", account, "2024-09-26", 0.50, "neutral"),
            ("ticket:other", "someone-else", "2024-10-01", 0.99, "positive"),
        ],
    )

    summary = view(client_, keys["admin"], account)["sentiment"]

    assert summary["window_end"].startswith("2024-10-01")
    assert (summary["texts"], summary["tickets"], summary["survey_comments"]) == (4, 3, 1)
    assert summary["mean_score"] == pytest.approx((0.10 + 0.20 + 0.90 + 0.50) / 4)
    assert summary["negative"] == 2 and summary["negative_share"] == 0.5
    assert [n["id"] for n in summary["recent_negative"]] == [
        str(comment["response_id"]),
        "t1",
    ]
    assert summary["recent_negative"][0]["text"] == comment["comment"]
    assert summary["model_version"] == "7"


def test_an_account_without_scored_texts_has_an_empty_summary(sentiment_served: Any) -> None:
    client_, settings, keys, _ = sentiment_served
    text_scores_path(settings).unlink(missing_ok=True)
    time.sleep(1.1)

    summary = view(client_, keys["admin"], account_with_everything(settings))["sentiment"]

    assert summary["texts"] == 0 and summary["mean_score"] is None
    assert summary["recent_negative"] == []
