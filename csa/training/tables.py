"""Labelled account tables and the windows a model is trained, tuned and tested on.

A ``LabelledTable`` is either the feature store's point-in-time training set or a user's own
table (CSV or Parquet) of accounts, features and a label. ``FeatureSpace`` records which columns
are features and which are categorical with which categories, so a model encodes a scoring row
exactly as it encoded its training rows.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from csa.errors import ContractError, LakeError
from csa.features.definitions import JOIN_KEY, SNAPSHOT_TIME, label_name
from csa.settings import Settings

logger = logging.getLogger(__name__)

# A category seen fewer times than this in training is folded into "other" (or missing).
_MAX_CATEGORIES = 200


@dataclass
class LabelledTable:
    """Rows of (id, optional time, features, 0/1 label), and where they came from."""

    frame: pd.DataFrame
    label: str
    id_column: str
    time_column: str | None
    source: str  # a feature service name or a file path, for the lineage record
    features: list[str] = field(default_factory=list)
    horizon_days: int | None = None  # how far ahead each label looks, when known

    def __post_init__(self) -> None:
        if not self.features:
            skip = {self.label, self.id_column, self.time_column}
            self.features = [c for c in self.frame.columns if c not in skip]

    @property
    def y(self) -> np.ndarray:
        return self.frame[self.label].to_numpy(dtype=np.int64)

    def subset(self, mask: np.ndarray | pd.Series) -> LabelledTable:
        return LabelledTable(
            frame=self.frame.loc[np.asarray(mask)].reset_index(drop=True),
            label=self.label,
            id_column=self.id_column,
            time_column=self.time_column,
            source=self.source,
            features=list(self.features),
            horizon_days=self.horizon_days,
        )

    def content_hash(self) -> str:
        """A hash of the rows' content, so two trainings can tell they saw the same data."""
        hashed = pd.util.hash_pandas_object(self.frame, index=False).to_numpy()
        return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]

    def time_range(self) -> tuple[str | None, str | None]:
        if self.time_column is None or self.frame.empty:
            return None, None
        times = self.frame[self.time_column]
        return str(times.min()), str(times.max())


def feature_store_table(settings: Settings, model: str) -> LabelledTable:
    """The point-in-time training set of ``model``'s feature service, matured labels only.

    A snapshot is kept only when its whole horizon lies inside the data: a late snapshot is
    labelled only if the account already left, and keeping those would fill the newest window
    with positives.
    """
    from csa.features import training_set
    from csa.features.build import read_manifest

    frame = training_set(settings, model)
    horizon = settings.features.horizon_days
    data_end = pd.Timestamp(read_manifest(settings.features_dir)["data_end"])
    matured = frame[SNAPSHOT_TIME] + pd.Timedelta(days=horizon) <= data_end
    frame = frame.loc[matured].reset_index(drop=True)
    if frame.empty:
        raise LakeError(
            f"no snapshot of the feature store has a matured {horizon}-day label; the data "
            f"must span more than features.warmup_days + {horizon} days. Ingest more history."
        )
    return LabelledTable(
        frame=frame,
        label=label_name(model, horizon),
        id_column=JOIN_KEY,
        time_column=SNAPSHOT_TIME,
        source=f"feature service {model}",
        horizon_days=horizon,
    )


def read_user_table(
    path: Path,
    label: str,
    id_column: str,
    time_column: str | None = None,
    positive: str | None = None,
) -> LabelledTable:
    """A user's own labelled account table, checked and with a 0/1 label.

    Args:
        path: a ``.csv`` or ``.parquet`` file.
        label: the label column; 0/1, true/false, or any two values with ``positive`` naming
            the one that means "churned" (or "expanded").
        id_column: the account id column (kept out of the features).
        time_column: when given, the snapshot time: windows are then split by time.
        positive: the label value that counts as positive.

    Raises:
        ContractError: the file, a named column or the label's values are unusable.
    """
    frame = _read_frame(path)
    for role, column in (("--label", label), ("--id", id_column), ("--time", time_column)):
        if column is not None and column not in frame.columns:
            raise ContractError(
                f"{path} has no column {column!r} (given as {role}); its columns are: "
                f"{', '.join(map(str, frame.columns[:30]))}."
            )
    frame = frame.loc[frame[label].notna()].reset_index(drop=True)
    frame[label] = binary_label(frame[label], positive, f"{path}:{label}")
    if time_column is not None:
        try:
            frame[time_column] = pd.to_datetime(frame[time_column], utc=True)
        except (ValueError, TypeError) as exc:
            raise ContractError(
                f"column {time_column!r} of {path} does not hold times ({exc}); pass a column "
                "of dates or timestamps as --time, or leave --time out."
            ) from exc
    table = LabelledTable(
        frame=frame, label=label, id_column=id_column, time_column=time_column, source=str(path)
    )
    if not table.features:
        raise ContractError(f"{path} has no feature columns besides the id, time and label.")
    _check_both_classes(table, str(path))
    return table


def _read_frame(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise ContractError(f"table {path} does not exist; pass the path of a CSV or Parquet file.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except Exception as exc:
        raise ContractError(f"cannot read {path} ({exc}); is it a valid {suffix} file?") from exc
    raise ContractError(f"cannot read {path}: use a .csv or .parquet file.")


def binary_label(values: pd.Series, positive: str | None, where: str) -> pd.Series:
    """A label column as 0/1 integers.

    Raises:
        ContractError: the column has other than two values, or ``positive`` is not one.
    """
    distinct = sorted(map(str, values.dropna().unique()))
    if positive is not None:
        if positive not in distinct:
            raise ContractError(
                f"{where} has no value {positive!r} to count as positive; its values are: "
                f"{', '.join(distinct[:10])}."
            )
        return (values.astype(str) == positive).astype("int64")
    lowered = {v.lower() for v in distinct}
    for truthy, falsy in (({"1", "1.0"}, {"0", "0.0"}), ({"true"}, {"false"}), ({"yes"}, {"no"})):
        if lowered <= truthy | falsy:
            return values.astype(str).str.lower().isin(truthy).astype("int64")
    raise ContractError(
        f"{where} holds {len(distinct)} values ({', '.join(distinct[:5])}), not 0/1: name the "
        "value that means positive with --positive."
    )


def _check_both_classes(table: LabelledTable, where: str) -> None:
    counts = table.frame[table.label].value_counts()
    if len(counts) < 2:
        raise ContractError(
            f"the label {table.label!r} of {where} has a single class; a model needs both "
            "positive and negative examples."
        )


@dataclass
class Windows:
    """Train, tune and test rows, and how they were chosen."""

    train: LabelledTable
    tune: LabelledTable
    test: LabelledTable
    method: str

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"split": self.method}
        for name in ("train", "tune", "test"):
            part: LabelledTable = getattr(self, name)
            first, last = part.time_range()
            out[f"n_{name}"] = len(part.frame)
            out[f"positives_{name}"] = int(part.y.sum())
            if first is not None:
                out[f"{name}_from"], out[f"{name}_to"] = first, last
        return out


def time_windows(table: LabelledTable, tune_days: int, test_days: int, purge_days: int) -> Windows:
    """Split by snapshot time: test on the latest days, tune before them, train before that.

    Training snapshots end ``purge_days`` before the tuning window starts, so each training
    label had matured before the first tuning snapshot: the model never learns from an
    outcome that lies in the windows it is judged on.

    Raises:
        ContractError: a window would be empty or hold a single class.
    """
    assert table.time_column is not None
    times = table.frame[table.time_column]
    last = times.max()
    test_start = last - pd.Timedelta(days=test_days - 1)
    tune_start = test_start - pd.Timedelta(days=tune_days)
    train_end = tune_start - pd.Timedelta(days=purge_days)
    windows = Windows(
        train=table.subset(times < train_end),
        tune=table.subset((times >= tune_start) & (times < test_start)),
        test=table.subset(times >= test_start),
        method=f"by time: test {test_days} d, tune {tune_days} d, purge {purge_days} d",
    )
    _check_windows(windows, "shorten training.test_days / tune_days / purge_days, or add data")
    return windows


def stratified_windows(
    table: LabelledTable, test: LabelledTable | None, seed: int, test_share: float = 0.2
) -> Windows:
    """Random stratified windows for a table without time: train, tune (and test).

    With ``test`` given (``--test-table``), the table is split into train and tune only.
    """
    rng = np.random.default_rng(seed)
    y = table.y
    test_mask = np.zeros(len(y), dtype=bool)
    tune_mask = np.zeros(len(y), dtype=bool)
    for cls in (0, 1):
        index = rng.permutation(np.flatnonzero(y == cls))
        n_test = 0 if test is not None else round(len(index) * test_share)
        n_tune = round((len(index) - n_test) * test_share)
        test_mask[index[:n_test]] = True
        tune_mask[index[n_test : n_test + n_tune]] = True
    windows = Windows(
        train=table.subset(~(test_mask | tune_mask)),
        tune=table.subset(tune_mask),
        test=test if test is not None else table.subset(test_mask),
        method="stratified at random" + (" with a separate test table" if test else ""),
    )
    _check_windows(windows, "use a larger table")
    return windows


def _check_windows(windows: Windows, fix: str) -> None:
    for name in ("train", "tune", "test"):
        part: LabelledTable = getattr(windows, name)
        classes = set(np.unique(part.y).tolist())
        if classes != {0, 1}:
            raise ContractError(
                f"the {name} window has {len(part.frame)} rows and classes {sorted(classes)}; "
                f"each window needs positives and negatives: {fix}."
            )


@dataclass
class FeatureSpace:
    """The columns a model reads and how each is encoded, saved with the model."""

    numeric: list[str]
    categories: dict[str, list[str]]  # categorical column -> its known values, in code order
    _codes: dict[str, tuple[list[str], pd.Index, pd.CategoricalDtype]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categories]

    @classmethod
    def learn(cls, frame: pd.DataFrame, features: Sequence[str]) -> FeatureSpace:
        """Numeric columns as they are; every other column categorical, by training values."""
        numeric: list[str] = []
        categories: dict[str, list[str]] = {}
        for column in features:
            values = frame[column]
            if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
                numeric.append(column)
                continue
            counts = values.dropna().astype(str).value_counts()
            categories[column] = sorted(counts.index[:_MAX_CATEGORIES].tolist())
        return cls(numeric=numeric, categories=categories)

    def encode(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's input frame: numeric as float, categoricals with the training codes.

        A category the model never saw becomes missing, which the trees route as they learned.

        Raises:
            ContractError: a feature column is absent.
        """
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ContractError(
                f"the rows lack feature columns the model needs: {', '.join(missing[:10])}; "
                "score with the same feature service or table layout the model was trained on."
            )
        # The numbers become one float block and the categoricals are coded against a cached
        # index: building the frame column by column cost about 40 ms a row, most of scoring.
        numbers = frame[self.numeric]
        loose = [
            name
            for name, dtype in zip(self.numeric, numbers.dtypes, strict=True)
            if not pd.api.types.is_numeric_dtype(dtype)
        ]
        if loose:  # e.g. an online read whose missing values left a column of objects
            numbers = numbers.copy()
            for name in loose:
                numbers[name] = pd.to_numeric(numbers[name], errors="coerce")
        block = numbers.to_numpy(dtype="float64", na_value=np.nan)
        encoded = pd.DataFrame(block, index=frame.index, columns=self.numeric, copy=False)
        if not self.categories:
            return encoded
        coded: dict[str, pd.Categorical] = {}
        for column in self.categories:
            known, dtype = self._category_codes(column)
            text = frame[column].astype("string").to_numpy(dtype=object, na_value=None)
            coded[column] = pd.Categorical.from_codes(known.get_indexer(text), dtype=dtype)
        return pd.concat([encoded, pd.DataFrame(coded, index=frame.index)], axis=1)

    def _category_codes(self, column: str) -> tuple[pd.Index, pd.CategoricalDtype]:
        # Built once per column: the lookup index and dtype are the same for every request.
        # A list assigned to ``categories`` later is a new object, so it is not served stale.
        known = self.categories[column]
        cached = self._codes.get(column)
        if cached is None or cached[0] is not known:
            cached = (known, pd.Index(known, dtype=object), pd.CategoricalDtype(known))
            self._codes[column] = cached
        return cached[1], cached[2]

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "categories": self.categories}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpace:
        return cls(numeric=list(data["numeric"]), categories=dict(data["categories"]))
