"""The provider table: known provider names, their endpoints and key variables, and "provider/model" resolution."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from mofaclaw.errors import ConfigError
from mofaclaw.providers.base import LLMProvider
from mofaclaw.providers.settings import ProviderSettings


@dataclass(frozen=True, slots=True)
class KnownProvider:
    api_base: str
    key_env: str | None
    needs_key: bool = True
    kind: str = "openai"


KNOWN_PROVIDERS: dict[str, KnownProvider] = {
    "openai": KnownProvider("https://api.openai.com/v1", "OPENAI_API_KEY"),
    "openrouter": KnownProvider("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "anthropic": KnownProvider("https://api.anthropic.com/v1/", "ANTHROPIC_API_KEY"),
    "deepseek": KnownProvider("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "groq": KnownProvider("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "gemini": KnownProvider("https://generativelanguage.googleapis.com/v1beta/openai/", "GEMINI_API_KEY"),
    "ollama": KnownProvider("http://localhost:11434/v1", "OLLAMA_API_KEY", needs_key=False),
    "vllm": KnownProvider("http://localhost:8000/v1", "VLLM_API_KEY", needs_key=False),
    "lmstudio": KnownProvider("http://localhost:1234/v1", "LMSTUDIO_API_KEY", needs_key=False),
    "local": KnownProvider("", None, needs_key=False, kind="local"),
}

LOCAL_DEFAULT_MODEL = "local/smollm2"


def split_model(ref: str) -> tuple[str, str]:
    """"openai/gpt-4.1-mini" -> ("openai", "gpt-4.1-mini"); the model id may itself contain slashes."""
    name, sep, model = ref.partition("/")
    if not sep or not name or not model:
        raise ConfigError(
            f"model {ref!r} must be written as 'provider/model-id', e.g. 'openai/gpt-4.1-mini'"
        )
    return name, model


def complete_settings(configured: ProviderSettings) -> ProviderSettings:
    """Fill a configured provider's gaps from the table and the environment."""
    known = KNOWN_PROVIDERS.get(configured.name)
    settings = configured
    if known is not None:
        settings = replace(
            settings,
            api_base=settings.api_base or known.api_base or None,
            key_env=known.key_env,
            needs_key=known.needs_key,
            kind=known.kind if known.kind != "openai" else settings.kind,
        )
    if settings.api_key is None and settings.key_env:
        settings = replace(settings, api_key=os.environ.get(settings.key_env) or None)
    if settings.kind == "openai" and not settings.api_base:
        raise ConfigError(
            f"provider '{settings.name}' is not a known provider: set providers.{settings.name}.api_base"
        )
    return settings


def resolve_provider(name: str, configured: Mapping[str, ProviderSettings]) -> ProviderSettings:
    if name in configured:
        return complete_settings(configured[name])
    if name in KNOWN_PROVIDERS:
        return complete_settings(ProviderSettings(name=name))
    known = ", ".join(sorted(KNOWN_PROVIDERS))
    raise ConfigError(
        f"model provider '{name}' is neither configured nor known: add a [providers.{name}] table "
        f"with api_base, or use one of {known}"
    )


ProviderFactory = Callable[[ProviderSettings], LLMProvider]


def _openai_factory(settings: ProviderSettings) -> LLMProvider:
    from mofaclaw.providers.openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(settings)


def _local_factory(settings: ProviderSettings) -> LLMProvider:
    from mofaclaw.providers.local import LocalProvider

    return LocalProvider(settings)


# Chosen by the provider's kind; imports are lazy so `mofaclaw --help` stays fast.
PROVIDER_FACTORIES: dict[str, ProviderFactory] = {"openai": _openai_factory, "local": _local_factory}


def build_provider(settings: ProviderSettings) -> LLMProvider:
    return PROVIDER_FACTORIES[settings.kind](settings)
