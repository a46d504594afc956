"""The platform's exceptions.

Every failure a user can cause or fix derives from ``CsaError``. Each class carries the HTTP
status the service answers with, and every message says what went wrong and what to do next::

    CsaError
    ├── ConfigError          a settings or sources file is invalid        (500)
    ├── SourceError          a source could not be read at all            (400)
    ├── ContractError        a whole table breaks its data contract       (400)
    ├── LakeError            a lake table is missing or unreadable        (404)
    └── StoreUnavailable     Redis, PostgreSQL or another store is down   (503)
"""

from __future__ import annotations


class CsaError(Exception):
    """Base of every error the platform raises on purpose."""

    http_status = 500


class ConfigError(CsaError):
    """A configuration file or setting is invalid; the message names the file and the field."""


class SourceError(CsaError):
    """A source's location could not be read, so none of its rows were loaded."""

    http_status = 400


class ContractError(CsaError):
    """Data breaks its contract in a way that no single-row quarantine can absorb."""

    http_status = 400


class LakeError(CsaError):
    """A lake table is missing or unreadable."""

    http_status = 404


class StoreUnavailable(CsaError):
    """A store the platform depends on does not answer."""

    http_status = 503
