"""What a champion was trained on: the reference every later window is compared with.

``csa train`` records it with the run (``write_reference``, called while the run's artifacts
are written): a sample of the tuning window (the newest rows the model was fitted to: early
stopping, calibration and risk bands), each row's features, label and the model's probability,
plus the model's feature importance and test metrics. The tuning window rather than the whole
training history, because "has the population moved since this model was built?" is asked of
the model's most recent picture of it; a year of history would also carry the slow, harmless
aging of every account as drift.

A version trained before references were recorded gets one rebuilt from its run's lineage
(the tuning window's dates) through the feature store.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from csa.errors import ContractError
from csa.features.definitions import JOIN_KEY
from csa.settings import Settings

if TYPE_CHECKING:
    from csa.training.model import ScoringModel
    from csa.training.tables import LabelledTable

logger = logging.getLogger(__name__)

REFERENCE_ROWS = 20_000
REFERENCE_TABLE = "monitoring/reference.parquet"
REFERENCE_FACTS = "monitoring/reference.json"
PREDICTION = "probability"


@dataclass
class Reference:
    """A champion's reference rows and the facts the policy weighs drift with."""

    model: str
    version: str | None
    frame: pd.DataFrame  # features, id, as_of, label, probability
    numeric: list[str]
    categorical: list[str]
    importance: dict[str, float]
    metrics: dict[str, float] = field(default_factory=dict)  # test roc_auc and ece
    label: str | None = None
    window: dict[str, Any] = field(default_factory=dict)
    # The newest snapshot the champion was trained with (its test window's end): the days
    # between the reference and it are the history the drift of later windows is weighed by.
    known_until: pd.Timestamp | None = None
    # Per column, the largest distance of a history window from the reference, once measured
    # (``csa.monitoring.judgement.attach_history``); keyed by the window length it used.
    history: dict[str, float] | None = field(default=None, repr=False)
    history_window_days: int | None = field(default=None, repr=False)
    _noise: dict[str, float] | None = field(default=None, repr=False)

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @property
    def end(self) -> pd.Timestamp | None:
        """The reference's newest snapshot time."""
        from csa.features.definitions import SNAPSHOT_TIME

        if SNAPSHOT_TIME not in self.frame or self.frame.empty:
            return None
        return pd.Timestamp(pd.to_datetime(self.frame[SNAPSHOT_TIME], utc=True).max())

    @property
    def accounts(self) -> int:
        """Distinct accounts in the reference: its real sample size, not its row count."""
        return int(self.frame[JOIN_KEY].nunique()) if JOIN_KEY in self.frame else len(self.frame)

    def split_half_noise(self, max_rows: int, splits: int = 4, seed: int = 11) -> dict[str, float]:
        """Per column, the mean distance between two random halves of the reference's accounts.

        Daily snapshots of one account are nearly copies of each other, so a window's sample
        size is its number of accounts. Two halves of the same reference differ only by which
        accounts they hold; the distance between them is the noise a drift must clear.
        """
        if self._noise is not None:
            return self._noise
        from csa.monitoring.drift import feature_drift, probability_shift

        columns = self.features
        if JOIN_KEY not in self.frame or self.accounts < 4:
            self._noise = {}
            return self._noise
        accounts = self.frame[JOIN_KEY].unique()
        rng = np.random.default_rng(seed)
        totals: dict[str, list[float]] = {}
        for split in range(splits):
            half = set(rng.permutation(accounts)[: len(accounts) // 2])
            in_half = self.frame[JOIN_KEY].isin(half).to_numpy()
            drifts = feature_drift(
                self.frame.loc[in_half],
                self.frame.loc[~in_half],
                columns,
                self.categorical,
                max_rows=max_rows,
                seed=seed + split,
            )
            if PREDICTION in self.frame:
                shift = probability_shift(
                    PREDICTION,
                    self.frame.loc[in_half, PREDICTION],
                    self.frame.loc[~in_half, PREDICTION],
                    1.0,
                )
                drifts += [shift] if shift is not None else []
            for drift in drifts:
                totals.setdefault(drift.feature, []).append(drift.score)
        self._noise = {name: float(np.mean(scores)) for name, scores in totals.items()}
        return self._noise


def write_reference(
    folder: Path,
    scoring: ScoringModel,
    window: LabelledTable,
    metrics: dict[str, float],
    known_until: str | None = None,
    rows: int = REFERENCE_ROWS,
    seed: int = 7,
) -> None:
    """Write the reference of a model being trained into ``folder`` (the run's artifacts).

    Args:
        known_until: the newest snapshot time the model was trained and tested with.
    """
    frame = window.frame
    if len(frame) > rows:
        frame = frame.sample(n=rows, random_state=seed).sort_index()
    keep = [c for c in [window.id_column, window.time_column, *scoring.space.columns] if c]
    table = frame[keep].copy()
    table[window.label] = frame[window.label].to_numpy()
    table[PREDICTION] = scoring.predict(frame)
    (folder / "monitoring").mkdir(parents=True, exist_ok=True)
    table.to_parquet(folder / REFERENCE_TABLE, index=False)
    first, last = window.time_range()
    facts = {
        "model": scoring.model,
        "label": window.label,
        "numeric": scoring.space.numeric,
        "categorical": list(scoring.space.categories),
        "importance": scoring.importance(),
        "metrics": {k: float(metrics[k]) for k in ("roc_auc", "ece") if k in metrics},
        "window": {"name": "tune", "rows": len(window.frame), "from": first, "to": last},
        "known_until": known_until,
    }
    (folder / REFERENCE_FACTS).write_text(json.dumps(facts, indent=1, default=str))


# A registered version never changes, so its reference (and the noise computed on it) is read
# once per process: a monitoring loop judges the same champion pass after pass.
_LOADED: dict[tuple[str, str, str], Reference] = {}


def champion_reference(settings: Settings, model: str, version: str) -> Reference:
    """The reference of ``csa-<model>`` version ``version``, recorded or rebuilt.

    Raises:
        ContractError: the version has neither a recorded reference nor a time window to
            rebuild one from (a model trained on an own table without --time).
    """
    key = (settings.mlflow_tracking_uri, model, str(version))
    if key not in _LOADED:
        _LOADED[key] = _read_reference(settings, model, version)
    return _LOADED[key]


def _read_reference(settings: Settings, model: str, version: str) -> Reference:
    from csa.training import registry

    name = registry.registered_name(model)
    info = registry.resolve_version(settings, name, version)
    try:
        table_path = registry.run_artifact(settings, info.run_id, REFERENCE_TABLE)
        facts_path = registry.run_artifact(settings, info.run_id, REFERENCE_FACTS)
    except Exception:  # older versions: no reference artifact
        return _rebuilt_reference(settings, model, info)
    facts = json.loads(facts_path.read_text())
    return Reference(
        model=model,
        version=info.version,
        frame=pd.read_parquet(table_path),
        numeric=list(facts["numeric"]),
        categorical=list(facts["categorical"]),
        importance={k: float(v) for k, v in facts["importance"].items()},
        metrics=dict(facts.get("metrics", {})),
        label=facts.get("label"),
        window=dict(facts.get("window", {})),
        known_until=_stamp(facts.get("known_until") or _lineage_end(settings, info.run_id)),
    )


def _lineage_end(settings: Settings, run_id: str) -> str | None:
    # References recorded before ``known_until`` was: the run's lineage has its test window.
    from csa.training import registry

    try:
        lineage = json.loads(registry.run_artifact(settings, run_id, "lineage.json").read_text())
    except Exception:
        return None
    return lineage.get("test_to")


def _stamp(value: str | None) -> pd.Timestamp | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _rebuilt_reference(settings: Settings, model: str, info: Any) -> Reference:
    from csa.features.definitions import SNAPSHOT_TIME
    from csa.training import registry
    from csa.training.tables import feature_store_table

    lineage = json.loads(registry.run_artifact(settings, info.run_id, "lineage.json").read_text())
    if "tune_from" not in lineage:
        raise ContractError(
            f"csa-{model} version {info.version} was trained without snapshot times, so it has "
            "no reference window to monitor against; train it on the feature store."
        )
    scoring = registry.load_version(settings, registry.registered_name(model), info.version)
    table = feature_store_table(settings, model)
    times = table.frame[SNAPSHOT_TIME]
    start, end = pd.Timestamp(lineage["tune_from"]), pd.Timestamp(lineage["tune_to"])
    window = table.subset(((times >= start) & (times <= end)).to_numpy())
    logger.info(
        "csa-%s version %s recorded no reference: rebuilt from its tuning window (%d rows)",
        model,
        info.version,
        len(window.frame),
    )
    metrics = {k: float(info.tags[k]) for k in ("roc_auc", "ece") if k in info.tags}
    frame = window.frame
    if len(frame) > REFERENCE_ROWS:
        frame = frame.sample(n=REFERENCE_ROWS, random_state=7).sort_index()
    frame = frame.reset_index(drop=True)
    frame[PREDICTION] = scoring.predict(frame)
    return Reference(
        model=model,
        version=info.version,
        frame=frame,
        numeric=list(scoring.space.numeric),
        categorical=list(scoring.space.categories),
        importance=scoring.importance(),
        metrics=metrics,
        label=window.label,
        window={"name": "tune", "rows": len(window.frame), "from": str(start), "to": str(end)},
        known_until=_stamp(lineage.get("test_to")),
    )


def feature_weights(reference: Reference, exclude: list[str], weighting: str) -> dict[str, float]:
    """Each judged feature's weight, summing to 1: importance shares or equal shares."""
    judged = [f for f in reference.features if f not in set(exclude)]
    if not judged:
        return {}
    if weighting == "importance":
        raw = np.array([max(reference.importance.get(f, 0.0), 0.0) for f in judged])
        if raw.sum() > 0:
            return dict(zip(judged, (raw / raw.sum()).tolist(), strict=True))
    return {f: 1.0 / len(judged) for f in judged}
