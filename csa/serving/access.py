"""Who may call the service: API keys, roles, and the middleware that enforces them.

A key is a random token shown once by ``csa keys create``; only its SHA-256 is stored (in
``<home>/data/keys/keys.json``), beside its role and a short public id for audit records. Keys are
high-entropy random strings, so a plain hash is enough: there is nothing to guess.

``AccessMiddleware`` runs in front of every route: health and metrics pass, everything else
needs ``Authorization: Bearer <key>`` of a role allowed on the route. It also caps the request
body (413) so that no handler ever parses an unbounded payload, and limits the requests in
flight (503 with Retry-After). Every denied request is appended to the ``access`` audit log with
the key's public id, never the key or the body.

Every error answer is ``{"error": reason}``, as the OpenAPI document says. BentoML answers a
handler's 5xx with a generic body, a 4xx with the reason wrapped in a list, and a malformed body
with pydantic's error list. So a handler that knows why it failed (an unknown account, a store
that does not answer, a model without champion) leaves the reason in the request's state as
``csa_reason``, and the middleware answers with it (Retry-After on a 503); pydantic's errors
become one line naming each bad field.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from csa.audit import append_record
from csa.errors import ConfigError
from csa.settings import Settings

logger = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/livez", "/readyz", "/metrics", "/healthz"})
FIELD_GROUPS = ("contacts", "texts", "contract")
_KEY_PREFIX = "csa_"


@dataclass(frozen=True)
class Role:
    """What a role may call and see."""

    name: str
    routes: frozenset[str]
    fields: frozenset[str]


def load_roles(path: Path) -> dict[str, Role]:
    """The roles of ``configs/roles.yaml``.

    Raises:
        ConfigError: the file is missing, malformed, or names an unknown field group.
    """
    if not path.exists():
        raise ConfigError(f"no roles file at {path}; restore configs/roles.yaml.")
    try:
        content = yaml.safe_load(path.read_text()) or {}
        roles = {}
        for name, spec in content["roles"].items():
            unknown = set(spec.get("fields", [])) - set(FIELD_GROUPS)
            if unknown:
                raise ConfigError(
                    f"{path}: role {name!r} names unknown field groups {sorted(unknown)}; "
                    f"use {', '.join(FIELD_GROUPS)}."
                )
            roles[name] = Role(
                name, frozenset(spec.get("routes", [])), frozenset(spec.get("fields", []))
            )
        return roles
    except (yaml.YAMLError, KeyError, AttributeError, TypeError) as exc:
        raise ConfigError(
            f"{path} is not a roles file ({exc}); it needs a 'roles' mapping of name to "
            "routes and fields."
        ) from exc


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    """API keys of one home: created, listed, and resolved to a role."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.data_dir / "keys" / "keys.json"
        self._roles = load_roles(settings.config_dir / "roles.yaml")
        self._lock = threading.Lock()
        self._by_hash: dict[str, dict[str, Any]] = {}
        self._loaded_mtime: float | None = None

    def create(self, role: str, name: str = "") -> tuple[str, str]:
        """A new key for ``role``: returns (the key, shown once; its public id).

        Raises:
            ConfigError: the role is not defined in ``configs/roles.yaml``.
        """
        if role not in self._roles:
            raise ConfigError(
                f"unknown role {role!r}; use one of: {', '.join(sorted(self._roles))}."
            )
        key = _KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = secrets.token_hex(4)
        record = {
            "id": key_id,
            "name": name,
            "role": role,
            "sha256": _hash(key),
            "created": dt.datetime.now(dt.UTC).isoformat(),
        }
        with self._lock:
            records = self._read()
            records.append(record)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(".partial")
            partial.write_text(json.dumps(records, indent=1))
            partial.chmod(0o600)
            partial.replace(self.path)
        return key, key_id

    def _read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        records: list[dict[str, Any]] = json.loads(self.path.read_text())
        return records

    def resolve(self, key: str) -> tuple[Role, str] | None:
        """The role and public id of a presented key, or None when it is not a key."""
        self._reload_if_changed()
        record = self._by_hash.get(_hash(key))
        if record is None:
            return None
        role = self._roles.get(record["role"])
        return None if role is None else (role, record["id"])

    def _reload_if_changed(self) -> None:
        # Keys created while the service runs are honoured without a restart.
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            mtime = None
        if mtime != self._loaded_mtime:
            with self._lock:
                self._by_hash = {r["sha256"]: r for r in self._read()}
                self._loaded_mtime = mtime

    def role(self, name: str) -> Role:
        return self._roles[name]


def route_name(path: str) -> str:
    """The route a request path addresses (``/churn`` -> ``churn``)."""
    return path.strip("/").split("/", 1)[0]


class AccessMiddleware:
    """ASGI middleware: body cap, key check, role check, audit of every refusal."""

    def __init__(self, app: Any, settings: Settings, keys: KeyStore) -> None:
        self.app = app
        self.settings = settings
        self.keys = keys
        self.max_body = settings.serving.max_body_bytes
        self.max_in_flight = settings.serving.max_concurrency
        self.in_flight = 0  # one event loop per worker: no lock needed

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            await send_json(
                send, 503, {"error": "too many requests at once; retry"}, [(b"retry-after", b"1")]
            )
            return
        self.in_flight += 1
        try:
            await self._checked(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _checked(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await self._refuse(send, scope, 413, f"request body over {self.max_body} bytes", None)
            return

        # Key and role
        token = headers.get("authorization", "")
        scheme, _, key = token.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            await self._refuse(send, scope, 401, "no key: send Authorization: Bearer <key>", None)
            return
        resolved = self.keys.resolve(key.strip())
        if resolved is None:
            await self._refuse(
                send, scope, 401, "unknown key: create one with csa keys create", None
            )
            return
        role, key_id = resolved
        route = route_name(scope["path"])
        api_route = route in {"churn", "expansion", "sentiment", "account", "events"}
        # Other paths (the OpenAPI document, the index) are open to any valid key.
        if api_route and route not in role.routes:
            await self._refuse(send, scope, 403, f"role {role.name} may not call /{route}", key_id)
            return
        state = scope.setdefault("state", {})
        state["csa_role"] = role.name
        state["csa_key_id"] = key_id
        started = False
        held: dict[str, Any] | None = None  # the start of an error, until its body is read
        body = b""

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started, held, body
            if message["type"] == "http.response.start":
                started = True
                if message["status"] >= 400:
                    held = message
                    return
            elif message["type"] == "http.response.body" and held is not None:
                body += message.get("body", b"")
                if message.get("more_body"):
                    return
                start, held = held, None
                reason = state.get("csa_reason") or error_reason(body)
                if reason is None:  # already in the documented shape
                    await send(start)
                    await send({"type": "http.response.body", "body": body})
                    return
                status = start["status"]
                retry = [(b"retry-after", b"1")] if status == 503 else []
                await send_json(send, status, {"error": str(reason)}, retry)
                return
            await send(message)

        try:
            await self.app(scope, self._capped(receive), tracked_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await self._refuse(send, scope, 413, str(exc), key_id)

    def _capped(self, receive: Any) -> Any:
        # A chunked body has no Content-Length: count what arrives and stop at the cap.
        received = 0
        limit = self.max_body

        async def wrapped() -> dict[str, Any]:
            nonlocal received
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        return wrapped

    async def _refuse(
        self, send: Any, scope: dict[str, Any], status: int, reason: str, key_id: str | None
    ) -> None:
        append_record(
            self.settings,
            "access",
            {
                "event": "denied",
                "status": status,
                "path": scope["path"],
                "key_id": key_id,
                "reason": reason,
            },
        )
        await send_json(send, status, {"error": reason})


def error_reason(body: bytes) -> str | None:
    """The one-line reason of an error body BentoML wrote in another shape, or None."""
    try:
        content = json.loads(body)
    except ValueError:
        return None
    if isinstance(content, list) and len(content) == 1 and isinstance(content[0], dict):
        content = content[0]  # a handler's 4xx, wrapped in a list
        return str(content["error"]) if "error" in content else None
    if isinstance(content, dict) and isinstance(content.get("detail"), list):
        problems = [
            f"{'.'.join(map(str, item.get('loc', []))) or 'body'}: {item.get('msg', item)}"
            for item in content["detail"][:5]
            if isinstance(item, dict)
        ]
        more = len(content["detail"]) - len(problems)
        tail = f" (and {more} more)" if more > 0 else ""
        return "invalid request body: " + "; ".join(problems) + tail
    return None


class BodyTooLarge(Exception):
    """A streamed body passed the cap; the service answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body over {limit} bytes")


async def send_json(
    send: Any, status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(body).encode()
    headers = [
        *(extra or []),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
