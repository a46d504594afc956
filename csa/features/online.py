"""Online feature reads for scoring: the latest values of one or many accounts.

``OnlineFeatureReader`` reads the bytes Feast's online store holds, addressed the way Feast
addresses them (its entity-key serialisation, table names and Redis field hashes) and decoded
from Feast's ``Value`` protos. What ``FeatureStore.get_online_features`` does again on every
call (resolve the feature service in the registry, build entity-key protos, infer types,
assemble a response proto) is done once per service or per account and cached.

Feast's online path does not enforce a view's TTL: a value older than the TTL is returned here
too, flagged ``stale`` so the caller decides.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from feast import FeatureStore, FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, compute_table_id, compute_versioned_name
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from google.protobuf.timestamp_pb2 import Timestamp

from csa.errors import ConfigError, StoreUnavailable
from csa.features.definitions import JOIN_KEY
from csa.features.store import STORE_DOWN_ERRORS, open_store
from csa.settings import Settings

logger = logging.getLogger(__name__)

# Serialised keys are tiny; bounding the cache only guards against an unbounded id stream.
_MAX_CACHED_KEYS = 200_000
_MAX_CACHED_VALUES = 500_000


class FeatureValue(NamedTuple):
    """One feature of one account as the online store holds it."""

    value: Any
    event_ts: dt.datetime | None
    stale: bool


AccountFeatures = dict[str, dict[str, FeatureValue]]
# Per view and account: (event time, {feature: serialised Value}) or None when absent.
_ViewRows = list[tuple[dt.datetime | None, dict[str, bytes]] | None]


@dataclass
class _ViewPlan:
    view: FeatureView
    features: list[str]
    ttl: dt.timedelta | None
    table: str  # the SQLite table / Redis hash prefix Feast uses for this view
    fields: list[bytes] = field(default_factory=list)  # Redis hash fields, timestamp last


@dataclass
class _ServicePlan:
    views: list[_ViewPlan]
    hidden: set[tuple[str, str]]  # features read only as inputs of on-demand views
    on_demand: list[OnDemandFeatureView]
    sql: dict[int, str] = field(default_factory=dict)


def decode_value(raw: bytes) -> Any:
    """The Python value of a serialised Feast ``Value`` (None when it holds nothing)."""
    proto = ValueProto()
    proto.ParseFromString(raw)
    kind = proto.WhichOneof("val")
    return None if kind is None else getattr(proto, kind)


class _DecodeCache(dict[bytes, Any]):
    """Decoded values by their serialised bytes.

    A ``Value``'s bytes determine its value, and feature values repeat heavily (counts, plans,
    flags), so a dictionary lookup replaces most proto parses on the scoring path.
    """

    def __missing__(self, raw: bytes) -> Any:
        if len(self) >= _MAX_CACHED_VALUES:
            self.clear()
        value = self[raw] = decode_value(raw)
        return value


class OnlineFeatureReader:
    """Reads a feature service's values for accounts from the profile's online store.

    Example::

        reader = OnlineFeatureReader(settings)
        values = reader.read("churn", ["acc-1", "acc-2"])
        values["acc-1"]["events_30d"]  # FeatureValue(value=412, event_ts=..., stale=False)
    """

    def __init__(self, settings: Settings, store: FeatureStore | None = None) -> None:
        self._store = store or open_store(settings)
        self._config = self._store.config
        # Typed loosely: the SQLite and Redis adapters each add their own connection getter.
        self._online: Any = self._store._get_provider().online_store
        self._kind = self._config.online_store.type
        self._project = self._config.project
        self._key_version = self._config.entity_key_serialization_version
        self._registry_ttl = float(self._config.registry.cache_ttl_seconds or 0)
        self._plans: dict[str, _ServicePlan] = {}
        self._plans_loaded = time.monotonic()
        self._keys: dict[str, bytes] = {}
        self._values = _DecodeCache()

    # Registry lookups, cached
    def refresh(self) -> None:
        """Forget cached definitions; the next read resolves services from the registry."""
        self._store.refresh_registry()
        self._plans.clear()
        self._plans_loaded = time.monotonic()

    def _plan(self, service: str) -> _ServicePlan:
        if self._registry_ttl and time.monotonic() - self._plans_loaded > self._registry_ttl:
            self.refresh()
        plan = self._plans.get(service)
        if plan is None:
            plan = self._plans[service] = self._resolve(service)
        return plan

    def _resolve(self, service: str) -> _ServicePlan:
        try:
            feature_service = self._store.get_feature_service(service)
        except Exception as exc:
            raise ConfigError(
                f"feature service {service!r} is not registered; use churn or expansion, "
                "and run `csa features apply` if the store is new."
            ) from exc
        wanted: dict[str, list[str]] = {}
        on_demand: list[OnDemandFeatureView] = []
        for projection in feature_service.feature_view_projections:
            names = [f.name for f in projection.features]
            try:
                self._store.get_feature_view(projection.name)
                wanted.setdefault(projection.name, []).extend(names)
            except Exception:
                on_demand.append(self._store.get_on_demand_feature_view(projection.name))
        # Inputs of on-demand views must be read even when the service does not list them.
        hidden: set[tuple[str, str]] = set()
        for odfv in on_demand:
            for source in odfv.source_feature_view_projections.values():
                for feature in source.features:
                    if feature.name not in wanted.setdefault(source.name, []):
                        wanted[source.name].append(feature.name)
                        hidden.add((source.name, feature.name))
        views = [self._view_plan(name, features) for name, features in wanted.items()]
        return _ServicePlan(views=views, hidden=hidden, on_demand=on_demand)

    def _view_plan(self, name: str, features: list[str]) -> _ViewPlan:
        view = self._store.get_feature_view(name)
        versioning = self._config.registry.enable_online_feature_view_versioning
        versioned = compute_versioned_name(view, versioning)
        plan = _ViewPlan(
            view=view,
            features=features,
            ttl=view.ttl if view.ttl and view.ttl.total_seconds() > 0 else None,
            table=compute_table_id(self._project, view, versioning),
        )
        plan.fields = [_mmh3(f"{versioned}:{f}") for f in features]
        plan.fields.append(f"_ts:{versioned}".encode())
        return plan

    def _entity_key(self, account_id: str) -> bytes:
        key = self._keys.get(account_id)
        if key is None:
            if len(self._keys) >= _MAX_CACHED_KEYS:
                self._keys.clear()
            proto = EntityKeyProto(
                join_keys=[JOIN_KEY], entity_values=[ValueProto(string_val=account_id)]
            )
            key = serialize_entity_key(proto, entity_key_serialization_version=self._key_version)
            self._keys[account_id] = key
        return key

    # Reads
    def read(
        self, service: str, account_ids: Sequence[str], now: dt.datetime | None = None
    ) -> AccountFeatures:
        """Every feature of ``service`` for each account, with event time and staleness.

        Args:
            service: feature service name (``churn`` or ``expansion``).
            account_ids: accounts to read; unknown ones map every feature to a missing value.
            now: the instant staleness is judged at (default: the current time).

        Returns:
            ``{account_id: {feature: FeatureValue(value, event_ts, stale)}}``. A value is
            stale when ``event_ts + ttl < now``; a missing value is ``(None, None, True)``.

        Raises:
            StoreUnavailable: the online store does not answer.
        """
        plan = self._plan(service)
        now = now or dt.datetime.now(dt.UTC)
        account_ids = list(dict.fromkeys(account_ids))  # a repeated id is read once
        keys = [self._entity_key(account) for account in account_ids]
        try:
            rows = self._fetch(plan, account_ids, keys)
        except STORE_DOWN_ERRORS as exc:
            raise StoreUnavailable(
                f"the {self._kind} online store did not answer ({exc}); check that it runs "
                "and that CSA_REDIS_URL points at it."
            ) from exc
        missing = FeatureValue(None, None, True)
        decoded = self._values
        result: AccountFeatures = {account: {} for account in account_ids}
        for view_plan, view_rows in zip(plan.views, rows, strict=True):
            names = view_plan.features
            for account, found in zip(account_ids, view_rows, strict=True):
                features = result[account]
                if found is None:
                    for name in names:
                        features[name] = missing
                    continue
                event_ts, raw = found
                stale = event_ts is None or (
                    view_plan.ttl is not None and event_ts + view_plan.ttl < now
                )
                for name in names:
                    blob = raw.get(name)
                    value = None if blob is None else decoded[blob]
                    features[name] = FeatureValue(value, event_ts, stale)
        if plan.on_demand:
            self._transform(plan, result, account_ids)
        if plan.hidden:
            hidden_names = {name for _, name in plan.hidden}
            for features in result.values():
                for name in hidden_names:
                    features.pop(name, None)
        return result

    def _fetch(
        self, plan: _ServicePlan, account_ids: list[str], keys: list[bytes]
    ) -> list[_ViewRows]:
        if self._kind == "sqlite":
            return self._fetch_sqlite(plan, keys)
        if self._kind == "redis":
            return self._fetch_redis(plan, keys)
        return self._fetch_generic(plan, account_ids)

    def _fetch_sqlite(self, plan: _ServicePlan, keys: list[bytes]) -> list[_ViewRows]:
        conn = self._online._get_conn(self._config)
        sql = plan.sql.get(len(keys))
        if sql is None:
            # One statement for every view; the timestamp comes back as its stored integer so
            # that it is converted once per account and view rather than once per feature.
            marks = ",".join("?" * len(keys))
            sql = " UNION ALL ".join(
                f"SELECT {i}, entity_key, feature_name, value, CAST(event_ts AS INTEGER) "
                f'FROM "{view.table}" WHERE entity_key IN ({marks})'
                for i, view in enumerate(plan.views)
            )
            plan.sql[len(keys)] = sql
        position = {key: index for index, key in enumerate(keys)}
        found: list[dict[int, tuple[int, dict[str, bytes]]]] = [{} for _ in plan.views]
        for view_index, key, name, value, ts in conn.execute(sql, keys * len(plan.views)):
            row = found[view_index].get(position[key])
            if row is None:
                row = found[view_index][position[key]] = (ts, {})
            row[1][name] = value
        return [
            [
                None if (hit := per_view.get(i)) is None else (_parse_sqlite_ts(hit[0]), hit[1])
                for i in range(len(keys))
            ]
            for per_view in found
        ]

    def _fetch_redis(self, plan: _ServicePlan, keys: list[bytes]) -> list[_ViewRows]:
        client = self._online._get_client(self._config.online_store)
        project = self._project.encode()
        # One HMGET per account covers every view: Feast keeps an entity's views in one hash.
        fields = [f for view in plan.views for f in view.fields]
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key + project, fields)
            replies = pipe.execute()
        result: list[_ViewRows] = []
        offset = 0
        for view in plan.views:
            width = len(view.fields)
            rows: _ViewRows = []
            for reply in replies:
                chunk = reply[offset : offset + width]
                ts_raw = chunk[-1]
                if ts_raw is None:
                    rows.append(None)
                    continue
                stamp = Timestamp()
                stamp.ParseFromString(ts_raw)
                event_ts = dt.datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, tz=dt.UTC)
                raw = {
                    name: blob
                    for name, blob in zip(view.features, chunk[:-1], strict=True)
                    if blob is not None
                }
                rows.append((event_ts, raw))
            result.append(rows)
            offset += width
        return result

    def _fetch_generic(self, plan: _ServicePlan, account_ids: list[str]) -> list[_ViewRows]:
        # Any other store: its own online_read, one call per view.
        protos = [
            EntityKeyProto(join_keys=[JOIN_KEY], entity_values=[ValueProto(string_val=a)])
            for a in account_ids
        ]
        result: list[_ViewRows] = []
        for view in plan.views:
            rows: _ViewRows = []
            for event_ts, values in self._online.online_read(
                self._config, view.view, protos, list(view.features)
            ):
                if values is None:
                    rows.append(None)
                else:
                    raw = {name: proto.SerializeToString() for name, proto in values.items()}
                    rows.append((event_ts, raw))
            result.append(rows)
        return result

    def _transform(
        self, plan: _ServicePlan, result: AccountFeatures, account_ids: Sequence[str]
    ) -> None:
        for odfv in plan.on_demand:
            inputs_names = [
                f.name for s in odfv.source_feature_view_projections.values() for f in s.features
            ]
            inputs = {
                name: [result[account][name].value for account in account_ids]
                for name in inputs_names
            }
            udf = odfv.feature_transformation.udf  # type: ignore[union-attr]
            outputs = udf(inputs)
            for index, account in enumerate(account_ids):
                sources = [result[account][name] for name in inputs_names]
                times = [s.event_ts for s in sources if s.event_ts is not None]
                event_ts = min(times) if times else None
                stale = any(s.stale for s in sources)
                for feature in odfv.features:
                    value = outputs[feature.name][index]
                    result[account][feature.name] = FeatureValue(value, event_ts, stale)


def _parse_sqlite_ts(epoch: int | None) -> dt.datetime | None:
    # Feast's SQLite adapter stores a naive UTC datetime as int(naive.timestamp()) and reads it
    # back with fromtimestamp(): undo exactly that pair, whatever the machine's time zone.
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch).replace(tzinfo=dt.UTC)
