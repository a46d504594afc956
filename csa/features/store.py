"""The Feast store of a ``CSA_HOME``: its configuration per profile, apply and materialize.

The profile's template in ``feature_repo/`` is rendered into
``<home>/feature_repo_state/feature_store.yaml``; the registry and the SQLite online store live
beside it. Which stores these are is configuration only: no code below branches on the profile.

Materialization writes the latest snapshot of every account through the online store's own
``online_write_batch`` (so the bytes are exactly what Feast reads), but skips what makes
``FeatureStore.materialize`` slow for a full load: the per-view offline query plan and the
value-by-value type inference of its Arrow-to-proto conversion.
"""

from __future__ import annotations

import logging
import os
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import duckdb
import pyarrow as pa
from feast import FeatureStore, FeatureView
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from redis.exceptions import RedisError

from csa.errors import ConfigError, LakeError, StoreUnavailable
from csa.features.build import check_feature_settings, feature_table_path
from csa.features.definitions import BATCH_GROUPS, JOIN_KEY, SNAPSHOT_TIME
from csa.features.repo import feast_objects
from csa.settings import REPO_ROOT, Settings

logger = logging.getLogger(__name__)

TEMPLATE_DIR = REPO_ROOT / "feature_repo"

# What an online store that does not answer raises. The Redis client's errors do not derive
# from the built-in ConnectionError, so they are named here for every caller to catch.
STORE_DOWN_ERRORS: tuple[type[Exception], ...] = (
    ConnectionError,
    TimeoutError,
    OSError,
    RedisError,
)

# Feast reads this at import and on every call; the platform never reports usage anywhere.
os.environ.setdefault("FEAST_USAGE", "False")


def state_dir(settings: Settings) -> Path:
    """Where the rendered Feast configuration, the file registry and SQLite store live."""
    return settings.home / "feature_repo_state"


def redis_connection_string(redis_url: str, timeout_seconds: float) -> str:
    """Feast's ``host:port,db=N,...`` form of a ``redis://`` URL, with socket timeouts.

    Without timeouts a Redis that stops answering blocks a scoring request forever.
    """
    parsed = urlparse(redis_url)
    if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
        raise ConfigError(
            f"stores.redis_url {redis_url!r} is not a redis:// URL; "
            "set CSA_REDIS_URL to e.g. redis://127.0.0.1:6379/0."
        )
    parts = [f"{parsed.hostname}:{parsed.port or 6379}"]
    database = parsed.path.strip("/") or "0"
    parts.append(f"db={int(database)}")
    if parsed.password:
        parts.append(f"password={unquote(parsed.password)}")
    if parsed.username:
        parts.append(f"username={unquote(parsed.username)}")
    if parsed.scheme == "rediss":
        parts.append("ssl=true")
    parts += [f"socket_timeout={timeout_seconds}", f"socket_connect_timeout={timeout_seconds}"]
    return ",".join(parts)


def registry_url(postgres_url: str) -> str:
    """The SQLAlchemy URL of the SQL registry, on the psycopg 3 driver the stack installs."""
    if postgres_url.startswith("postgresql://") or postgres_url.startswith("postgres://"):
        return "postgresql+psycopg://" + postgres_url.split("://", 1)[1]
    return postgres_url


def render_config(settings: Settings) -> str:
    """The profile's ``feature_store.yaml`` with every placeholder filled from ``settings``."""
    template_path = TEMPLATE_DIR / f"feature_store.{settings.profile}.yaml"
    if not template_path.exists():
        raise ConfigError(
            f"no Feast template for profile {settings.profile!r} at {template_path}; "
            "use CSA_PROFILE=local or production."
        )
    stores = settings.stores
    values = {
        "project": settings.features.project,
        "state_dir": str(state_dir(settings)),
        "registry_url": registry_url(stores.postgres_url),
        "redis_connection": redis_connection_string(stores.redis_url, stores.timeout_seconds),
    }
    return string.Template(template_path.read_text()).substitute(values)


def open_store(settings: Settings) -> FeatureStore:
    """The Feast ``FeatureStore`` of this home and profile.

    Raises:
        StoreUnavailable: the registry's database does not answer.
    """
    folder = state_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "feature_store.yaml"
    rendered = render_config(settings)
    if not config_path.exists() or config_path.read_text() != rendered:
        config_path.write_text(rendered)
    try:
        return FeatureStore(repo_path=str(folder))
    except Exception as exc:  # the SQL registry connects on construction
        raise _unavailable("the Feast registry", settings, exc) from exc


def _unavailable(what: str, settings: Settings, exc: Exception) -> StoreUnavailable:
    return StoreUnavailable(
        f"{what} of profile {settings.profile!r} is unreachable ({type(exc).__name__}: "
        f"{exc}); start it or point CSA_POSTGRES_URL / CSA_REDIS_URL at a running one."
    )


@dataclass
class ApplyResult:
    """What ``apply_definitions`` registered."""

    objects: int
    seconds: float


def apply_definitions(settings: Settings) -> ApplyResult:
    """Register the entity, views and services, and create the online tables.

    Raises:
        LakeError: ``csa features build`` has not written the feature tables yet.
    """
    check_feature_settings(settings)
    started = time.perf_counter()
    missing = [
        g.name
        for g in BATCH_GROUPS
        if not feature_table_path(settings.features_dir, g.name).exists()
    ]
    if missing:
        raise LakeError(
            f"feature tables {', '.join(missing)} are missing from {settings.features_dir}; "
            "run `csa features build` first."
        )
    store = open_store(settings)
    objects = feast_objects(settings)
    try:
        store.apply(list(objects))
    except STORE_DOWN_ERRORS as exc:
        raise _unavailable("the Feast online store", settings, exc) from exc
    seconds = time.perf_counter() - started
    logger.info("applied %d Feast objects in %.2f s", len(objects), seconds)
    return ApplyResult(objects=len(objects), seconds=seconds)


@dataclass
class MaterializeResult:
    """Rows written per feature view and the time it took."""

    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def materialize_latest(settings: Settings, end: datetime | None = None) -> MaterializeResult:
    """Write each account's latest snapshot (at or before ``end``) of every view online.

    Raises:
        LakeError: the views were not applied (run ``csa features apply``).
        StoreUnavailable: the online store does not answer.
    """
    started = time.perf_counter()
    store = open_store(settings)
    config = store.config
    online_store = store._get_provider().online_store  # Feast's own adapter for the store
    result = MaterializeResult()
    for group in BATCH_GROUPS:
        view = _registered_view(store, group.name)
        latest = latest_rows(feature_table_path(settings.features_dir, group.name), end)
        written = 0
        try:
            for batch in _proto_batches(latest, view, settings.features.write_batch_rows):
                online_store.online_write_batch(config, view, batch, progress=None)
                written += len(batch)
        except STORE_DOWN_ERRORS as exc:
            raise _unavailable("the Feast online store", settings, exc) from exc
        result.rows[group.name] = written
    result.seconds = time.perf_counter() - started
    logger.info(
        "materialized %d rows into the %s online store in %.2f s",
        result.total_rows,
        config.online_store.type,
        result.seconds,
    )
    return result


def _registered_view(store: FeatureStore, name: str) -> FeatureView:
    try:
        return store.get_feature_view(name)
    except Exception as exc:
        raise LakeError(
            f"feature view {name!r} is not registered; run `csa features apply` first."
        ) from exc


def latest_rows(path: Path, end: datetime | None = None) -> pa.Table:
    """Each account's newest row of a feature table, at or before ``end`` when given."""
    if not path.exists():
        raise LakeError(f"feature table {path} is missing; run `csa features build` first.")
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        where = "WHERE as_of <= $end" if end is not None else ""
        query = (
            f"SELECT * FROM read_parquet($path) {where} "
            f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {JOIN_KEY} ORDER BY {SNAPSHOT_TIME} DESC) = 1"
        )
        params: dict[str, Any] = {"path": str(path)}
        if end is not None:
            params["end"] = end
        return con.sql(query, params=params).to_arrow_table()
    finally:
        con.close()


# One online row as ``online_write_batch`` takes it: key, values, event time, created time.
_OnlineRow = tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]


def _proto_batches(
    table: pa.Table, view: FeatureView, batch_rows: int
) -> Iterator[list[_OnlineRow]]:
    """Rows in the shape ``online_write_batch`` takes, ``batch_rows`` accounts at a time.

    Each column's proto field is known from the view's schema, so values are set directly
    instead of being type-inferred one at a time; a null stays an empty ``Value``, which is how
    Feast itself stores a missing value.
    """
    fields = [(f.name, _proto_field(f.dtype)) for f in view.features]
    for start in range(0, table.num_rows, batch_rows):
        chunk = table.slice(start, batch_rows)
        accounts = chunk.column(JOIN_KEY).to_pylist()
        times = chunk.column(SNAPSHOT_TIME).to_pylist()
        columns = [(name, attr, chunk.column(name).to_pylist()) for name, attr in fields]
        batch: list[_OnlineRow] = []
        for row, account in enumerate(accounts):
            values: dict[str, ValueProto] = {}
            for name, attr, column in columns:
                value = column[row]
                proto = ValueProto()
                if value is not None and value == value:  # NaN is stored as missing too
                    setattr(proto, attr, value)
                values[name] = proto
            key = EntityKeyProto(
                join_keys=[JOIN_KEY], entity_values=[ValueProto(string_val=account)]
            )
            batch.append((key, values, times[row], None))
        yield batch


def _proto_field(dtype: Any) -> str:
    name = str(dtype).lower()
    for kind, attr in (("int64", "int64_val"), ("float64", "double_val"), ("string", "string_val")):
        if kind in name:
            return attr
    raise ConfigError(f"feature type {dtype} has no online encoding; use Int64, Float64 or String.")
