"""A real ``csa serve`` process: keys and roles on every route, the OpenAPI contract, limits,
and a promotion under load.

One server for the module, over a home with churn, expansion and sentiment champions; the test
process trains and promotes beside it through the same registry, as an operator would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import requests
import yaml

from csa.serving import KeyStore
from csa.settings import Settings, config_dir
from csa.training import train_model
from csa.training.promotion import promote
from csa.training.scoring import active_accounts
from tests.company import SHORT_WINDOWS, copy_home
from tests.serving.conftest import ROLES, train_tiny_sentiment
from tests.serving.test_service import account_with_everything

pytestmark = pytest.mark.slow

ROUTES = ("churn", "expansion", "sentiment", "account", "events")
STARTUP_SECONDS = 180
EXAMPLES_PER_ROUTE = 60


class Server(NamedTuple):
    url: str
    settings: Settings
    keys: dict[str, str]
    log: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve(settings: Settings, log: Path, extra_env: dict[str, str] | None = None) -> Any:
    """Start ``csa serve`` on a free port of 127.0.0.1; returns (process, base URL) once ready."""
    port = free_port()
    env = {
        **os.environ,
        **SHORT_WINDOWS,
        "CSA_HOME": str(settings.home),
        "CSA_PROFILE": settings.profile,
        "CSA_SERVING__RELOAD_SECONDS": "0.5",
        **(extra_env or {}),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "csa", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so teardown stops its workers too
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"csa serve exited with {process.returncode}:\n{tail(log)}")
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop(process)
    raise AssertionError(f"csa serve was not ready in {STARTUP_SECONDS} s:\n{tail(log)}")


def stop(process: Any) -> None:
    """Stop the server this test started: its process group, politely, then firmly."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def server(company_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("process")
    settings = copy_home(company_home, folder / "home", lake=True)
    settings.training.trials = 2
    train_model(settings, "churn")
    promote(settings, "churn", force=True, reason="serve it in the process tests")
    # Expansions are rarer than churn: longer windows so that each holds some.
    wider = settings.model_copy(deep=True)
    wider.training.test_days = wider.training.tune_days = 60
    train_model(wider, "expansion")
    promote(wider, "expansion", force=True, reason="serve it in the process tests")
    train_tiny_sentiment(settings)
    store = KeyStore(settings)
    keys = {role: store.create(role, f"process {role}")[0] for role in ROLES}
    log = folder / "serve.log"
    process, url = serve(settings, log)
    try:
        yield Server(url, settings, keys, log)
    finally:
        stop(process)


def post(server: Server, route: str, body: Any, key: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(f"{server.url}/{route}", json=body, headers=headers, timeout=30)


def good_body(server: Server, route: str, tag: str = "") -> Any:
    account = account_with_everything(server.settings)
    if route in ("churn", "expansion"):
        return {"account_ids": [account]}
    if route == "sentiment":
        return {"texts": ["Support fixed it in an hour, thank you!", "Still broken."]}
    if route == "account":
        return {"account_id": account}
    event = {
        "messageId": f"process-{tag}-{time.time_ns()}",
        "event": "Report Created",
        "userId": "u-1",
        "timestamp": datetime.now(UTC).isoformat(),
        "context": {"groupId": account},
        "properties": {"count": 1},
    }
    return {"events": [event]}


def test_the_process_binds_loopback_and_serves_health_without_a_key(server: Server) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    for path in ("livez", "readyz", "metrics"):
        assert requests.get(f"{server.url}/{path}", timeout=10).status_code == 200


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("key", [None, "csa_made-up-key"])
def test_every_route_refuses_a_missing_or_bad_key(server: Server, route: str, key: Any) -> None:
    response = post(server, route, good_body(server, route), key)

    assert response.status_code == 401
    assert "key" in response.json()["error"]


@pytest.mark.parametrize("role", ROLES)
def test_each_role_reaches_exactly_the_routes_of_roles_yaml(server: Server, role: str) -> None:
    allowed = yaml.safe_load((config_dir() / "roles.yaml").read_text())["roles"][role]["routes"]
    for route in ROUTES:
        response = post(server, route, good_body(server, route, role), server.keys[role])

        expected = 200 if route in allowed else 403
        assert response.status_code == expected, (role, route, response.text)
        if route in ("churn", "expansion", "sentiment") and expected == 200:
            assert all(item["model_version"] for item in response.json())


@pytest.mark.parametrize("role", ("admin", "ml_engineer", "csm"))
def test_the_process_masks_the_account_view_per_role(server: Server, role: str) -> None:
    fields = yaml.safe_load((config_dir() / "roles.yaml").read_text())["roles"][role]["fields"]
    view = post(server, "account", good_body(server, "account"), server.keys[role]).json()

    assert set(view["masked"]) == {"contacts", "texts", "contract"} - set(fields)
    assert (view["contacts"][0]["email"] == {"masked": True}) is ("contacts" not in fields)
    assert (view["profile"]["mrr"] == {"masked": True}) is ("contract" not in fields)
    assert "mean_score" in view["sentiment"]


def test_a_text_over_the_cap_is_400_and_a_body_over_the_cap_is_413(server: Server) -> None:
    key = server.keys["app"]
    cap = server.settings.serving.sentiment_max_chars

    long_text = post(server, "sentiment", {"texts": ["x" * (cap + 1)]}, key)
    huge = post(server, "events", {"events": ["x" * 2_000_000]}, key)

    assert long_text.status_code == 400 and str(cap) in long_text.text
    assert huge.status_code == 413 and "bytes" in huge.json()["error"]


def test_the_openapi_document_lists_every_route(server: Server) -> None:
    document = requests.get(
        f"{server.url}/docs.json",
        headers={"Authorization": f"Bearer {server.keys['admin']}"},
        timeout=10,
    ).json()

    assert {f"/{route}" for route in ROUTES} <= set(document["paths"])


def test_a_promotion_under_load_switches_within_10_seconds_without_a_failed_request(
    server: Server,
) -> None:
    accounts = active_accounts(server.settings)[:5]
    key = server.keys["app"]
    before = post(server, "churn", {"account_ids": accounts}, key).json()[0]["model_version"]
    answers: list[tuple[float, float, int, str | None]] = []
    stop_load = threading.Event()

    def client() -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {key}"}
        while not stop_load.is_set():
            sent = time.monotonic()
            try:
                response = session.post(
                    f"{server.url}/churn",
                    json={"account_ids": accounts},
                    headers=headers,
                    timeout=30,
                )
                status = response.status_code
                version = response.json()[0]["model_version"] if status == 200 else None
            except requests.RequestException:
                status, version = -1, None
            answers.append((sent, time.monotonic(), status, version))

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    try:
        trained = train_model(server.settings, "churn")
        promote(server.settings, "churn", version=trained.version, force=True, reason="load test")
        promoted = time.monotonic()
        deadline = promoted + 15
        while time.monotonic() < deadline:
            if any(a[3] == trained.version and a[0] > promoted for a in answers):
                break
            time.sleep(0.1)
        time.sleep(1.0)  # a little load after the switch as well
    finally:
        stop_load.set()
        for thread in clients:
            thread.join(timeout=60)

    failed = [a for a in answers if a[2] != 200]
    assert not failed, f"{len(failed)} of {len(answers)} requests failed: {failed[:5]}"
    first_new = min(a[1] for a in answers if a[3] == trained.version)
    assert first_new - promoted <= 10, f"the new version answered {first_new - promoted:.1f} s late"
    # Once a request has seen the new version, no request sent later sees the old one.
    assert not [a for a in answers if a[0] > first_new and a[3] == before]
    assert len(answers) > 20, "the load was too thin to mean anything"


@pytest.fixture(scope="module")
def openapi_document(server: Server) -> dict[str, Any]:
    response = requests.get(
        f"{server.url}/docs.json",
        headers={"Authorization": f"Bearer {server.keys['admin']}"},
        timeout=10,
    )
    document: dict[str, Any] = response.json()
    return document


def test_schemathesis_finds_no_server_error_and_no_nonconforming_answer(
    server: Server, openapi_document: dict[str, Any]
) -> None:
    """Generated requests for every operation, with a valid key: never a 5xx, and the 2xx
    answers match the schema the service publishes."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
    )

    schema = schemathesis.openapi.from_dict(openapi_document)
    headers = {"Authorization": f"Bearer {server.keys['admin']}"}
    checks = [not_a_server_error, content_type_conformance, response_schema_conformance]
    statuses: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid schema raises here
        if operation.path.strip("/") not in ROUTES:
            continue

        @settings(
            max_examples=EXAMPLES_PER_ROUTE,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def generated(case: Any) -> None:
            response = case.call_and_validate(base_url=server.url, headers=headers, checks=checks)
            statuses.setdefault(case.path, set()).add(response.status_code)

        generated()

    assert set(statuses) == {f"/{route}" for route in ROUTES}, statuses
    assert all(code < 500 for codes in statuses.values() for code in codes), statuses
