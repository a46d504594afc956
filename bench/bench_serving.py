"""The service over HTTP: ``/churn``, the framework's cost, ``/sentiment`` batching, ``/events``.

A simulated company (small by default) goes through ingest and the feature store in a scratch
``CSA_HOME``; a churn model is trained and promoted, and a tiny sentiment model too (one short
epoch: the figures are about serving, not about the model). Every server is a real process on
127.0.0.1 driven by ``--clients`` client threads (8) for ``--seconds`` each; the clients run in
this process, on the same two cores as the server, for ours and the baseline alike.

1. ``/churn``: ours is ``csa serve`` (key check, online lookup, champion, band, drivers) with one
   account id per request. Baseline: ``mlflow models serve`` of the same champion, given the
   account's features in the payload (read once beforehand, untimed). Goal: 10x the requests
   per second, p99 at most 25 ms.
2. The framework: ours (BentoML, as above) against the very same middleware and handler
   (``ChampionScorer.score``) on a bare Starlette app under uvicorn. Goal: at least half its
   requests per second.
3. ``/sentiment``: one text per call from every client; ours batches concurrent calls
   (``serving.sentiment_max_batch_size``), the baseline is the same server with batching off
   (batch size 1). Goal: 3x the texts per second.
4. ``/events``: batches of ``--events-per-call`` track calls, each acknowledged after the fsync of
   the event log. Baseline: ``EventIntake.accept`` called in this process with the same batches
   (no HTTP). Goal: 5,000 events per second over HTTP.

Clients send each request in one write with TCP_NODELAY (``Connection``): with ``requests``,
Nagle's algorithm and delayed ACKs added about 40 ms to every POST whatever the server.

Run: ``python bench/bench_serving.py [--accounts 120] [--days 400] [--seconds 10]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report
from simulated_company import build_company

from csa.serving import KeyStore
from csa.settings import Settings, load_settings
from csa.training import train_model
from csa.training.promotion import promote
from csa.training.registry import load_model
from csa.training.scoring import active_accounts, online_frame

VENV_BIN = Path(sys.executable).parent
TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "BENTOML_DO_NOT_TRACK": "true",
    "FEAST_USAGE": "False",
    "HF_HUB_OFFLINE": "1",
}


# Servers
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """A server process started by this benchmark, stopped by its process group."""

    def __init__(self, command: list[str], env: dict[str, str], ready: str, log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command,
                env={**os.environ, **TELEMETRY_OFF, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{command[:3]} exited:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(ready, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{command[:3]} not ready in 240 s:\n{log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def csa_serve(settings: Settings, port: int, log: Path, **env: str) -> Server:
    return Server(
        [sys.executable, "-m", "csa", "serve", "--port", str(port)],
        {"CSA_HOME": str(settings.home), "CSA_PROFILE": settings.profile, **env},
        f"http://127.0.0.1:{port}/readyz",
        log,
    )


def starlette_app() -> Any:
    """The same middleware and ``/churn`` handler as the service, on a bare Starlette app."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from csa.errors import CsaError
    from csa.serving.access import AccessMiddleware
    from csa.serving.scoring import ChampionScorer

    settings = load_settings()
    scorer = ChampionScorer(settings)
    scorer.refresh()

    async def churn(request: Request) -> JSONResponse:
        body = await request.json()
        try:
            # A thread, as BentoML runs a synchronous handler: the event loop stays free.
            from anyio.to_thread import run_sync

            scores = await run_sync(scorer.score, "churn", body["account_ids"])
        except CsaError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.http_status)
        return JSONResponse(scores)

    async def ready(_: Request) -> JSONResponse:
        return JSONResponse({"ready": True})

    app = Starlette(routes=[Route("/churn", churn, methods=["POST"]), Route("/readyz", ready)])
    from csa.serving.access import KeyStore as Keys

    return AccessMiddleware(app, settings=settings, keys=Keys(settings))


# Load
class Connection:
    """A keep-alive HTTP/1.1 connection that sends each request in one write, TCP_NODELAY.

    ``requests`` (``http.client``) writes a POST's headers and body separately; with Nagle's
    algorithm on and the server's delayed ACK, every call then waits about 40 ms, which would
    make any server look the same. The answers here always carry a Content-Length.
    """

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.address = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.path = parsed.path or "/"
        self.sock: socket.socket | None = None
        self.buffer = b""

    def post(self, body: Any, headers: dict[str, str]) -> tuple[int, bytes]:
        payload = json.dumps(body).encode()
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.address[0]}\r\n{head}"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        if self.sock is None:
            self.sock = socket.create_connection(self.address, timeout=60)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buffer = b""
        try:
            self.sock.sendall(request)
            return self._response()
        except OSError:
            self.sock.close()
            self.sock = None
            raise

    def _response(self) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(fields.get("content-length", "0"))
        while len(self.buffer) < length:
            self._read()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        if fields.get("connection", "").lower() == "close" and self.sock is not None:
            self.sock.close()
            self.sock = None
        return status, body

    def _read(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk


def drive(
    url: str,
    make_body: Callable[[int, int], Any],
    headers: dict[str, str],
    clients: int,
    seconds: float,
    items: Callable[[Any], int] = lambda _: 1,
) -> dict[str, Any]:
    """``clients`` threads posting for ``seconds``; requests and items per second, latencies."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    counted = [0] * clients
    failures = [0] * clients
    stop = threading.Event()

    def client(index: int) -> None:
        connection = Connection(url)
        call = 0
        while not stop.is_set():
            body = make_body(index, call)
            sent = time.perf_counter()
            status, _ = connection.post(body, headers)
            latencies[index].append(time.perf_counter() - sent)
            if status == 200:
                counted[index] += items(body)
            else:
                failures[index] += 1
            call += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    every = np.array([x for lat in latencies for x in lat]) * 1000
    return {
        "requests_per_s": round(len(every) / elapsed, 1),
        "items_per_s": round(sum(counted) / elapsed, 1),
        "p50_ms": round(float(np.percentile(every, 50)), 2),
        "p99_ms": round(float(np.percentile(every, 99)), 2),
        "requests": len(every),
        "failed": sum(failures),
    }


def track_calls(accounts: list[str], tag: str, count: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "messageId": f"{tag}-{i}",
            "event": "Report Created",
            "userId": f"u-{i % 7}",
            "timestamp": now,
            "context": {"groupId": accounts[i % len(accounts)]},
            "properties": {"count": 1},
        }
        for i in range(count)
    ]


# Benchmarks
def prepare(home: Path, args: argparse.Namespace) -> tuple[Settings, dict[str, str]]:
    settings, _ = build_company(home, accounts=args.accounts, days=args.days, seed=7)
    settings.training.trials = args.trials
    train_model(settings, "churn")
    promote(settings, "churn", force=True, reason="benchmark")
    from tests.serving.conftest import train_tiny_sentiment

    train_tiny_sentiment(settings)
    key = KeyStore(settings).create("admin", "benchmark")[0]
    return settings, {"Authorization": f"Bearer {key}"}


def bench_churn(settings: Settings, headers: dict[str, str], url: str, args: Any) -> None:
    print("== /churn: ours (online lookup) vs mlflow models serve (features in the payload)")
    from mlflow.models import Model

    from csa.features import OnlineFeatureReader
    from csa.training.registry import model_folder

    # The baseline's payload: each account's online features, read once, untimed. The pyfunc's
    # signature refuses a missing value in an integer column (README, Limits): those get 0.
    model = load_model(settings, "churn")
    accounts = active_accounts(settings)
    frame = online_frame(OnlineFeatureReader(settings), "churn", accounts)
    features = frame[model.space.columns].copy()
    logged = Model.load(str(model_folder(settings, "csa-churn", model.version).parents[1]))
    for name, spec in logged.signature.inputs.input_dict().items():
        if getattr(getattr(spec, "type", None), "name", "") in ("long", "integer"):
            features[name] = features[name].fillna(0)
    rows = json.loads(features.to_json(orient="records"))
    ours = drive(
        f"{url}/churn",
        lambda i, n: {"account_ids": [accounts[(i * 7919 + n) % len(accounts)]]},
        headers,
        args.clients,
        args.seconds,
    )
    port = free_port()
    mlflow_server = Server(
        [
            str(VENV_BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            "models:/csa-churn@champion",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        {
            "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        },
        f"http://127.0.0.1:{port}/ping",
        settings.home / "mlflow-serve.log",
    )
    try:
        probe = requests.post(
            f"http://127.0.0.1:{port}/invocations", json={"dataframe_records": rows[:1]}, timeout=30
        )
        if probe.status_code != 200:
            raise RuntimeError(f"mlflow models serve refused the payload: {probe.text[:500]}")
        baseline = drive(
            f"http://127.0.0.1:{port}/invocations",
            lambda i, n: {"dataframe_records": [rows[(i * 7919 + n) % len(rows)]]},
            {},
            args.clients,
            args.seconds,
        )
    finally:
        mlflow_server.stop()
    ratio = ours["requests_per_s"] / max(baseline["requests_per_s"], 1e-9)
    report(
        "serving_churn",
        ours,
        baseline,
        ratio,
        "requests/s of /churn (online lookup) over mlflow models serve (goal >= 10, p99 <= 25 ms)",
        {"clients": args.clients, "seconds": args.seconds},
    )


def bench_framework(settings: Settings, headers: dict[str, str], url: str, args: Any) -> None:
    print("== framework: /churn on BentoML vs the same middleware and handler on Starlette")
    accounts = active_accounts(settings)

    def body(i: int, n: int) -> Any:
        return {"account_ids": [accounts[(i * 7919 + n) % len(accounts)]]}

    ours = drive(f"{url}/churn", body, headers, args.clients, args.seconds)
    port = free_port()
    bare = Server(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "bench_serving:starlette_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--app-dir",
            str(Path(__file__).resolve().parent),
        ],
        {"CSA_HOME": str(settings.home), "CSA_PROFILE": settings.profile},
        f"http://127.0.0.1:{port}/readyz",
        settings.home / "starlette.log",
    )
    try:
        baseline = drive(
            f"http://127.0.0.1:{port}/churn", body, headers, args.clients, args.seconds
        )
    finally:
        bare.stop()
    ratio = ours["requests_per_s"] / max(baseline["requests_per_s"], 1e-9)
    report(
        "serving_framework",
        ours,
        baseline,
        ratio,
        "requests/s of BentoML over bare Starlette, same handler (goal >= 0.5)",
        {"clients": args.clients, "seconds": args.seconds},
    )


def sentiment_load(url: str, headers: dict[str, str], args: Any) -> dict[str, Any]:
    texts = [
        "Support fixed the export within the hour, great work.",
        "The dashboard keeps timing out and nobody answers our tickets.",
        "Renewal call went fine; pricing still feels high.",
        "We love the new reporting features!",
    ]
    return drive(
        f"{url}/sentiment",
        lambda i, n: {"texts": [f"{texts[(i + n) % 4]} ({i}-{n})"]},
        headers,
        args.clients,
        args.seconds,
        items=lambda body: len(body["texts"]),
    )


def bench_events(settings: Settings, headers: dict[str, str], url: str, args: Any) -> None:
    print("== /events: durable intake over HTTP vs EventIntake.accept in process")
    from csa.serving.intake import EventIntake

    accounts = active_accounts(settings)
    per_call = args.events_per_call
    ours = drive(
        f"{url}/events",
        lambda i, n: {"events": track_calls(accounts, f"http-{i}-{n}", per_call)},
        headers,
        args.clients,
        args.seconds,
        items=lambda body: len(body["events"]),
    )
    intake = EventIntake(settings)
    accepted, started, call = 0, time.perf_counter(), 0
    while time.perf_counter() - started < args.seconds:
        accepted += intake.accept(track_calls(accounts, f"direct-{call}", per_call)).accepted
        call += 1
    baseline = {"items_per_s": round(accepted / (time.perf_counter() - started), 1)}
    ratio = ours["items_per_s"] / max(baseline["items_per_s"], 1e-9)
    report(
        "serving_events",
        ours,
        baseline,
        ratio,
        "events/s accepted over HTTP / in process (goal: 5,000 events/s over HTTP)",
        {"events_per_call": per_call, "clients": args.clients},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=120)
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--events-per-call", type=int, default=200)
    args = parser.parse_args()
    os.environ.update(TELEMETRY_OFF)
    # The tests' short label windows: a small company still trains, and serving is what counts.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.company import SHORT_WINDOWS

    os.environ.update(SHORT_WINDOWS)

    with tempfile.TemporaryDirectory(prefix="csa-bench-serving-") as scratch:
        settings, headers = prepare(Path(scratch), args)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = csa_serve(settings, port, settings.home / "serve.log")
        try:
            bench_churn(settings, headers, url, args)
            bench_framework(settings, headers, url, args)
            print("== /sentiment: one text per call, batched vs batching off")
            batched = sentiment_load(url, headers, args)
            bench_events(settings, headers, url, args)
        finally:
            server.stop()
        port = free_port()
        unbatched_server = csa_serve(
            settings,
            port,
            settings.home / "serve-unbatched.log",
            CSA_SERVING__SENTIMENT_MAX_BATCH_SIZE="1",
            CSA_SERVING__SENTIMENT_MAX_WAIT_MS="0",
        )
        try:
            unbatched = sentiment_load(f"http://127.0.0.1:{port}", headers, args)
        finally:
            unbatched_server.stop()
        ratio = batched["items_per_s"] / max(unbatched["items_per_s"], 1e-9)
        report(
            "serving_sentiment",
            batched,
            unbatched,
            ratio,
            "texts/s with batching over batching off, one text per call (goal >= 3)",
            {"clients": args.clients, "seconds": args.seconds},
        )


if __name__ == "__main__":
    main()
