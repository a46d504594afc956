"""The Feast definitions: entity, feature views, push source, on-demand view, feature services.

The objects are built from the feature catalogue (``definitions``) and point their batch
sources at the Parquet files of this ``CSA_HOME``, so two homes register two disjoint stores.
``csa features apply`` writes them to the registry; ``feature_repo/`` holds the store
configuration templates they are applied with.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from types import FunctionType
from typing import Any

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource
from feast.on_demand_feature_view import OnDemandFeatureView, on_demand_feature_view
from feast.types import Float64, Int64, PrimitiveFeastType, String
from feast.value_type import ValueType

from csa.features.build import feature_table_path
from csa.features.definitions import (
    ALL_GROUPS,
    BILLING,
    ENTITY,
    JOIN_KEY,
    MODELS,
    MOMENTUM,
    PROFILE,
    SENTIMENT,
    SNAPSHOT_TIME,
    SUPPORT,
    USAGE,
    USAGE_LIVE,
    FeatureGroup,
)
from csa.settings import Settings

PUSH_SOURCE = "account_usage_push"
_FEAST_TYPES: dict[str, PrimitiveFeastType] = {"int": Int64, "float": Float64, "string": String}

FeastObject = Entity | FileSource | PushSource | FeatureView | OnDemandFeatureView | FeatureService


def account_entity() -> Entity:
    """The ``account`` entity, joined on ``account_id``."""
    return Entity(
        name=ENTITY,
        join_keys=[JOIN_KEY],
        value_type=ValueType.STRING,
        description="A customer account (the company that pays), keyed by its CRM id.",
    )


def usage_momentum(inputs: dict[str, list[Any]]) -> dict[str, list[float | None]]:
    """Today's counters against the batch baseline; runs in Feast and in the online reader.

    Takes and returns columns (Feast's python mode, batched): one list per input feature.
    Feast rebuilds this function from its source text when it reads the registry, so it
    must not use anything defined outside its own body.
    """
    import math

    def ratio(numerator: float | None, denominator: float | None) -> float | None:
        # Missing inputs arrive as None online and as NaN offline; both mean "unknown".
        if numerator is None or denominator is None:
            return None
        if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
            return None
        return float(numerator) / float(denominator)

    return {
        "events_1d_vs_30d_avg": [
            ratio(today, None if month is None else month / 30.0)
            for today, month in zip(inputs["events_1d"], inputs["events_30d"], strict=True)
        ],
        "active_users_1d_per_seat": [
            ratio(users, seats)
            for users, seats in zip(inputs["active_users_1d"], inputs["seats"], strict=True)
        ],
    }


def feast_objects(settings: Settings) -> list[FeastObject]:
    """Every Feast object of the platform, with sources under ``settings.features_dir``."""
    ttl = timedelta(days=settings.features.ttl_days)
    account = account_entity()
    views: dict[str, FeatureView] = {}
    sources: list[FileSource | PushSource] = []
    for group in (USAGE, PROFILE, BILLING, SUPPORT, SENTIMENT):
        source = _file_source(settings, group)
        sources.append(source)
        views[group.name] = _feature_view(group, account, source, ttl)

    # The live counters' offline history is the daily build; the serving layer pushes fresh
    # values to the online store through the push source.
    live_history = _file_source(settings, USAGE_LIVE)
    push = PushSource(
        name=PUSH_SOURCE,
        batch_source=live_history,
        description="Real-time usage counters pushed by the event intake.",
    )
    sources += [live_history, push]
    views[USAGE_LIVE.name] = _feature_view(USAGE_LIVE, account, push, ttl)

    momentum = on_demand_feature_view(
        sources=[views[USAGE_LIVE.name], views[USAGE.name], views[PROFILE.name]],
        # Feast checks the declared schema against the one it infers by running the function,
        # comparing whole fields: a description here would fail that check, so it stays in
        # the catalogue (``definitions.feature_descriptions``).
        schema=[Field(name=spec.name, dtype=Float64) for spec in MOMENTUM.features],
        mode="python",
        description=MOMENTUM.description,
    )(_fresh_copy(usage_momentum))

    services = [
        FeatureService(
            name=model,
            features=[*views.values(), momentum],
            description=f"Features the {model} model is trained on and scored with.",
        )
        for model in MODELS
    ]
    return [account, *sources, *views.values(), momentum, *services]


def _fresh_copy(function: Callable[..., Any]) -> FunctionType:
    """A new function object with the same code, for Feast's on-demand decorator.

    The decorator rewrites the ``__module__`` of the function it is given to ``__main__`` and
    later reads its source through that module, so decorating the module's own function a
    second time in one process (a second apply) would look for the source in the wrong file.
    """
    assert isinstance(function, FunctionType)
    copy = FunctionType(
        function.__code__,
        function.__globals__,
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )
    copy.__module__ = function.__module__
    copy.__doc__ = function.__doc__
    copy.__qualname__ = function.__qualname__
    return copy


def _file_source(settings: Settings, group: FeatureGroup) -> FileSource:
    return FileSource(
        name=f"{group.name}_source",
        path=str(feature_table_path(settings.features_dir, group.name)),
        timestamp_field=SNAPSHOT_TIME,
        description=f"Snapshots of {group.name} written by `csa features build`.",
    )


def _feature_view(
    group: FeatureGroup, account: Entity, source: FileSource | PushSource, ttl: timedelta
) -> FeatureView:
    return FeatureView(
        name=group.name,
        entities=[account],
        ttl=ttl,
        schema=_fields(group),
        source=source,
        online=True,
        description=group.description,
    )


def _fields(group: FeatureGroup) -> list[Field]:
    return [
        Field(name=spec.name, dtype=_FEAST_TYPES[spec.dtype], description=spec.description)
        for spec in group.features
    ]


def group_names() -> list[str]:
    """Names of every feature view, batch and on-demand."""
    return [group.name for group in ALL_GROUPS]
