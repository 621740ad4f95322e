"""The error hierarchy: every failure a user can see is one of these, with a one-sentence message."""

from __future__ import annotations


class MofaclawError(Exception):
    """Base of every error mofaclaw raises on purpose."""


class ConfigError(MofaclawError):
    """The configuration cannot be used as written."""


class ProviderError(MofaclawError):
    """The LLM provider failed; `status` is the upstream HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ProviderTimeout(ProviderError):
    """The provider did not answer within its timeout."""


class ToolError(MofaclawError):
    """A tool could not do what it was asked; its message goes back to the model."""
