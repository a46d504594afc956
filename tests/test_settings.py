"""Settings: YAML defaults, profile overlay and CSA_ environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from csa.errors import ConfigError
from csa.settings import load_settings


def test_home_roots_every_path_the_platform_writes(home: Path) -> None:
    settings = load_settings()
    assert settings.home == home.resolve()
    for path in (
        settings.raw_dir,
        settings.lake_dir,
        settings.quarantine_dir,
        settings.reports_dir,
    ):
        assert path.is_relative_to(home.resolve())


def test_environment_overrides_nested_settings(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSA_SIMULATION__ACCOUNTS", "1234")
    monkeypatch.setenv("CSA_REDIS_URL", "redis://10.0.0.9:6380/2")
    settings = load_settings()
    assert settings.simulation.accounts == 1234
    assert settings.stores.redis_url == "redis://10.0.0.9:6380/2"


def test_profile_comes_from_the_environment_or_the_argument(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CSA_PROFILE", "production")
    assert load_settings().profile == "production"
    assert load_settings(profile="local").profile == "local"


def test_an_invalid_value_names_the_setting(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSA_SIMULATION__ACCOUNTS", "many")
    with pytest.raises(ConfigError, match=r"simulation\.accounts"):
        load_settings()


def test_an_unknown_key_in_the_yaml_is_refused(
    home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "platform.yaml").write_text("simulation:\n  acounts: 5\n")
    monkeypatch.setenv("CSA_CONFIG_DIR", str(configs))
    with pytest.raises(ConfigError, match="acounts"):
        load_settings()
