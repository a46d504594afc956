"""MLflow for the platform: where runs and models live, registering, aliases, loading.

Runs and the registry use ``settings.mlflow_tracking_uri`` (SQLite under ``CSA_HOME`` locally,
PostgreSQL in production) and artifacts go under ``<home>/mlruns``, so two homes never share a
model. Models are addressed by alias: ``challenger`` is the newest trained, ``champion`` the one
serving.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csa.errors import ConfigError, CsaError, StoreUnavailable
from csa.settings import Settings

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_FOLDER = "model"  # the pyfunc artifact holding ScoringModel's files
_ENTRY = Path(__file__).with_name("pyfunc_entry.py")

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Downloads of a few local files need no progress bar between the CLI's stage lines.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


class ModelNotFound(CsaError):
    """A registered model, version or alias does not exist."""

    http_status = 404


def registered_name(model: str) -> str:
    """``csa-churn`` for ``churn``: the name every registry lookup uses."""
    return f"csa-{model}"


def client(settings: Settings) -> Any:
    """An ``MlflowClient`` of this home.

    It leaves MLflow's process-wide tracking URI alone: the service asks the registry from a
    background thread, and moving the global URI there would send a training running in the
    same process to another home's store.
    """
    from mlflow import MlflowClient

    uri = settings.mlflow_tracking_uri
    try:
        return MlflowClient(tracking_uri=uri, registry_uri=uri)
    except Exception as exc:
        raise StoreUnavailable(
            f"the MLflow store at {uri} is unreachable ({exc}); start PostgreSQL or point "
            "CSA_POSTGRES_URL at it."
        ) from exc


def experiment_id(settings: Settings, name: str) -> str:
    """The experiment called ``name``, created with artifacts under ``<home>/mlruns``.

    Also points MLflow's fluent API (``start_run``, ``log_artifacts``, ``log_model``) at this
    home, since a run is started in that experiment next.
    """
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    mlflow_client = client(settings)
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = settings.mlflow_artifacts_dir.resolve().as_uri()
    return str(mlflow_client.create_experiment(name, artifact_location=location))


@dataclass
class VersionInfo:
    """A registered version and what the registry knows of it."""

    name: str
    version: str
    run_id: str
    aliases: list[str]
    tags: dict[str, str]
    created_ms: int


def aliases_of(settings: Settings, name: str) -> dict[str, str]:
    """Alias -> version of a registered model (empty when the model is not registered)."""
    from mlflow.exceptions import MlflowException

    try:
        registered = client(settings).get_registered_model(name)
    except MlflowException:
        return {}
    return {alias: str(version) for alias, version in registered.aliases.items()}


def resolve_version(settings: Settings, name: str, ref: str) -> VersionInfo:
    """A version by number or by alias.

    Raises:
        ModelNotFound: no such model, version or alias.
    """
    from mlflow.exceptions import MlflowException

    mlflow_client = client(settings)
    try:
        if ref.isdigit():
            version = mlflow_client.get_model_version(name, ref)
        else:
            version = mlflow_client.get_model_version_by_alias(name, ref)
    except MlflowException as exc:
        raise ModelNotFound(
            f"{name} has no version or alias {ref!r}; train one with `csa train` or list them "
            "with `csa models`."
        ) from exc
    aliases = [a for a, v in aliases_of(settings, name).items() if v == str(version.version)]
    return VersionInfo(
        name=name,
        version=str(version.version),
        run_id=str(version.run_id),
        aliases=aliases,
        tags=dict(version.tags),
        created_ms=int(version.creation_timestamp),
    )


def list_versions(settings: Settings, name: str) -> list[VersionInfo]:
    """Every version of a registered model, newest first."""
    mlflow_client = client(settings)
    aliases = aliases_of(settings, name)
    if not aliases and not _exists(mlflow_client, name):
        return []
    versions = mlflow_client.search_model_versions(f"name = '{name}'")
    out = [
        VersionInfo(
            name=name,
            version=str(v.version),
            run_id=str(v.run_id),
            aliases=[a for a, n in aliases.items() if n == str(v.version)],
            tags=dict(v.tags),
            created_ms=int(v.creation_timestamp),
        )
        for v in versions
    ]
    return sorted(out, key=lambda v: int(v.version), reverse=True)


def _exists(mlflow_client: Any, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.get_registered_model(name)
    except MlflowException:
        return False
    return True


def log_scoring_model(
    model_dir: Path,
    signature: Any,
    input_example: Any,
    registered_model: str,
    entry: Path = _ENTRY,
    requirements: tuple[str, ...] = (),
) -> str:
    """Log the model folder as a pyfunc (code, not pickle) in the active run and register it.

    Args:
        entry: the pyfunc's code file (default the churn and expansion one).
        requirements: packages the model needs beyond the platform's common ones.

    Returns:
        The new registered version.
    """
    import mlflow

    info = mlflow.pyfunc.log_model(
        name=MODEL_FOLDER,
        python_model=str(entry),
        artifacts={"model": str(model_dir)},
        signature=signature,
        input_example=input_example,
        registered_model_name=registered_model,
        # Named, not inferred: inference imports the model in a subprocess, which costs
        # seconds per training and can pick up whatever else the environment holds.
        pip_requirements=_requirements(requirements),
    )
    return str(info.registered_model_version)


def _requirements(extra: tuple[str, ...] = ()) -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    common = ("csa-platform", "mlflow", "xgboost", "pandas", "numpy", "scikit-learn")
    for package in (*common, *extra):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return pins


def mark_challenger(
    settings: Settings, name: str, version: str, metrics: dict[str, float], data: dict[str, str]
) -> None:
    """Point ``challenger`` at a newly trained version and tag its headline metrics and data."""
    set_alias(settings, name, CHALLENGER, version)
    tags = {key: round(value, 4) for key, value in metrics.items()}
    set_version_tags(settings, name, version, {**tags, **data})
    logger.info("registered %s version %s as %s", name, version, CHALLENGER)


def set_alias(settings: Settings, name: str, alias: str, version: str) -> None:
    client(settings).set_registered_model_alias(name, alias, version)


def set_version_tags(settings: Settings, name: str, version: str, tags: dict[str, Any]) -> None:
    mlflow_client = client(settings)
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(name, version, key, str(value))


def model_folder(settings: Settings, name: str, version: str) -> Path:
    """A local copy of a version's model folder (downloaded once per home and version)."""
    import mlflow

    local = settings.data_dir / "models" / name / version
    target = local / "artifacts" / "model"
    if not target.exists():
        # Downloaded beside the cache and renamed into place, so that a reader never finds a
        # half-copied model.
        source = client(settings).get_model_version_download_uri(name, version)
        local.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=local.parent))
        try:
            root = mlflow.artifacts.download_artifacts(
                artifact_uri=source,
                dst_path=str(scratch),
                tracking_uri=settings.mlflow_tracking_uri,
            )
            if not target.exists():
                shutil.rmtree(local, ignore_errors=True)  # a copy without the model folder
                Path(root).rename(local)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    if not target.exists():
        raise ConfigError(
            f"{name} version {version} has no model folder; it was not registered by "
            "`csa train`. Promote a version that `csa train` registered."
        )
    return target


def load_model(settings: Settings, model: str, ref: str = CHAMPION) -> Any:
    """The ``ScoringModel`` (``SentimentModel`` for sentiment) of ``csa-<model>`` at a version
    number or alias.

    Raises:
        ModelNotFound: nothing is registered under that reference.
    """
    name = registered_name(model)
    info = resolve_version(settings, name, ref)
    return load_version(settings, name, info.version)


def load_version(settings: Settings, name: str, version: str) -> Any:
    """The scoring model of one registered version; each exposes ``label`` and ``predict``."""
    folder = model_folder(settings, name, version)
    if name == registered_name("sentiment"):
        from csa.training.sentiment_model import SentimentModel

        return SentimentModel.load(folder, version=version)
    from csa.training.model import ScoringModel

    return ScoringModel.load(folder, version=version)


def run_artifact(settings: Settings, run_id: str, path: str) -> Path:
    """A local copy of one artifact of a run."""
    import mlflow

    local = settings.data_dir / "runs" / run_id / path
    if not local.exists():
        # MLflow writes a downloaded file under its base name inside dst_path.
        local.parent.mkdir(parents=True, exist_ok=True)
        mlflow.artifacts.download_artifacts(
            run_id=run_id,
            artifact_path=path,
            dst_path=str(local.parent),
            tracking_uri=settings.mlflow_tracking_uri,
        )
    return local
