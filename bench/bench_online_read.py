"""Online read latency: ``OnlineFeatureReader.read`` against a raw store read and Feast's SDK.

For 1 and for 100 accounts per call, three ways to get the ``churn`` service's values of the
same accounts out of the same online store:

- ours: ``OnlineFeatureReader.read("churn", ids)``, decoded values with event time and staleness,
  on-demand features computed;
- raw, the least any reader must do and so a floor: for SQLite one ``SELECT entity_key,
  feature_name, value, event_ts FROM <table> WHERE entity_key IN (...)`` per view, for Redis one
  pipelined ``HMGET`` per account of the same fields, over Feast's serialised keys computed
  beforehand, rows fetched and nothing decoded;
- the SDK: ``FeatureStore.get_online_features(features=<the churn service>, entity_rows=...)``,
  the service resolved once beforehand and the response left as it comes (no ``to_dict()``).

Each repetition draws its accounts at random from every materialized account, and the three
contenders read the same draws, interleaved so that they share the machine's load. The reader
keeps what a running service keeps: each account's serialised key and the values it decoded.
The local profile uses SQLite; the production profile uses Redis at ``CSA_REDIS_URL`` and the
SQL registry at ``CSA_POSTGRES_URL`` under a Feast project of its own, removed at the end.
Run: ``python bench/bench_online_read.py [--profile local|production|all] [--accounts 2000]``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
from feast import FeatureStore, FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, compute_table_id, compute_versioned_name
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "features"))
from common import report
from synthetic_lake import write_lake

from csa.features import OnlineFeatureReader, apply_definitions, build_features
from csa.features.build import feature_table_path
from csa.features.definitions import JOIN_KEY, USAGE
from csa.features.store import materialize_latest, open_store, registry_url
from csa.settings import Settings, load_settings

SERVICE = "churn"
SIZES = (1, 100)
RATIO_TO_RAW_GOAL = 1.5  # ours / raw at the median, at most
SDK_SPEEDUP_GOAL = 5.0  # SDK / ours at the median, at least
# Feast warns on every apply of the platform's on-demand view; it is there on purpose.
warnings.filterwarnings("ignore", "On demand feature view is an experimental feature")

ReadCall = Callable[[list[str]], Any]


@dataclass
class Contender:
    """One way of reading; ``every`` > 1 times only every n-th repetition (the slow SDK)."""

    name: str
    call: ReadCall
    every: int = 1
    nanoseconds: list[int] = field(default_factory=list)


# Raw reads
def _service_views(store: FeatureStore) -> list[FeatureView]:
    """The batch views the service reads, each with every feature it stores."""
    names = {p.name for p in store.get_feature_service(SERVICE).feature_view_projections}
    return [view for view in store.list_feature_views() if view.name in names]


def _serialised_keys(store: FeatureStore, accounts: list[str]) -> dict[str, bytes]:
    version = store.config.entity_key_serialization_version
    return {
        account: serialize_entity_key(
            EntityKeyProto(join_keys=[JOIN_KEY], entity_values=[ValueProto(string_val=account)]),
            entity_key_serialization_version=version,
        )
        for account in accounts
    }


def sqlite_raw_read(settings: Settings, accounts: list[str]) -> tuple[ReadCall, Callable[[], None]]:
    """One SELECT per view over precomputed keys, rows fetched, nothing decoded."""
    store = open_store(settings)
    config = store.config
    versioning = config.registry.enable_online_feature_view_versioning
    tables = [compute_table_id(config.project, v, versioning) for v in _service_views(store)]
    keys = _serialised_keys(store, accounts)
    con = sqlite3.connect(config.online_store.path, check_same_thread=False)
    statements: dict[int, list[str]] = {}

    def read(ids: list[str]) -> Any:
        sql = statements.get(len(ids))
        if sql is None:
            marks = ",".join("?" * len(ids))
            sql = statements[len(ids)] = [
                f'SELECT entity_key, feature_name, value, event_ts FROM "{table}" '
                f"WHERE entity_key IN ({marks})"
                for table in tables
            ]
        wanted = [keys[account] for account in ids]
        return [con.execute(statement, wanted).fetchall() for statement in sql]

    return read, con.close


def redis_raw_read(settings: Settings, accounts: list[str]) -> tuple[ReadCall, Callable[[], None]]:
    """One pipelined HMGET per account of every feature field and timestamp, not decoded."""
    import redis

    store = open_store(settings)
    config = store.config
    versioning = config.registry.enable_online_feature_view_versioning
    fields: list[bytes] = []
    for view in _service_views(store):
        name = compute_versioned_name(view, versioning)
        fields += [_mmh3(f"{name}:{feature.name}") for feature in view.features]
        fields.append(f"_ts:{name}".encode())
    project = config.project.encode()
    hashes = {account: key + project for account, key in _serialised_keys(store, accounts).items()}
    timeout = settings.stores.timeout_seconds
    # Typed loosely: the client takes bytes keys, which its annotations do not say.
    client: Any = redis.Redis.from_url(
        settings.stores.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
    )

    def read(ids: list[str]) -> Any:
        with client.pipeline(transaction=False) as pipe:
            for account in ids:
                pipe.hmget(hashes[account], fields)
            return pipe.execute()

    return read, client.close


# Stores
def materialized_accounts(settings: Settings) -> list[str]:
    path = str(feature_table_path(settings.features_dir, USAGE.name))
    with contextlib.closing(duckdb.connect()) as con:
        rows = con.execute(
            f"SELECT DISTINCT {JOIN_KEY} FROM read_parquet($path) ORDER BY 1", {"path": path}
        ).fetchall()
    return [row[0] for row in rows]


def production_unreachable(settings: Settings) -> str | None:
    """Why the production stores cannot be used, or None when both answer."""
    import redis
    import sqlalchemy

    try:
        redis.Redis.from_url(
            settings.stores.redis_url, socket_timeout=2, socket_connect_timeout=2
        ).ping()
    except Exception as exc:
        return f"Redis at {settings.stores.redis_url} ({type(exc).__name__}: {exc})"
    try:
        engine = sqlalchemy.create_engine(
            registry_url(settings.stores.postgres_url), connect_args={"connect_timeout": 2}
        )
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL at {settings.stores.postgres_url} ({type(exc).__name__}: {exc})"
    return None


@contextlib.contextmanager
def profile_store(profile: str, features_dir: Path, folder: Path) -> Iterator[Settings | None]:
    """A home of ``profile`` over a copy of the feature tables, applied and materialized.

    Yields None when the production stores do not answer. The production profile registers a
    project of its own name and removes its registry entries and Redis keys afterwards.
    """
    settings = load_settings(profile=profile, home=folder / profile)  # type: ignore[arg-type]
    if profile == "production":
        settings.features.project = f"csa_bench_{uuid.uuid4().hex[:10]}"
        reason = production_unreachable(settings)
        if reason is not None:
            print(f"production stores unreachable, skipping that profile: {reason}")
            yield None
            return
    shutil.copytree(features_dir, settings.features_dir)
    try:
        apply_definitions(settings)
        materialize_latest(settings)
        yield settings
    finally:
        if profile == "production":
            store = open_store(settings)
            views = store.list_feature_views()
            store._get_provider().teardown_infra(store.project, views, store.list_entities())
            store.registry.delete_project(store.project, commit=True)


# Measurement
def measure(
    contenders: list[Contender], accounts: list[str], size: int, repeats: int, seed: int
) -> None:
    """Time every contender on the same random draws, alternating their order."""
    rng = random.Random(seed)
    draws = [rng.sample(accounts, size) for _ in range(repeats)]
    for contender in contenders:
        contender.nanoseconds.clear()
        for ids in draws[:10]:  # connections, statements and the registry get ready
            contender.call(ids)
    for index, ids in enumerate(draws):
        order = contenders if index % 2 == 0 else contenders[::-1]
        for contender in order:
            if index % contender.every:
                continue
            started = time.perf_counter_ns()
            contender.call(ids)
            contender.nanoseconds.append(time.perf_counter_ns() - started)


def summary(contender: Contender) -> dict[str, float]:
    times = np.array(contender.nanoseconds) / 1e6
    return {
        "repetitions": len(times),
        "median_ms": round(float(np.median(times)), 4),
        "p99_ms": round(float(np.percentile(times, 99)), 4),
    }


def run_profile(settings: Settings, args: argparse.Namespace) -> None:
    accounts = materialized_accounts(settings)
    kind = "SQLite" if settings.profile == "local" else "Redis"
    raw_factory = sqlite_raw_read if kind == "SQLite" else redis_raw_read
    raw_call, close_raw = raw_factory(settings, accounts)
    reader = OnlineFeatureReader(settings)
    store = open_store(settings)
    service = store.get_feature_service(SERVICE)

    def sdk_call(ids: list[str]) -> Any:
        return store.get_online_features(
            features=service, entity_rows=[{JOIN_KEY: account} for account in ids]
        )

    sdk_every = max(1, args.repeats // args.sdk_repeats)
    method = (
        f"accounts drawn at random per repetition from {len(accounts):,} materialized; the "
        "same draws for every contender, interleaved; raw reads use serialised keys computed "
        "beforehand and decode nothing; the reader keeps its per-account key cache and "
        "decoded-value cache warm as a running service would; the SDK's feature service is "
        f"resolved once; the SDK runs every {sdk_every}th repetition"
    )
    print(f"\n{settings.profile} profile ({kind} online store): {method}")
    results: dict[str, dict[str, dict[str, float]]] = {}
    ratios: dict[str, dict[str, float]] = {}
    try:
        for size in SIZES:
            contenders = [
                Contender("raw", raw_call),
                Contender("ours", lambda ids: reader.read(SERVICE, ids)),
                Contender("sdk", sdk_call, every=sdk_every),
            ]
            measure(contenders, accounts, size, args.repeats, args.seed + size)
            results[str(size)] = {c.name: summary(c) for c in contenders}
            row = results[str(size)]
            ratios[str(size)] = {
                "ours_over_raw": round(row["ours"]["median_ms"] / row["raw"]["median_ms"], 2),
                "sdk_over_ours": round(row["sdk"]["median_ms"] / row["ours"]["median_ms"], 2),
            }
            print(f"  {size} account(s) per read, median / p99 in ms:")
            for name, figures in row.items():
                print(
                    f"    {name:5} {figures['median_ms']:9.3f} {figures['p99_ms']:9.3f}"
                    f"   ({figures['repetitions']:,} reads)"
                )
            print(
                f"    ours/raw {ratios[str(size)]['ours_over_raw']:.2f} "
                f"(goal at most {RATIO_TO_RAW_GOAL:g}), "
                f"sdk/ours {ratios[str(size)]['sdk_over_ours']:.2f} "
                f"(goal at least {SDK_SPEEDUP_GOAL:g})"
            )
    finally:
        close_raw()

    goals_met = {
        size: {
            "ours_over_raw": r["ours_over_raw"] <= RATIO_TO_RAW_GOAL,
            "sdk_over_ours": r["sdk_over_ours"] >= SDK_SPEEDUP_GOAL,
        }
        for size, r in ratios.items()
    }
    report(
        f"online_read_{settings.profile}",
        {
            "name": "csa.features.OnlineFeatureReader.read",
            **{f"{size}_accounts": figures["ours"] for size, figures in results.items()},
        },
        {
            "name": f"feast FeatureStore.get_online_features; raw {kind} read as the floor",
            **{
                f"{size}_accounts": {"sdk": figures["sdk"], "raw": figures["raw"]}
                for size, figures in results.items()
            },
        },
        ratios["1"]["sdk_over_ours"],
        "SDK median / ours median for 1 account; above 1 means ours is faster",
        {
            "profile": settings.profile,
            "online_store": kind,
            "accounts": len(accounts),
            "ratios": ratios,
            "goals": {
                "ours_over_raw_at_most": RATIO_TO_RAW_GOAL,
                "sdk_over_ours_at_least": SDK_SPEEDUP_GOAL,
            },
            "goals_met": goals_met,
            "method": method,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", choices=["local", "production", "all"], default="local")
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeats", type=int, default=1000, help="reads of ours and raw")
    parser.add_argument("--sdk-repeats", type=int, default=200, help="reads of the SDK")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    profiles = ["local", "production"] if args.profile == "all" else [args.profile]

    with tempfile.TemporaryDirectory() as folder:
        base = load_settings(profile="local", home=Path(folder) / "lake")
        print(f"writing a synthetic lake of {args.accounts:,} accounts over {args.days} days ...")
        write_lake(base.lake_dir, accounts=args.accounts, days=args.days, seed=args.seed)
        build_features(base)
        for profile in profiles:
            with profile_store(profile, base.features_dir, Path(folder)) as settings:
                if settings is not None:
                    run_profile(settings, args)


if __name__ == "__main__":
    main()
