"""Settings come from EDGEFLEET_* variables, once, and bad values name the variable."""

from pathlib import Path

import pytest

from edgefleet.config import load_settings
from edgefleet.errors import ConfigError


@pytest.mark.unit
def test_environment_sets_fields(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """EDGEFLEET_DATA_DIR and EDGEFLEET_LOG_FORMAT reach the typed settings."""
    monkeypatch.setenv("EDGEFLEET_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("EDGEFLEET_LOG_FORMAT", "json")
    s = load_settings()
    assert s.data_dir == tmp_path
    assert s.log_format == "json"


@pytest.mark.unit
def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A value outside the allowed set is a ConfigError naming EDGEFLEET_LOG_LEVEL."""
    monkeypatch.setenv("EDGEFLEET_LOG_LEVEL", "loud")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.fields["env"] == "EDGEFLEET_LOG_LEVEL"
    assert "EDGEFLEET_LOG_LEVEL" in info.value.message


@pytest.mark.unit
def test_settings_are_frozen() -> None:
    """Settings are read once and never changed behind a module's back."""
    s = load_settings(log_level="debug")
    with pytest.raises(ValueError, match="frozen"):
        s.log_level = "info"  # type: ignore[misc]
