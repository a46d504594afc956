"""One typed settings model for the whole platform.

Values come, in rising precedence, from ``configs/platform.yaml``, the profile's overlay
(``configs/production.yaml`` when ``CSA_PROFILE=production``) and ``CSA_`` environment variables
(``CSA_HOME``, ``CSA_PROFILE``, ``CSA_REDIS_URL``, and nested ones such as
``CSA_SIMULATION__ACCOUNTS``). Nothing is read at import time: call ``load_settings``.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from csa.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]
Profile = Literal["local", "production"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SimulationSettings(_Section):
    """Defaults of ``csa simulate``; the command's options override them."""

    accounts: int = Field(300, ge=1, description="Accounts in the simulated company.")
    days: int = Field(730, ge=30, description="Days of history to simulate.")
    start: dt.date = Field(dt.date(2024, 1, 1), description="First simulated day.")
    seed: int = Field(7, description="Seed: the same seed writes the same company.")
    scenario: Literal["baseline", "usage-drop", "new-segment"] = Field(
        "baseline", description="Baseline, or a behaviour change for drift detection."
    )
    chunk_accounts: int = Field(
        2000, ge=1, description="Accounts simulated together; bounds memory on large runs."
    )


class IngestionSettings(_Section):
    """How ``csa ingest`` reads sources."""

    sources_file: Path = Field(
        Path("configs/sources.yaml"), description="Source declarations, relative to the repo."
    )
    batch_rows: int = Field(
        200_000, ge=1_000, description="Rows validated and written per batch; bounds memory."
    )


class StoreSettings(_Section):
    """Addresses of the production stores. Tests read the same variables."""

    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Feast online store.")
    postgres_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/postgres",
        description="Feast registry, MLflow backend and Optuna storage.",
    )
    timeout_seconds: float = Field(1.0, gt=0, description="Timeout on every store call.")


class FeatureSettings(_Section):
    """How account features, labels and the Feast feature store are built."""

    cadence_days: int = Field(1, ge=1, description="Days between two account snapshots.")
    horizon_days: int = Field(
        90, ge=1, description="Days after a snapshot in which churn or expansion is labelled."
    )
    warmup_days: int = Field(
        90,
        ge=0,
        description="Days of observed behaviour before the first snapshot, so windows are full.",
    )
    ttl_days: int = Field(
        7,
        ge=1,
        description="Age after which a feature value is stale; at least cadence_days.",
    )
    project: str = Field(
        "csa",
        pattern=r"^[a-z][a-z0-9_]*$",
        description="Feast project name; keys in a shared online store carry it.",
    )
    write_batch_rows: int = Field(
        5_000, ge=1, description="Accounts per online-store write batch in materialize."
    )
    score_texts: bool = Field(
        True,
        description=(
            "Score new ticket bodies and survey comments with the sentiment champion before "
            "each build (sentiment features are empty while no sentiment model is champion)."
        ),
    )


class GateSettings(_Section):
    """When ``csa promote`` lets a challenger replace the champion."""

    min_improvement: float = Field(
        0.005, ge=0, description="ROC AUC the challenger must gain over the champion."
    )
    max_ece_increase: float = Field(
        0.01, ge=0, description="How much worse the challenger's calibration error may be."
    )
    min_roc_auc: float = Field(
        0.65, ge=0, le=1, description="ROC AUC a first champion needs, with no one to beat."
    )


class SentimentSettings(_Section):
    """How ``csa train sentiment`` fine-tunes the packaged MiniLM encoder and its linear head."""

    max_length: int = Field(
        128, ge=8, le=512, description="Tokens of each text the encoder reads; the rest is cut."
    )
    epochs: int = Field(
        1, ge=1, description="Passes over the training texts (one: about 20 minutes on 2 cores)."
    )
    train_layers: int = Field(
        2,
        ge=1,
        le=6,
        description=(
            "Top transformer layers fine-tuned (6: all); the word embeddings and lower layers "
            "stay as packaged, which cuts the CPU cost of each step."
        ),
    )
    batch_size: int = Field(16, ge=1, description="Texts per optimisation step.")
    learning_rate: float = Field(
        1e-4, gt=0, description="Peak learning rate of the fine-tuned encoder layers."
    )
    head_learning_rate: float = Field(
        1e-3, gt=0, description="Learning rate of the linear head, which starts from zero."
    )
    warmup_share: float = Field(
        0.1, ge=0, lt=1, description="Share of the steps over which the learning rate ramps up."
    )
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    threads: int = Field(2, ge=1, description="Torch threads while training and scoring.")
    seed: int = Field(
        7, description="Seed of the split, shuffling and dropout: same data, same model."
    )
    calibration_share: float = Field(
        0.1,
        gt=0,
        lt=0.5,
        description="Share of the training texts held out to fit the score's calibration.",
    )
    test_share: float = Field(
        0.2,
        gt=0,
        lt=0.5,
        description="Share of an own table held out for testing when no --test-table is given.",
    )
    max_train_texts: int | None = Field(
        None,
        ge=50,
        description="Train on at most this many texts, drawn stratified (none: all); for demos.",
    )
    neutral_low: float = Field(
        0.35, gt=0, lt=1, description="Scores from here up to neutral_high are labelled neutral."
    )
    neutral_high: float = Field(
        0.65, gt=0, lt=1, description="Scores above this are positive, below neutral_low negative."
    )
    baseline_c: float = Field(
        10.0,
        gt=0,
        description="Inverse regularisation of the TF-IDF logistic regression (the baseline).",
    )
    blend_terms: bool = Field(
        True,
        description=(
            "Blend the TF-IDF regression's logit into the score, weighted on the held-out "
            "texts; off: the fine-tuned encoder alone."
        ),
    )


class TrainingSettings(_Section):
    """How ``csa train`` tunes, fits, calibrates and registers the churn and expansion models."""

    trials: int = Field(20, ge=1, description="Optuna trials per training.")
    timeout_seconds: float | None = Field(
        None, gt=0, description="Stop starting new trials after this long (none: no limit)."
    )
    pruning: bool = Field(True, description="Stop unpromising trials early (median pruner).")
    max_rounds: int = Field(400, ge=10, description="Most boosting rounds a trial may use.")
    early_stopping_rounds: int = Field(
        30, ge=1, description="Rounds without gain on the tuning window before a fit stops."
    )
    seed: int = Field(7, description="Seed of the sampler and of XGBoost: same data, same model.")
    threads: int = Field(2, ge=1, description="XGBoost threads while training.")
    test_days: int = Field(
        60, ge=1, description="Latest labelled days held out as the test window."
    )
    tune_days: int = Field(
        60, ge=1, description="Labelled days before the test window used to tune and calibrate."
    )
    purge_days: int | None = Field(
        None,
        ge=0,
        description=(
            "Gap between the training snapshots and the tuning window, so that no training "
            "label was still unknown when tuning starts (none: the label horizon)."
        ),
    )
    high_risk_share: float = Field(
        0.1, gt=0, lt=1, description="Share of the tuning window the 'high' band holds."
    )
    medium_risk_share: float = Field(
        0.2, gt=0, lt=1, description="Share of the tuning window the 'medium' band holds."
    )
    top_drivers: int = Field(5, ge=1, description="Drivers returned with each score.")
    monotone: dict[str, dict[str, Literal[-1, 1]]] = Field(
        default_factory=lambda: {  # type: ignore[arg-type]
            "churn": {"failed_payments_90d": 1, "days_since_last_activity": 1},
            "expansion": {"failed_payments_90d": -1},
        },
        description=(
            "Per model, features whose effect has a known direction: 1 never lowers the "
            "score as the feature rises, -1 never raises it."
        ),
    )
    gate: GateSettings = GateSettings()
    sentiment: SentimentSettings = SentimentSettings()


class AnalyticsSettings(_Section):
    """Cohorts, revenue retention, segments, time to churn and the revenue forecast."""

    seed: int = Field(
        7, description="Seed of clustering and survival boosting: same data, same result."
    )
    min_clusters: int = Field(2, ge=2, description="Fewest segments the clustering may choose.")
    max_clusters: int = Field(
        6, ge=2, description="Most segments; the count with the best silhouette score wins."
    )
    horizon_months: int = Field(
        3, ge=1, description="Months ahead the revenue forecast and its backtest look (a quarter)."
    )
    survival_months: int = Field(
        24, ge=1, description="Months of each account's survival curve; caps expected months."
    )
    survival_rounds: int = Field(
        300, ge=10, description="Boosting rounds of the time-to-churn model."
    )
    survival_test_months: int = Field(
        6, ge=1, description="Latest months of history held out to judge the time-to-churn model."
    )
    backtest_origins: int = Field(
        3, ge=1, description="Forecast dates, a month apart, that the backtest replays."
    )
    interval: float = Field(
        0.8, gt=0, lt=1, description="Coverage of the forecast's interval (0.8: 10th-90th)."
    )
    simulations: int = Field(
        2000, ge=100, description="Monte Carlo draws behind the forecast's interval."
    )


class ServingSettings(_Section):
    """The scoring service (``csa serve``)."""

    host: str = Field("127.0.0.1", description="Interface to bind; 0.0.0.0 exposes it.")
    port: int = Field(3000, ge=1, le=65535, description="Port to listen on.")
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body; a larger one answers 413."
    )
    max_concurrency: int = Field(
        64, ge=1, description="Requests handled at once; more answer 503 with Retry-After."
    )
    timeout_seconds: float = Field(10.0, gt=0, description="Longest a request may take.")
    threads: int = Field(
        4,
        ge=1,
        le=64,
        description=(
            "Requests to the synchronous routes (scores, customer view, events) handled at once; "
            "BentoML runs them one at a time otherwise."
        ),
    )
    reload_seconds: float = Field(
        5.0, gt=0, description="How often the registry is asked for a new champion."
    )
    sentiment_max_texts: int = Field(
        256, ge=1, description="Texts one /sentiment request may carry; more answer 400."
    )
    sentiment_max_chars: int = Field(
        5000, ge=1, description="Characters of one /sentiment text; a longer one answers 400."
    )
    sentiment_max_batch_size: int = Field(
        64,
        ge=1,
        description="Most texts of concurrent /sentiment calls encoded together in one pass.",
    )
    sentiment_max_wait_ms: float = Field(
        2.0,
        ge=0,
        description="How long a lone /sentiment request waits for others to share its batch.",
    )


class DemoSettings(_Section):
    """What ``csa demo`` trades for time: the sentiment model trains on fewer, shorter texts."""

    sentiment_max_train_texts: int = Field(
        1000, ge=50, description="Review texts the demo's sentiment model is fine-tuned on."
    )
    sentiment_max_length: int = Field(
        64, ge=8, le=512, description="Tokens of each text the demo's sentiment model reads."
    )


class Settings(BaseSettings):
    """Everything the platform is configured with. Paths are resolved under ``home``."""

    model_config = SettingsConfigDict(env_prefix="CSA_", env_nested_delimiter="__", extra="forbid")

    home: Path = Field(REPO_ROOT, description="Root of everything the platform writes.")
    profile: Profile = Field("local", description="local (embedded stores) or production.")
    simulation: SimulationSettings = SimulationSettings()
    ingestion: IngestionSettings = IngestionSettings()
    stores: StoreSettings = StoreSettings()
    features: FeatureSettings = FeatureSettings()
    training: TrainingSettings = TrainingSettings()
    serving: ServingSettings = ServingSettings()
    analytics: AnalyticsSettings = AnalyticsSettings()
    demo: DemoSettings = DemoSettings()
    redis_url: str | None = Field(None, description="Shortcut for stores.redis_url.")
    postgres_url: str | None = Field(None, description="Shortcut for stores.postgres_url.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # YAML values arrive through init_settings (see load_settings); the environment wins.
        return (env_settings, init_settings)

    def model_post_init(self, __context: Any) -> None:
        if self.redis_url:
            self.stores.redis_url = self.redis_url
        if self.postgres_url:
            self.stores.postgres_url = self.postgres_url

    # Where things live. Every path the platform writes is under ``home``.
    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def features_dir(self) -> Path:
        return self.data_dir / "features"

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "state"

    @property
    def analytics_dir(self) -> Path:
        return self.data_dir / "analytics"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def audit_dir(self) -> Path:
        return self.data_dir / "audit"

    @property
    def postgres_sqlalchemy_url(self) -> str:
        """``stores.postgres_url`` on the psycopg 3 driver the stack installs."""
        url = self.stores.postgres_url
        if url.startswith(("postgresql://", "postgres://")):
            return "postgresql+psycopg://" + url.split("://", 1)[1]
        return url

    @property
    def mlflow_tracking_uri(self) -> str:
        """MLflow's backend: SQLite under ``home`` locally, PostgreSQL in production."""
        if self.profile == "production":
            return self.postgres_sqlalchemy_url
        return f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.home / "mlruns"

    @property
    def config_dir(self) -> Path:
        return config_dir()

    @property
    def sources_file(self) -> Path:
        path = self.ingestion.sources_file
        return path if path.is_absolute() else REPO_ROOT / path


def config_dir() -> Path:
    """The folder of YAML settings: ``CSA_CONFIG_DIR`` or the repository's ``configs/``."""
    return Path(os.environ.get("CSA_CONFIG_DIR", REPO_ROOT / "configs"))


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({exc}); fix the file and rerun.") from exc
    if not isinstance(content, dict):
        raise ConfigError(f"{path} must hold a mapping of settings at its top level.")
    return content


def _deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(profile: Profile | None = None, home: Path | None = None) -> Settings:
    """Read the settings files for a profile and apply ``CSA_`` environment overrides.

    Args:
        profile: overrides ``CSA_PROFILE`` and the file's value (the CLI's ``--profile``).
        home: overrides ``CSA_HOME`` (tests point it at a temporary folder).
    """
    values = _read_yaml(config_dir() / "platform.yaml")
    chosen = profile or os.environ.get("CSA_PROFILE") or values.get("profile", "local")
    if chosen != "local":
        values = _deep_merge(values, _read_yaml(config_dir() / f"{chosen}.yaml"))
    values["profile"] = chosen
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        raise ConfigError(
            f"settings in {config_dir()} are invalid: {_first_error(exc)}; "
            "fix the YAML file or the CSA_ environment variable named there."
        ) from exc
    if profile:
        settings.profile = profile
    if home:
        settings.home = home
    settings.home = settings.home.expanduser().resolve()
    return settings


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}"
