"""``csa score``: every active account (or a given list) scored by the champion, with drivers.

Features come from the online store through ``OnlineFeatureReader``, the same path the service
scores with, so a batch score and a live score of an account agree. Active accounts are those
whose newest snapshot is the feature store's newest: an account that churned has no snapshot
after it left.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from csa.errors import ConfigError, ContractError
from csa.features.build import feature_table_path
from csa.features.definitions import BATCH_GROUPS, JOIN_KEY, MODELS, SNAPSHOT_TIME
from csa.features.online import OnlineFeatureReader
from csa.features.store import latest_rows
from csa.playbooks import Play, actions, load_playbook, playbook_path
from csa.settings import Settings
from csa.training.model import ScoringModel
from csa.training.registry import CHAMPION, aliases_of, load_model, registered_name

logger = logging.getLogger(__name__)

_BATCH = 2_000  # accounts per online read and per model call


@dataclass
class ScoreResult:
    """A written batch of scores."""

    path: Path
    accounts: int
    high: int
    version: str | None
    seconds: float


def active_accounts(settings: Settings) -> list[str]:
    """Accounts whose newest snapshot is the store's newest, i.e. still customers."""
    latest = latest_rows(feature_table_path(settings.features_dir, BATCH_GROUPS[0].name))
    frame = latest.select([JOIN_KEY, SNAPSHOT_TIME]).to_pandas()
    newest = frame[SNAPSHOT_TIME].max()
    return sorted(frame.loc[frame[SNAPSHOT_TIME] == newest, JOIN_KEY].tolist())


def online_frame(
    reader: OnlineFeatureReader, service: str, accounts: Sequence[str]
) -> pd.DataFrame:
    """One row per account of the service's online values, with the newest event time."""
    values = reader.read(service, accounts)
    rows = []
    for account in accounts:
        features = values[account]
        times = [v.event_ts for v in features.values() if v.event_ts is not None]
        row = {name: value.value for name, value in features.items()}
        row[JOIN_KEY] = account
        row[SNAPSHOT_TIME] = max(times) if times else None
        rows.append(row)
    return pd.DataFrame(rows)


def score_frame(model: ScoringModel, frame: pd.DataFrame, top: int) -> pd.DataFrame:
    """Probability, band and drivers (JSON) for each row of ``frame``."""
    scores = model.score(frame, top=top)
    drivers = scores.drivers or [[] for _ in range(len(frame))]
    return pd.DataFrame(
        {
            JOIN_KEY: frame[JOIN_KEY].to_numpy(),
            SNAPSHOT_TIME: frame[SNAPSHOT_TIME].to_numpy(),
            "probability": scores.probability.round(6),
            "risk_band": scores.band,
            "drivers": [json.dumps([d.__dict__ for d in row], default=str) for row in drivers],
            "model_version": model.version,
        }
    )


def _plays(plays: list[Play], frame: pd.DataFrame, models: dict[str, ScoringModel]) -> list[str]:
    """Each row's playbook actions as JSON, from its features and every model's score."""
    values = frame.to_dict("records")
    for name, scoring in models.items():
        if any(column not in frame.columns for column in scoring.space.columns):
            continue  # trained on other features: its score is not known here
        probability = scoring.predict(frame)
        bands = scoring.bands.bands(probability)
        for row, record in enumerate(values):
            record[f"{name}.probability"] = float(probability[row])
            record[f"{name}.band"] = str(bands[row])
    return [json.dumps(actions(plays, record), default=str) for record in values]


def score_accounts(
    settings: Settings,
    model: str,
    out: Path,
    accounts: Sequence[str] | None = None,
    ref: str = CHAMPION,
) -> ScoreResult:
    """Score accounts with ``csa-<model>@ref`` and write ``out`` (.parquet or .csv).

    Raises:
        ModelNotFound: no champion yet (``csa promote`` one first).
        ContractError: the model was trained on a user's table, not the feature store.
    """
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ConfigError(f"cannot write {out}: use a .parquet or .csv file name.")
    started = time.perf_counter()
    scoring_model = load_model(settings, model, ref)
    if not scoring_model.source.startswith("feature service"):
        raise ContractError(
            f"csa-{model} version {scoring_model.version} was trained on {scoring_model.source}, "
            "not on the feature store, so the store's accounts cannot be scored with it; "
            "promote a version trained with plain `csa train`."
        )
    ids = list(accounts) if accounts is not None else active_accounts(settings)
    reader = OnlineFeatureReader(settings)
    plays = load_playbook(playbook_path(settings))
    # The other model's champion, when there is one, so that plays on both scores can fire.
    others = {
        other: load_model(settings, other, CHAMPION)
        for other in MODELS
        if other != model and CHAMPION in aliases_of(settings, registered_name(other))
    }
    parts = []
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start : start + _BATCH]
        frame = online_frame(reader, model, chunk)
        scored = score_frame(scoring_model, frame, settings.training.top_drivers)
        scored["plays"] = _plays(plays, frame, {model: scoring_model, **others})
        parts.append(scored)
    scored = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    scored = scored.sort_values("probability", ascending=False, ignore_index=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        scored.to_parquet(out, index=False)
    else:
        scored.to_csv(out, index=False)
    result = ScoreResult(
        path=out,
        accounts=len(scored),
        high=int((scored["risk_band"] == "high").sum()) if len(scored) else 0,
        version=scoring_model.version,
        seconds=time.perf_counter() - started,
    )
    logger.info(
        "scored %d accounts with %s version %s in %.1f s",
        result.accounts,
        model,
        result.version,
        result.seconds,
    )
    return result
