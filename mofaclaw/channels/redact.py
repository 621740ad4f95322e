"""A logging filter that blanks a secret out of log records, for libraries that put it in URLs.

The Telegram Bot API carries the bot token in every URL path, and httpx logs each request URL at
INFO; python-telegram-bot logs its API URL at DEBUG and names the token in some error messages.
Logger filters only see records made by their own logger (not those of its children), so the filter
is attached to every logger that exists under the given prefixes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import quote

MASK = "<redacted>"
PREFIXES = ("httpx", "httpcore", "telegram", "mofaclaw")


class SecretRedactor(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # URL-encoded too: a token with ':' appears as '%3A' in file download URLs.
        self.secrets = tuple({form for s in secrets if s for form in (s, quote(s, safe=""))})

    def filter(self, record: logging.LogRecord) -> bool:
        # Formatted now, not by the handler later: a library may mutate an argument after logging it
        # (python-telegram-bot turns a logged file path into the token-bearing download URL).
        record.msg, record.args = self._redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and any(s in record.exc_text for s in self.secrets):
            record.exc_text = self._redact(record.exc_text)
        return True

    def _redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text


def install(redactor: SecretRedactor, prefixes: Iterable[str] = PREFIXES) -> list[logging.Logger]:
    """Attach the filter to every existing logger under `prefixes`; returns them, for `uninstall`."""
    prefixes = tuple(prefixes)
    names = [n for n in list(logging.root.manager.loggerDict) if n.split(".")[0] in prefixes]
    loggers = [logging.getLogger(n) for n in {*names, *prefixes}]
    for logger in loggers:
        logger.addFilter(redactor)
    return loggers


def uninstall(redactor: SecretRedactor, loggers: Iterable[logging.Logger]) -> None:
    for logger in loggers:
        logger.removeFilter(redactor)
