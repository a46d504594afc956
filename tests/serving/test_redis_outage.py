"""Redis stopped and restarted under load, in the production profile, against a real server.

The shared Redis must not be stopped, so the server reaches it through a TCP proxy this test
owns: cutting the proxy closes every connection and refuses new ones, exactly what clients see
when Redis goes down; restoring it is Redis coming back. MLflow and the Feast registry live in
a PostgreSQL database created for this module and dropped after it.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlparse

import pytest
import requests

from csa.features import apply_definitions, materialize_latest
from csa.features.store import open_store
from csa.serving import KeyStore
from csa.settings import Settings
from csa.training import train_model
from csa.training.promotion import promote
from csa.training.scoring import active_accounts
from tests.company import short_settings
from tests.serving.test_process import serve, stop

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


class RedisProxy:
    """A TCP relay to Redis that can be cut (connections closed, new ones refused) and restored."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                _close(self._listener)  # shutdown wakes the accepting thread, freeing the port
                self._listener = None
            for sock in self._sockets:
                _close(sock)
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the other side
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class Outage(NamedTuple):
    url: str
    settings: Settings
    key: str
    proxy: RedisProxy
    process: Any
    log: Path


def fresh_database(postgres_url: str, name: str, create: bool) -> str:
    """Create (or drop) a database on the server of ``postgres_url``; returns its URL."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        if create:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        else:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="module")
def outage(
    company_home: Path,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
    redis_url: str,
) -> Iterator[Outage]:
    tag = uuid.uuid4().hex[:10]
    database = f"csa_serving_{tag}"
    target = urlparse(redis_url)
    proxy = RedisProxy(target.hostname or "127.0.0.1", target.port or 6379)
    proxy.start()
    folder = tmp_path_factory.mktemp("outage")
    home = folder / "home"
    shutil.copytree(company_home / "data" / "features", home / "data" / "features")
    settings = short_settings(home)
    settings.profile = "production"
    settings.stores.postgres_url = fresh_database(postgres_url, database, create=True)
    settings.stores.redis_url = f"redis://127.0.0.1:{proxy.port}/{target.path.strip('/') or 0}"
    settings.features.project = f"csa_outage_{tag}"
    settings.training.trials = 2
    process = None
    try:
        apply_definitions(settings)
        materialize_latest(settings)
        with pytest.MonkeyPatch.context() as patch:
            # Optuna's RDB storage and MLflow both keep an ``alembic_version`` table, so they
            # cannot share one fresh database (README, Limits); this test is about serving, so
            # the tuning study stays in memory.
            patch.setattr("csa.training.trainer.study_storage", lambda *_: None)
            train_model(settings, "churn")
        promote(settings, "churn", force=True, reason="serve it in the outage test")
        key = KeyStore(settings).create("app", "outage test")[0]
        log = folder / "serve.log"
        process, url = serve(
            settings,
            log,
            {
                "CSA_POSTGRES_URL": settings.stores.postgres_url,
                "CSA_REDIS_URL": settings.stores.redis_url,
                "CSA_FEATURES__PROJECT": settings.features.project,
            },
        )
        yield Outage(url, settings, key, proxy, process, log)
    finally:
        if process is not None:
            stop(process)
        proxy.cut()
        proxy.start()
        try:
            store = open_store(settings)
            views = store.list_feature_views()
            store._get_provider().teardown_infra(store.project, views, store.list_entities())
        finally:
            proxy.cut()
            fresh_database(postgres_url, database, create=False)


def test_redis_stopped_under_load_answers_503_with_the_reason_and_recovers_without_restart(
    outage: Outage,
) -> None:
    accounts = active_accounts(outage.settings)[:3]
    answers: list[tuple[float, float, int, str]] = []  # sent, seconds taken, status, body
    stop_load = threading.Event()

    def client() -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {outage.key}"}
        while not stop_load.is_set():
            sent = time.monotonic()
            try:
                response = session.post(
                    f"{outage.url}/churn",
                    json={"account_ids": accounts},
                    headers=headers,
                    timeout=30,
                )
                status, body = response.status_code, response.text
            except requests.RequestException as exc:
                status, body = -1, str(exc)
            answers.append((sent, time.monotonic() - sent, status, body))
            time.sleep(0.02)

    clients = [threading.Thread(target=client) for _ in range(3)]
    for thread in clients:
        thread.start()
    try:
        time.sleep(2)
        outage.proxy.cut()
        cut_at = time.monotonic()
        time.sleep(4)
        ready_during = requests.get(f"{outage.url}/readyz", timeout=10).status_code
        outage.proxy.start()
        restored_at = time.monotonic()
        deadline = restored_at + 15
        while time.monotonic() < deadline:
            if any(a[0] > restored_at and a[2] == 200 for a in answers):
                break
            time.sleep(0.2)
        time.sleep(1)
    finally:
        stop_load.set()
        for thread in clients:
            thread.join(timeout=60)

    assert outage.process.poll() is None, "the server died"
    statuses = {a[2] for a in answers}
    assert statuses <= {200, 503}, [a for a in answers if a[2] not in (200, 503)][:3]
    before = [a for a in answers if a[0] + a[1] < cut_at]
    during = [a for a in answers if a[0] > cut_at + 0.5 and a[0] + a[1] < restored_at]
    recovered = min((a[0] + a[1] for a in answers if a[0] > restored_at and a[2] == 200), default=0)
    after = [a for a in answers if a[0] > recovered]
    assert before and all(a[2] == 200 for a in before)
    assert during and all(a[2] == 503 for a in during), {a[2] for a in during}
    assert all("redis" in a[3].lower() for a in during), during[0][3]
    # Store calls have timeouts: a down Redis is reported, not waited on (loose, CI is slow).
    assert max(a[1] for a in during) < 3.0
    assert ready_during == 503
    assert recovered and recovered - restored_at < 10, "no recovery without a restart"
    assert after and all(a[2] == 200 for a in after)
    assert requests.get(f"{outage.url}/readyz", timeout=10).status_code == 200
