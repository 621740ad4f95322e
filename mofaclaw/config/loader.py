"""Load the config: TOML file < environment (MOFACLAW_*) < command-line flags, with errors a person can act on."""

from __future__ import annotations

import difflib
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mofaclaw.config.models import Config
from mofaclaw.config.paths import config_path
from mofaclaw.errors import ConfigError

ENV_PREFIX = "MOFACLAW_"


class _FileSource(PydanticBaseSettingsSource):
    """The already-parsed TOML file as a settings source (parsed by us, so syntax errors name the file)."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self._data


def _settings_class(file_data: dict[str, Any]) -> type[BaseSettings]:
    class Settings(BaseSettings, Config):
        model_config = SettingsConfigDict(
            env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", case_sensitive=False
        )

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, env_settings, _FileSource(settings_cls, file_data)

    return Settings


def read_toml(path: Path) -> dict[str, Any]:
    """The file's table, {} when it does not exist."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> tuple[Config, Path]:
    """The effective config and the file it came from. Raises ConfigError with one clear line."""
    file = config_path(path)
    data = read_toml(file)
    settings_cls = _settings_class(data)
    try:
        settings = settings_cls(**(overrides or {}))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, file)) from None
    # Hand the rest of the program the plain model, not the settings machinery.
    return Config.model_validate(settings.model_dump()), file


def exposed_config_warning(file: Path) -> str | None:
    """One line when the config file can be read by group or others: it may hold API keys."""
    try:
        mode = stat.S_IMODE(file.stat().st_mode)
    except OSError:
        return None
    if not mode & 0o044:
        return None
    return (f"{file} is readable by other users (mode {mode:o}) and may hold API keys; "
            f"run: chmod 600 {file}")


def _describe(exc: ValidationError, file: Path) -> str:
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    key = ".".join(loc)
    env_name = ENV_PREFIX + "__".join(loc).upper()
    where = f"environment variable {env_name}" if env_name in os.environ else str(file)
    if error["type"] == "extra_forbidden":
        hint = _closest_key(loc)
        suggestion = f" (did you mean '{hint}'?)" if hint else ""
        return f"{where}: unknown key '{key}'{suggestion}"
    value = error.get("input")
    shown = f"{value!r}" if not isinstance(value, dict) else "a table"
    if "api_key" in key or "token" in key or (key.startswith("mcp.") and (".env" in key or ".headers" in key)):
        shown = "(hidden)"
    return f"{where}: invalid value {shown} for '{key}': {error['msg']}"


def _closest_key(loc: list[str]) -> str | None:
    """The known key nearest to a misspelt one, searched among its siblings."""
    model: Any = Config
    for part in loc[:-1]:
        fields = getattr(model, "model_fields", {})
        # A dict section (providers.NAME, channels.NAME) steps into its value type.
        annotation = fields[part].annotation if part in fields else model
        model = _model_of(annotation)
        if model is None:
            return None
    match = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1, cutoff=0.6)
    return ".".join([*loc[:-1], match[0]]) if match else None


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in reversed(getattr(annotation, "__args__", ())):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None
