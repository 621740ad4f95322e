"""The shared backends the config names: the bus (in process or Redis) and the stores (SQLite or PostgreSQL).

The cluster drivers (redis, asyncpg) come with the optional `cluster` extra and are imported only
when the config asks for them, so a single-process install never loads them."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mofaclaw.bus.base import MessageBus
from mofaclaw.bus.memory import InMemoryBus
from mofaclaw.config import paths
from mofaclaw.config.models import BusConfig, SessionConfig
from mofaclaw.errors import ConfigError
from mofaclaw.services.cron_store import CronJobStore, CronStore
from mofaclaw.session.base import SessionStore
from mofaclaw.session.sqlite import SQLiteSessionStore

CLUSTER_EXTRA = "pip install 'mofaclaw[cluster]'"


def make_bus(config: BusConfig) -> MessageBus:
    """The bus a gateway replica serves turns on: Redis Streams shared by every replica, or in process."""
    if config.backend == "memory":
        return InMemoryBus()
    try:
        from mofaclaw.bus.redis import RedisBus
    except ImportError:
        raise ConfigError(f"bus.backend 'redis' needs the Redis client: {CLUSTER_EXTRA}") from None
    return RedisBus(config.url.get_secret_value(), lease=config.lease, prefix=config.prefix)


def make_store(config: SessionConfig, home: Path) -> SessionStore:
    """Where conversations, stored responses and paused turns live."""
    if config.backend == "sqlite":
        return SQLiteSessionStore(paths.sessions_db(home))
    try:
        from mofaclaw.session.postgres import PostgresSessionStore
    except ImportError:
        raise ConfigError(f"session.backend 'postgres' needs the PostgreSQL driver: {CLUSTER_EXTRA}") from None
    return PostgresSessionStore(config.dsn.get_secret_value(), pool_size=config.pool_size)


def make_cron_store(config: SessionConfig, home: Path) -> CronJobStore:
    """Cron jobs live beside the conversations: with PostgreSQL, every replica and `mofaclaw cron` share them."""
    if config.backend == "sqlite":
        return CronStore(paths.cron_store(home))
    try:
        from mofaclaw.services.cron_pg import PostgresCronStore
    except ImportError:
        raise ConfigError(f"session.backend 'postgres' needs the PostgreSQL driver: {CLUSTER_EXTRA}") from None
    return PostgresCronStore(config.dsn.get_secret_value())


def describe_store(config: SessionConfig, home: Path) -> str:
    """One line for `mofaclaw status`, with no password."""
    if config.backend == "sqlite":
        return f"sqlite · {paths.sessions_db(home)}"
    return f"postgres · {without_password(config.dsn.get_secret_value())} · pool {config.pool_size}"


def without_password(url: str) -> str:
    """`url` with any password replaced by ***, for logs and status lines."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
