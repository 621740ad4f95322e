"""The error hierarchy: every failure a user can see is one of these, with a one-sentence message."""

from __future__ import annotations

from enum import StrEnum


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


class BackendUnavailable(MofaclawError):
    """A shared backend (Redis, PostgreSQL) cannot be reached; the request may be retried shortly."""


class ToolError(MofaclawError):
    """A tool could not do what it was asked; its message goes back to the model."""


class TurnErrorCode(StrEnum):
    """How a turn failed: the one enumeration that the agent produces and every consumer decodes."""

    PROVIDER_ERROR = "provider_error"  # the LLM provider answered with an error
    PROVIDER_TIMEOUT = "provider_timeout"  # the LLM provider did not answer in time
    AGENT_ERROR = "agent_error"  # the agent refused or could not run the turn (a clear MofaclawError)
    INTERNAL_ERROR = "internal_error"  # a bug: the details are in the log, not in the reply
    SHUTTING_DOWN = "shutting_down"  # the process is stopping; the turn may be retried shortly
    INVALID_REQUEST = "invalid_request"  # the request cannot be served as sent (e.g. unknown tool call ids)
    BACKEND_UNAVAILABLE = "backend_unavailable"  # Redis or PostgreSQL is unreachable, or the replica died


class TurnFailed(MofaclawError):
    """What awaiting a turn's reply raises when the turn failed; `code` says how."""

    def __init__(self, message: str, code: TurnErrorCode, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def turn_error_code(exc: BaseException) -> TurnErrorCode:
    """The code a turn that raised `exc` ends with."""
    if isinstance(exc, TurnFailed):
        return exc.code
    if isinstance(exc, ProviderTimeout):
        return TurnErrorCode.PROVIDER_TIMEOUT
    if isinstance(exc, ProviderError):
        return TurnErrorCode.PROVIDER_ERROR
    if isinstance(exc, BackendUnavailable):
        return TurnErrorCode.BACKEND_UNAVAILABLE
    if isinstance(exc, MofaclawError):
        return TurnErrorCode.AGENT_ERROR
    return TurnErrorCode.INTERNAL_ERROR
