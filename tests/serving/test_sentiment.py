"""``/sentiment``: the champion's labels and scores, adaptively batched, behind keys and caps."""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

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
from tests.serving.test_service import call

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
