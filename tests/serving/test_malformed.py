"""A thousand generated malformed payloads: every one answered 4xx with a reason, none accepted."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving.test_service import call

pytestmark = pytest.mark.slow

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)


def not_account_ids(body: Any) -> bool:
    """True unless the body is a well-formed ``{"account_ids": [...]}`` request."""
    if not isinstance(body, dict) or set(body) != {"account_ids"}:
        return True
    ids = body["account_ids"]
    return not (isinstance(ids, list) and ids and all(isinstance(i, str) and i for i in ids))


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=JSON.filter(not_account_ids))
def test_malformed_score_requests_are_400_with_a_reason(served: Any, body: Any) -> None:
    client, _, keys = served
    response = call(client, "/churn", body, keys["app"])

    assert response.status_code == 400, (body, response.text)
    assert response.text


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=JSON.filter(lambda b: not (isinstance(b, dict) and isinstance(b.get("account_id"), str)))
)
def test_malformed_account_requests_are_400(served: Any, body: Any) -> None:
    client, _, keys = served

    assert call(client, "/account", body, keys["admin"]).status_code == 400


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(events=st.lists(JSON, min_size=1, max_size=5))
def test_malformed_events_are_never_accepted(served: Any, events: list[Any]) -> None:
    client, _, keys = served
    response = call(client, "/events", {"events": events}, keys["app"])

    assert response.status_code in (200, 400), response.text
    if response.status_code == 200:
        answer = response.json()
        assert answer["accepted"] == 0, json.dumps(events)
        assert len(answer["rejected"]) + answer["duplicates"] == len(events)
        assert all(r["reason"] for r in answer["rejected"])
