from __future__ import annotations

from pathlib import Path

import pytest

from tests.ingestion.tiny_company import write_company


@pytest.fixture
def raw_company(home: Path) -> Path:
    """The tiny company's exports in the default raw folder of the test's home."""
    return write_company(home / "data" / "raw")
