"""The access middleware on its own: overload, streamed bodies, keys reloaded while running."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from csa.serving.access import AccessMiddleware, KeyStore
from csa.settings import Settings


def slow_app(release: asyncio.Event) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def test_requests_past_the_concurrency_limit_get_503_with_retry_after(settings: Settings) -> None:
    settings.serving.max_concurrency = 1
    keys = KeyStore(settings)
    key, _ = keys.create("app")
    release = asyncio.Event()
    app = AccessMiddleware(slow_app(release), settings=settings, keys=keys)
    headers = {"Authorization": f"Bearer {key}"}

    async def scenario() -> tuple[int, int, str | None]:
        async with client_for(app) as client:
            first = asyncio.create_task(client.post("/churn", json={}, headers=headers))
            await asyncio.sleep(0.05)
            second = await client.post("/churn", json={}, headers=headers)
            release.set()
            return (await first).status_code, second.status_code, second.headers.get("retry-after")

    assert asyncio.run(scenario()) == (200, 503, "1")


def test_a_streamed_body_over_the_cap_gets_413(settings: Settings) -> None:
    settings.serving.max_body_bytes = 1024
    keys = KeyStore(settings)
    key, _ = keys.create("app")
    release = asyncio.Event()
    release.set()
    app = AccessMiddleware(slow_app(release), settings=settings, keys=keys)

    async def chunks() -> Any:
        for _ in range(10):
            yield b"x" * 512

    async def scenario() -> int:
        async with client_for(app) as client:
            response = await client.post(
                "/churn", content=chunks(), headers={"Authorization": f"Bearer {key}"}
            )
            return response.status_code

    assert asyncio.run(scenario()) == 413


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/metrics"])
def test_open_paths_pass_without_a_key(settings: Settings, path: str) -> None:
    release = asyncio.Event()
    release.set()
    app = AccessMiddleware(slow_app(release), settings=settings, keys=KeyStore(settings))

    async def scenario() -> int:
        async with client_for(app) as client:
            return (await client.get(path)).status_code

    assert asyncio.run(scenario()) == 200


def test_a_key_created_after_start_is_accepted(settings: Settings) -> None:
    keys = KeyStore(settings)
    assert keys.resolve("csa_nothing") is None
    key, key_id = KeyStore(settings).create("csm", "new hire")

    resolved = keys.resolve(key)

    assert resolved is not None
    assert resolved[0].name == "csm" and resolved[1] == key_id
