"""The scoring service in process: keys, roles, errors, scores, and following promotions."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from csa.audit import read_records
from csa.serving import KeyStore
from csa.settings import Settings
from csa.training import train_model
from csa.training.promotion import promote
from csa.training.scoring import active_accounts

pytestmark = pytest.mark.slow


def call(client: TestClient, path: str, body: Any, key: str | None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post(path, json=body, headers=headers)


def test_health_and_metrics_need_no_key(served: Any) -> None:
    client, _, _ = served

    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize("key", [None, "csa_not-a-real-key"])
def test_a_missing_or_unknown_key_answers_401_and_is_audited(served: Any, key: str | None) -> None:
    client, settings, _ = served
    response = call(client, "/churn", {"account_ids": ["ACC-000001"]}, key)

    assert response.status_code == 401
    assert "key" in response.json()["error"]
    last = read_records(settings, "access")[-1]
    assert last["status"] == 401 and last["path"] == "/churn"
    assert "csa_not-a-real-key" not in str(read_records(settings, "access"))


def test_every_role_allowed_on_churn_gets_scores_with_drivers(served: Any) -> None:
    client, settings, keys = served
    accounts = active_accounts(settings)[:3]
    for role in ("admin", "csm", "app"):
        response = call(client, "/churn", {"account_ids": accounts}, keys[role])

        assert response.status_code == 200, (role, response.text)
        scores = response.json()
        assert [s["account_id"] for s in scores] == accounts
        for score in scores:
            assert 0 <= score["probability"] <= 1
            assert score["risk_band"] in ("low", "medium", "high")
            assert score["model_version"] == "1"
            assert {"feature", "value", "contribution", "description"} <= set(score["drivers"][0])


def test_a_role_without_the_route_answers_403(served: Any) -> None:
    client, settings, keys = served
    response = call(client, "/account", {"account_id": "ACC-000001"}, keys["app"])

    assert response.status_code == 403
    assert read_records(settings, "access")[-1]["status"] == 403


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"account_ids": []},
        {"account_ids": "ACC-000001"},
        {"account_ids": [1, 2]},
        {"account_ids": [""]},
        {"accounts": ["ACC-000001"]},
        [],
    ],
)
def test_malformed_bodies_answer_400(served: Any, body: Any) -> None:
    client, _, keys = served

    assert call(client, "/churn", body, keys["app"]).status_code == 400


def test_a_body_over_the_cap_answers_413(served: Any) -> None:
    client, _, keys = served
    body = {"account_ids": [f"ACC-{i:06d}" for i in range(1000)]}

    assert call(client, "/churn", body, keys["app"]).status_code == 413


def test_unknown_accounts_answer_404_and_a_model_without_champion_503(served: Any) -> None:
    client, _, keys = served

    assert call(client, "/churn", {"account_ids": ["nobody"]}, keys["app"]).status_code == 404
    unavailable = call(client, "/expansion", {"account_ids": ["x"]}, keys["app"])
    assert unavailable.status_code == 503
    # The reason, not BentoML's generic 5xx body, and when to come back.
    assert "csa train expansion" in unavailable.json()["error"]
    assert unavailable.headers["retry-after"] == "1"


def test_a_promotion_goes_live_without_restart(served: Any) -> None:
    client, settings, keys = served
    account = active_accounts(settings)[0]
    train_model(settings, "churn")
    promote(settings, "churn", force=True, reason="test the hot swap")

    deadline = time.monotonic() + 10
    version = None
    while time.monotonic() < deadline:
        response = call(client, "/churn", {"account_ids": [account]}, keys["app"])
        assert response.status_code == 200
        version = response.json()[0]["model_version"]
        if version == "2":
            break
        time.sleep(0.1)
    assert version == "2"


def test_a_champion_that_cannot_serve_is_refused_and_the_old_one_keeps_serving(
    served: Any, tmp_path: Path
) -> None:
    client, settings, keys = served
    own = tmp_path / "own.csv"
    own.write_text("id,usage,churned\n" + "".join(f"a{i},{i % 7},{i % 2}\n" for i in range(400)))
    from csa.training import read_user_table

    before = call(client, "/churn", {"account_ids": [active_accounts(settings)[0]]}, keys["app"])
    foreign = train_model(settings, "churn", read_user_table(own, "churned", "id"))
    promote(settings, "churn", version=foreign.version, force=True, reason="test a refusal")
    time.sleep(1.0)

    after = call(client, "/churn", {"account_ids": [active_accounts(settings)[0]]}, keys["app"])
    assert after.status_code == 200
    assert after.json()[0]["model_version"] == before.json()[0]["model_version"]


def test_keys_are_stored_only_as_hashes(served: Any) -> None:
    _, settings, keys = served
    stored = (settings.data_dir / "keys" / "keys.json").read_text()

    assert all(key not in stored for key in keys.values())


def test_an_unknown_role_names_the_roles(settings: Settings) -> None:
    from csa.errors import ConfigError

    with pytest.raises(ConfigError, match="admin"):
        KeyStore(settings).create("intern")


def account_with_everything(settings: Settings) -> str:
    """An active account that has contacts, an open ticket and a survey comment."""
    from csa.ingestion.lake import read_table

    lake = settings.lake_dir
    tickets = read_table(lake, "tickets")
    open_ = set(tickets.loc[~tickets["status"].isin(["solved", "closed"]), "account_id"])
    comments = read_table(lake, "survey_responses").dropna(subset=["comment"])
    candidates = open_ & set(comments["account_id"]) & set(active_accounts(settings))
    assert candidates, "the test company has no account with open tickets and comments"
    return sorted(candidates)[0]


@pytest.mark.parametrize(
    ("role", "visible"),
    [
        ("admin", {"contacts", "texts", "contract"}),
        ("csm", {"contacts", "texts", "contract"}),
        ("ml_engineer", {"contract"}),
    ],
)
def test_the_customer_view_masks_what_the_role_may_not_see(
    served: Any, role: str, visible: set[str]
) -> None:
    client, settings, keys = served
    account = account_with_everything(settings)

    response = call(client, "/account", {"account_id": account}, keys[role])

    assert response.status_code == 200, response.text
    view = response.json()
    assert set(view["masked"]) == {"contacts", "texts", "contract"} - visible
    contact = view["contacts"][0]
    ticket = view["open_tickets"][0]
    comment = next(c for c in view["recent_comments"] if c["comment"] is not None)
    masked = {"masked": True}
    assert (contact["email"] == masked) is ("contacts" not in visible)
    assert (contact["name"] == masked) is ("contacts" not in visible)
    assert (ticket["body"] == masked) is ("texts" not in visible)
    assert (comment["comment"] == masked) is ("texts" not in visible)
    assert (view["profile"]["mrr"] == masked) is ("contract" not in visible)
    assert view["profile"]["plan_tier"] in ("starter", "growth", "enterprise")
    assert view["scores"]["churn"]["model_version"]
    assert "events_30d" in view["usage"]
    assert all({"play", "message", "owner"} <= set(a) for a in view["playbook"])
    if "contacts" in visible:
        assert "@" in contact["email"]


def test_reads_of_sensitive_fields_are_audited_without_their_values(served: Any) -> None:
    client, settings, keys = served
    account = account_with_everything(settings)
    view = call(client, "/account", {"account_id": account}, keys["csm"]).json()

    last = read_records(settings, "access")[-1]
    assert last["event"] == "read" and last["account_id"] == account
    assert last["fields"] == ["contacts", "contract", "texts"]
    log = (settings.audit_dir / "access.jsonl").read_text()
    assert view["contacts"][0]["email"] not in log


def test_the_customer_view_of_an_unknown_account_is_404(served: Any) -> None:
    client, _, keys = served

    assert call(client, "/account", {"account_id": "nobody"}, keys["admin"]).status_code == 404


def track(message_id: str, account: str, user: str = "u-1", **overrides: Any) -> dict[str, Any]:
    """One track call as the product sends it."""
    event = {
        "messageId": message_id,
        "event": "Report Created",
        "userId": user,
        "timestamp": datetime.now(UTC).isoformat(),
        "context": {"groupId": account},
        "properties": {"count": 2},
    }
    event.update(overrides)
    return event


def test_events_are_logged_before_the_answer_and_counted_once(served: Any) -> None:
    client, settings, keys = served
    account = active_accounts(settings)[0]
    batch = [track("m-1", account), track("m-2", account, user="u-2"), track("m-1", account)]

    first = call(client, "/events", {"events": batch}, keys["app"]).json()
    again = call(client, "/events", {"events": batch[:2]}, keys["app"]).json()

    assert first == {"accepted": 2, "duplicates": 1, "rejected": []}
    assert again == {"accepted": 0, "duplicates": 2, "rejected": []}
    logged = [
        json.loads(line)["messageId"]
        for path in settings.raw_dir.glob("usage_events_intake-*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert logged == ["m-1", "m-2"]


def test_malformed_events_are_rejected_with_reasons_and_good_ones_still_load(
    served: Any,
) -> None:
    client, settings, keys = served
    account = active_accounts(settings)[0]
    batch = [
        track("ok-1", account),
        track("bad-time", account, timestamp="yesterday-ish"),
        track("bad-event", account, event="Teleported"),
        {**track("no-account", account), "context": {}},
        track("future", account, timestamp="2999-01-01T00:00:00Z"),
        {"event": "Report Created"},
        "not an object",
    ]

    answer = call(client, "/events", {"events": batch}, keys["app"]).json()

    assert answer["accepted"] == 1
    reasons = {r["index"]: r["reason"] for r in answer["rejected"]}
    assert set(reasons) == {1, 2, 3, 4, 5, 6}
    assert "parse_timestamp" in reasons[1]
    assert "event" in reasons[2]
    assert "account_id" in reasons[3]
    assert "occurred_at" in reasons[4]
    assert "messageId" in reasons[5]


def test_concurrent_callers_committed_together_each_get_their_own_answer(served: Any) -> None:
    import threading

    from csa.serving.intake import EventIntake

    _, settings, _ = served
    account = active_accounts(settings)[2]
    intake = EventIntake(settings)
    callers = 8
    start = threading.Barrier(callers)
    answers: dict[int, Any] = {}

    def send(caller: int) -> None:
        own = [track(f"group-{caller}-{i}", account) for i in range(40)]
        shared = [track(f"shared-{i}", account) for i in range(10)]  # every caller sends these
        bad = track(f"bad-{caller}", account, event="Teleported")
        start.wait()
        answers[caller] = intake.accept([bad, *shared, *own]).as_dict()

    threads = [threading.Thread(target=send, args=(c,)) for c in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(a["accepted"] for a in answers.values()) == callers * 40 + 10
    assert sum(a["duplicates"] for a in answers.values()) == (callers - 1) * 10
    for caller, answer in answers.items():
        # Each caller's reject is named by its index in that caller's own request.
        assert [(r["index"], r["messageId"]) for r in answer["rejected"]] == [(0, f"bad-{caller}")]
        assert answer["accepted"] in (40, 50)  # its own events, and the shared ones if first
    logged = [
        json.loads(line)["messageId"]
        for path in settings.raw_dir.glob("usage_events_intake-*.jsonl")
        for line in path.read_text().splitlines()
    ]
    wanted = {f"group-{c}-{i}" for c in range(callers) for i in range(40)}
    wanted |= {f"shared-{i}" for i in range(10)}
    assert sorted(m for m in logged if m.startswith(("group-", "shared-"))) == sorted(wanted)


def test_todays_counters_reach_the_online_store(served: Any) -> None:
    from csa.features.online import OnlineFeatureReader

    client, settings, keys = served
    account = active_accounts(settings)[1]
    batch = [track(f"live-{i}", account, user=f"u-{i % 3}") for i in range(6)]

    call(client, "/events", {"events": batch}, keys["app"])

    # Pushed by a background thread within a fraction of a second; a few seconds of grace.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        live = OnlineFeatureReader(settings).read("churn", [account])[account]
        if live["events_1d"].value == 12:
            break
        time.sleep(0.1)
    assert live["events_1d"].value == 12  # six calls of two reports each
    assert live["active_users_1d"].value == 3


def test_the_event_log_is_loaded_into_the_lake_by_csa_ingest(served: Any) -> None:
    from csa.ingestion.engine import ingest
    from csa.ingestion.lake import read_table

    client, settings, keys = served
    account = active_accounts(settings)[0]
    call(client, "/events", {"events": [track("to-lake", account)]}, keys["app"])

    report = ingest(settings, only=["product_usage"])

    assert report.sources["product_usage"].status == "ok"
    ids = set(read_table(settings.lake_dir, "usage_events", columns=["message_id"])["message_id"])
    assert {"to-lake", "m-1", "ok-1"} <= ids


def test_following_the_registry_leaves_mlflows_global_tracking_uri_alone(served: Any) -> None:
    import mlflow

    from csa.serving.scoring import ChampionScorer

    _, settings, _ = served
    mlflow.set_tracking_uri("sqlite:///elsewhere.db")
    try:
        ChampionScorer(settings).refresh()

        # A training in the same process keeps logging to its own store meanwhile.
        assert mlflow.get_tracking_uri() == "sqlite:///elsewhere.db"
    finally:
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
