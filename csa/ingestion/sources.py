"""Declarations of sources: where an export lives and how it maps onto a canonical table.

``configs/sources.yaml`` is parsed into these models, so a typo in a key or an unknown connector
fails at start-up with the file and field named, before any data is touched.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from csa.errors import ConfigError
from csa.ingestion.contracts import CANONICAL_TABLES

ParseType = Literal["str", "int", "float", "bool", "timestamp", "date"]
ConnectorKind = Literal["csv", "json", "jsonl", "parquet", "sql"]


class Mapping(BaseModel):
    """How a source's records become rows of a canonical table, applied in this order."""

    model_config = ConfigDict(extra="forbid")

    rename: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Source field -> canonical column. Nested JSON fields use dots: context.groupId."
        ),
    )
    values: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Per canonical column, source value -> canonical value; others pass through.",
    )
    parse: dict[str, ParseType] = Field(
        default_factory=dict,
        description="Per canonical column, the type its text is parsed as; failures quarantine.",
    )
    derive: dict[str, str] = Field(
        default_factory=dict,
        description="New column -> SQL expression over the mapped columns (DuckDB dialect).",
    )


class Source(BaseModel):
    """One export or database table feeding one canonical table."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    connector: ConnectorKind
    location: str = Field(
        description="File path or glob ({raw} is the raw folder), or a SQLAlchemy URL for sql."
    )
    query: str | None = Field(None, description="SQL connector: the query that reads the rows.")
    record_path: str | None = Field(
        None, description="JSON connector: the key holding the list of records."
    )
    table: str = Field(description="Canonical table the rows load into.")
    mapping: Mapping = Mapping()
    primary_key: str | None = Field(None, description="Defaults to the table's key.")
    cursor: str | None = Field(
        None, description="Column whose larger value marks the newer version of a row."
    )
    required: bool = Field(True, description="Fail the source when no file matches.")

    @model_validator(mode="after")
    def _check(self) -> Source:
        if self.table not in CANONICAL_TABLES:
            raise ValueError(f"table {self.table!r} is not one of {sorted(CANONICAL_TABLES)}")
        if self.connector == "sql" and not self.query:
            raise ValueError("a sql source needs `query`")
        return self


class SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: dict[str, Source]


_ENV_REFERENCE = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


def _expand_env(node: Any) -> Any:
    """Replace ${VAR} and ${VAR:-default} in string values (not in comments or keys).

    Keeps secrets such as database passwords out of the file.
    """
    if isinstance(node, dict):
        return {key: _expand_env(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_expand_env(value) for value in node]
    if not isinstance(node, str):
        return node

    def value(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} used in sources.yaml is not set.")

    return _ENV_REFERENCE.sub(value, node)


def load_sources(path: Path, only: list[str] | None = None) -> list[Source]:
    """Parse a sources file; ``only`` keeps the named sources, in the file's order."""
    if not path.exists():
        raise ConfigError(
            f"sources file {path} does not exist; point ingestion.sources_file at it."
        )
    try:
        raw = _expand_env(yaml.safe_load(path.read_text()) or {})
        parsed = SourcesFile.model_validate(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ConfigError(f"{path}: {where}: {error['msg']}; fix that entry.") from exc
    sources = []
    for name, source in parsed.sources.items():
        source.name = name
        sources.append(source)
    if only:
        unknown = sorted(set(only) - {s.name for s in sources})
        if unknown:
            raise ConfigError(
                f"unknown source(s) {unknown}; {path} declares {list(parsed.sources)}."
            )
        sources = [s for s in sources if s.name in only]
    return sources
