"""Online feature reads for scoring: the latest values of one or many accounts.

``OnlineFeatureReader`` reads the bytes Feast's online store holds, addressed the way Feast
addresses them (its entity-key serialisation, table names and Redis field hashes) and decoded
from Feast's ``Value`` protos. What ``FeatureStore.get_online_features`` does again on every
call (resolve the feature service in the registry, build entity-key protos, infer types,
assemble a response proto) is done once per service or per account and cached, and each
distinct stored value is decoded once.

Feast's online path does not enforce a view's TTL: a value older than the TTL is returned here
too, flagged ``stale`` so the caller decides.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from feast import FeatureStore, FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, compute_table_id, compute_versioned_name
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from google.protobuf.timestamp_pb2 import Timestamp
from redis.backoff import NoBackoff
from redis.retry import Retry

from csa.errors import ConfigError, StoreUnavailable
from csa.features.definitions import JOIN_KEY
from csa.features.store import STORE_DOWN_ERRORS, open_store
from csa.settings import Settings

logger = logging.getLogger(__name__)

# Serialised keys are tiny; bounding the caches only guards against an unbounded id stream
# and an unbounded stream of distinct values and event times.
_MAX_CACHED_KEYS = 200_000
_MAX_CACHED_VALUES = 500_000


class FeatureValue(NamedTuple):
    """One feature of one account as the online store holds it."""

    value: Any
    event_ts: dt.datetime | None
    stale: bool


AccountFeatures = dict[str, dict[str, FeatureValue]]
_MISSING = FeatureValue(None, None, True)


@dataclass
class _ViewPlan:
    view: FeatureView
    features: list[str]
    ttl: dt.timedelta | None
    table: str  # the SQLite table / Redis hash prefix Feast uses for this view
    fields: list[bytes] = field(default_factory=list)  # Redis hash fields, timestamp last
    complete: bool = True  # the service reads every feature the view stores


@dataclass
class _OnDemandPlan:
    view: OnDemandFeatureView
    inputs: list[str]  # every feature of its source views, as Feast passes them
    # One feature per source view: all features of a stored row share its event time.
    timed_by: list[str]


@dataclass
class _ServicePlan:
    views: list[_ViewPlan]
    hidden: set[tuple[str, str]]  # features read only as inputs of on-demand views
    on_demand: list[_OnDemandPlan]
    sql: dict[int, str] = field(default_factory=dict)
    # Every stored feature as None, in view order: copied per account, so that each result
    # comes out in the same order and is never resized while it is filled.
    template: dict[str, Any] = field(default_factory=dict)
    fields: list[bytes] = field(default_factory=list)  # every view's Redis fields in turn

    def __post_init__(self) -> None:
        self.template = dict.fromkeys(name for view in self.views for name in view.features)
        self.fields = [f for view in self.views for f in view.fields]


def decode_value(raw: bytes) -> Any:
    """The Python value of a serialised Feast ``Value`` (None when it holds nothing)."""
    proto = ValueProto()
    proto.ParseFromString(raw)
    kind = proto.WhichOneof("val")
    return None if kind is None else getattr(proto, kind)


class _ValueGroup(dict[bytes | None, FeatureValue]):
    """One view's values at one event time and staleness, by their serialised bytes.

    A ``Value``'s bytes determine its value, feature values repeat heavily across accounts at
    a snapshot time (counts, plans, flags), and a ``FeatureValue`` is immutable: each is built
    once and shared by every account and read that finds the same bytes. A read then allocates
    almost nothing per feature, which also keeps the garbage collector's full passes rare
    (tens of milliseconds each in a process that holds Feast and pandas).
    """

    def __init__(self, owner: _SharedValues, event_ts: dt.datetime | None, stale: bool) -> None:
        self.owner = owner
        self.absent = FeatureValue(None, event_ts, stale)
        super().__init__({None: self.absent})  # a feature the stored row lacks

    def __missing__(self, raw: bytes | None) -> FeatureValue:
        assert raw is not None  # present from the start
        self.owner.size += 1
        value = self[raw] = self.absent._replace(value=decode_value(raw))
        return value


class _Stamp(NamedTuple):
    """A view's stored timestamp: its value groups while fresh and once stale."""

    fresh_until: dt.datetime | None  # None: never turns stale (no TTL, or always stale)
    fresh: _ValueGroup
    stale: _ValueGroup

    def group_at(self, now: dt.datetime) -> _ValueGroup:
        if self.fresh_until is None or now <= self.fresh_until:
            return self.fresh
        return self.stale


class _SharedValues:
    """Every view's stored timestamps seen so far with their value groups, bounded in size.

    Timestamps repeat across accounts as much as values do, so each is parsed once.
    """

    def __init__(self) -> None:
        self.stamps: dict[str, dict[Any, _Stamp]] = {}
        self.size = 0

    def stamp(
        self, view: _ViewPlan, stored: Any, event_time: Callable[[Any], dt.datetime | None]
    ) -> _Stamp:
        """The entry of ``view``'s timestamp ``stored`` as the store returns it."""
        known = self.stamps.setdefault(view.table, {})
        entry = known.get(stored)
        if entry is not None:
            return entry
        self.size += 1
        event_ts = event_time(stored)
        if event_ts is None:
            undated = _ValueGroup(self, None, True)
            entry = _Stamp(None, undated, undated)
        elif view.ttl is None:
            fresh = _ValueGroup(self, event_ts, False)
            entry = _Stamp(None, fresh, fresh)
        else:
            fresh_until = event_ts + view.ttl  # stale when event_ts + ttl < now
            entry = _Stamp(
                fresh_until, _ValueGroup(self, event_ts, False), _ValueGroup(self, event_ts, True)
            )
        known[stored] = entry
        return entry

    def trim(self) -> None:
        if self.size >= _MAX_CACHED_VALUES:
            self.stamps.clear()
            self.size = 0


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
        self._shared = _SharedValues()
        self._retry_set_on: Any = None

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
        on_demand_plans = [
            _OnDemandPlan(
                view=odfv,
                inputs=[
                    f.name
                    for source in odfv.source_feature_view_projections.values()
                    for f in source.features
                ],
                timed_by=[
                    source.features[0].name
                    for source in odfv.source_feature_view_projections.values()
                    if source.features
                ],
            )
            for odfv in on_demand
        ]
        return _ServicePlan(views=views, hidden=hidden, on_demand=on_demand_plans)

    def _view_plan(self, name: str, features: list[str]) -> _ViewPlan:
        view = self._store.get_feature_view(name)
        versioning = self._config.registry.enable_online_feature_view_versioning
        versioned = compute_versioned_name(view, versioning)
        plan = _ViewPlan(
            view=view,
            features=features,
            ttl=view.ttl if view.ttl and view.ttl.total_seconds() > 0 else None,
            table=compute_table_id(self._project, view, versioning),
            complete=set(features) == {f.name for f in view.features},
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
        self._shared.trim()
        template = plan.template
        rows: list[dict[str, Any]] = [template.copy() for _ in account_ids]
        try:
            found = self._fetch(plan, account_ids, rows, now)
        except STORE_DOWN_ERRORS as exc:
            raise StoreUnavailable(
                f"the {self._kind} online store did not answer ({exc}); check that it runs "
                "and that CSA_REDIS_URL points at it."
            ) from exc
        width = len(template)
        if found != len(account_ids) * width or any(len(f) != width for f in rows):
            for features in rows:
                _complete(plan, features)
        result: AccountFeatures = dict(zip(account_ids, rows, strict=True))
        if plan.on_demand:
            self._transform(plan, result)
        if plan.hidden:
            hidden_names = {name for _, name in plan.hidden}
            for features in result.values():
                for name in hidden_names:
                    features.pop(name, None)
        return result

    # Each fetcher sets the values the store holds in ``rows`` (one dict per account, in the
    # order of ``account_ids``), leaves the others None and returns how many it set.
    def _fetch(
        self,
        plan: _ServicePlan,
        account_ids: list[str],
        rows: list[dict[str, Any]],
        now: dt.datetime,
    ) -> int:
        if not account_ids:
            return 0
        if self._kind == "sqlite":
            return self._fetch_sqlite(plan, account_ids, rows, now)
        if self._kind == "redis":
            return self._fetch_redis(plan, account_ids, rows, now)
        return self._fetch_generic(plan, account_ids, rows, now)

    def _fetch_sqlite(
        self,
        plan: _ServicePlan,
        account_ids: list[str],
        rows: list[dict[str, Any]],
        now: dt.datetime,
    ) -> int:
        conn = self._online._get_conn(self._config)
        sql = plan.sql.get(len(account_ids))
        if sql is None:
            # One statement for every view. Keys are joined by position, so rows name their
            # account by a small integer instead of a key blob to hash; the timestamp comes
            # back as its stored integer, converted once per view and instant, not per value.
            positions = ",".join(f"({i},?)" for i in range(len(account_ids)))
            sql = (
                f"WITH wanted(position, entity_key) AS (VALUES {positions}) "
                + " UNION ALL ".join(
                    f"SELECT {i}, position, feature_name, value, CAST(event_ts AS INTEGER) "
                    f'FROM wanted JOIN "{view.table}" AS stored USING (entity_key)'
                    + (
                        ""
                        if view.complete
                        else f" WHERE feature_name IN ({_quoted(view.features)})"
                    )
                    for i, view in enumerate(plan.views)
                )
            )
            plan.sql[len(account_ids)] = sql
        keys = [self._entity_key(account) for account in account_ids]
        stored = conn.execute(sql, keys).fetchall()
        shared = self._shared
        groups: list[dict[int | None, _ValueGroup]] = [{} for _ in plan.views]
        for view_index, position, name, raw, stamp in stored:
            group = groups[view_index].get(stamp)
            if group is None:
                entry = shared.stamp(plan.views[view_index], stamp, _parse_sqlite_ts)
                group = groups[view_index][stamp] = entry.group_at(now)
            rows[position][name] = group[raw]
        return len(stored)

    def _redis_client(self) -> Any:
        client = self._online._get_client(self._config.online_store)
        if client is not self._retry_set_on:
            # redis-py retries a failed call with exponential backoff, several seconds in all
            # against a Redis that is down; one immediate retry lets a request fail (and the
            # service answer 503) within the socket timeout instead.
            client.set_retry(Retry(NoBackoff(), 1))
            self._retry_set_on = client
        return client

    def _fetch_redis(
        self,
        plan: _ServicePlan,
        account_ids: list[str],
        rows: list[dict[str, Any]],
        now: dt.datetime,
    ) -> int:
        client = self._redis_client()
        project = self._project.encode()
        # One HMGET per account covers every view: Feast keeps an entity's views in one hash.
        fields = plan.fields
        with client.pipeline(transaction=False) as pipe:
            for account in account_ids:
                pipe.hmget(self._entity_key(account) + project, fields)
            replies = pipe.execute()
        shared = self._shared
        groups: list[dict[bytes, _ValueGroup]] = [{} for _ in plan.views]
        found = 0
        for features, reply in zip(rows, replies, strict=True):
            offset = 0
            for view_index, view in enumerate(plan.views):
                end = offset + len(view.fields)
                stamp = reply[end - 1]
                if stamp is not None:
                    group = groups[view_index].get(stamp)
                    if group is None:
                        entry = shared.stamp(view, stamp, _parse_redis_ts)
                        group = groups[view_index][stamp] = entry.group_at(now)
                    # An absent field comes back as None, which every group maps to absent.
                    features.update(
                        zip(
                            view.features,
                            map(group.__getitem__, reply[offset : end - 1]),
                            strict=True,
                        )
                    )
                    found += len(view.features)
                offset = end
        return found

    def _fetch_generic(
        self,
        plan: _ServicePlan,
        account_ids: list[str],
        rows: list[dict[str, Any]],
        now: dt.datetime,
    ) -> int:
        # Any other store: its own online_read, one call per view.
        protos = [
            EntityKeyProto(join_keys=[JOIN_KEY], entity_values=[ValueProto(string_val=a)])
            for a in account_ids
        ]
        found = 0
        for view in plan.views:
            stored = self._online.online_read(self._config, view.view, protos, view.features)
            for features, (event_ts, values) in zip(rows, stored, strict=True):
                if values is None:
                    continue
                group = self._shared.stamp(view, event_ts, _same_instant).group_at(now)
                for name in view.features:
                    value = values.get(name)
                    features[name] = (
                        group.absent if value is None else group[value.SerializeToString()]
                    )
                found += len(view.features)
        return found

    def _transform(self, plan: _ServicePlan, result: AccountFeatures) -> None:
        accounts = list(result.values())
        if not accounts:
            return
        for on_demand in plan.on_demand:
            # Feast's python mode takes one list per input feature.
            per_account = [[features[n].value for n in on_demand.inputs] for features in accounts]
            columns_in = map(list, zip(*per_account, strict=True))
            inputs = dict(zip(on_demand.inputs, columns_in, strict=True))
            udf = on_demand.view.feature_transformation.udf  # type: ignore[union-attr]
            outputs = udf(inputs)
            names = [feature.name for feature in on_demand.view.features]
            columns = [outputs[name] for name in names]
            for index, features in enumerate(accounts):
                sources = [features[name] for name in on_demand.timed_by]
                times = [s.event_ts for s in sources if s.event_ts is not None]
                event_ts = min(times) if times else None
                stale = any([s.stale for s in sources])
                for name, column in zip(names, columns, strict=True):
                    features[name] = FeatureValue(column[index], event_ts, stale)


def _complete(plan: _ServicePlan, features: dict[str, Any]) -> None:
    """Drop what the service does not read and set what the store did not hold.

    A store can keep a feature its view no longer has (Feast leaves such rows behind). A
    feature absent from a view that has the account's row keeps the row's event time;
    without a row, it is missing altogether.
    """
    for name in [name for name in features if name not in plan.template]:
        del features[name]
    for view in plan.views:
        present = next((features[n] for n in view.features if features[n] is not None), None)
        filler = _MISSING if present is None else present._replace(value=None)
        for name in view.features:
            if features[name] is None:
                features[name] = filler


def _same_instant(event_ts: dt.datetime | None) -> dt.datetime | None:
    return event_ts


def _quoted(names: list[str]) -> str:
    return ",".join("'" + name.replace("'", "''") + "'" for name in names)


def _parse_redis_ts(raw: bytes) -> dt.datetime:
    stamp = Timestamp()
    stamp.ParseFromString(raw)
    return dt.datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, tz=dt.UTC)


def _parse_sqlite_ts(epoch: int | None) -> dt.datetime | None:
    # Feast's SQLite adapter stores a naive UTC datetime as int(naive.timestamp()) and reads it
    # back with fromtimestamp(): undo exactly that pair, whatever the machine's time zone.
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch).replace(tzinfo=dt.UTC)
