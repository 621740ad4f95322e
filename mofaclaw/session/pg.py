"""PostgreSQL plumbing the session store and the cron jobs share: the pool, its errors as one line, migrations."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, unquote, urlsplit

from mofaclaw.errors import BackendUnavailable, ConfigError

try:
    import asyncpg
except ImportError:  # an optional extra: say how to get it rather than fail on an import
    raise ConfigError("the PostgreSQL backend needs asyncpg: pip install 'mofaclaw[cluster]'") from None

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0  # seconds: an unreachable server is a 503 within seconds, not a hung request
COMMAND_TIMEOUT = 30.0  # seconds: a server that stopped answering mid-query (network gone) ends the same way
# One key for every component's migrations: replicas starting together take turns, whatever they migrate.
MIGRATION_LOCK = 0x6D6F_6661_636C_6177 & 0x7FFF_FFFF_FFFF_FFFF  # "mofaclaw"

Migration = Callable[[asyncpg.Connection], Awaitable[None]]

# Errors that mean "the server is not there (now)", as opposed to a bug in our SQL.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, no route; also the socket closed under us
    TimeoutError,  # connect or command timeout
    asyncpg.PostgresConnectionError,  # class 08: the connection does not exist or failed
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutting down, starting up
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections, disk full
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,  # class 28: wrong user or password
    asyncpg.exceptions.InvalidCatalogNameError,  # 3D000: no such database
)


def describe(dsn: str) -> str:
    """"host:port/db" for messages: where, never with whom's password."""
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or (query.get("host") or ["localhost"])[0]
    database = unquote(parts.path.lstrip("/")) or (query.get("dbname") or [parts.username or "postgres"])[0]
    return f"{host}:{port or 5432}/{database}"


def is_unreachable(exc: BaseException) -> bool:
    if isinstance(exc, _UNREACHABLE):
        return True
    # A pooled connection that died between two uses says so as an interface error.
    return isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)


def unavailable(dsn: str, exc: BaseException) -> BackendUnavailable:
    """The error as one line naming the server, with the password cut out should the driver quote it."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    password = urlsplit(dsn).password
    if password:
        detail = detail.replace(password, "***").replace(unquote(password), "***")
    return BackendUnavailable(f"PostgreSQL at {describe(dsn)} is unavailable: {detail}")


@asynccontextmanager
async def translated(dsn: str) -> AsyncIterator[None]:
    """Connection failures inside become BackendUnavailable; everything else passes as it is."""
    try:
        yield
    except BackendUnavailable:
        raise
    except Exception as exc:
        if is_unreachable(exc):
            raise unavailable(dsn, exc) from None
        raise


def check_dsn(dsn: str) -> str:
    if urlsplit(dsn).scheme not in ("postgresql", "postgres"):
        raise ConfigError("the PostgreSQL dsn must be a postgresql:// URL (postgresql://user:password@host/db)")
    return dsn


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection (LISTEN, a CLI command), with the pool's timeouts and errors."""
    async with translated(dsn):
        return await asyncpg.connect(check_dsn(dsn), timeout=CONNECT_TIMEOUT, command_timeout=COMMAND_TIMEOUT)


async def create_pool(dsn: str, size: int) -> asyncpg.Pool:
    async with translated(dsn):
        pool = await asyncpg.create_pool(check_dsn(dsn), min_size=1, max_size=size, timeout=CONNECT_TIMEOUT,
                                         command_timeout=COMMAND_TIMEOUT)
    assert pool is not None  # only None when not awaited
    return pool


async def migrate(db: asyncpg.Connection, dsn: str, component: str, migrations: Sequence[Migration]) -> None:
    """Run the migrations `component` has not run yet, numbered by their place in the list, all in one
    transaction under an advisory lock: replicas starting at the same moment migrate one after another,
    and the later ones find nothing left to do. A database that refuses (no right to create tables) is
    one line naming it."""
    try:
        async with db.transaction():
            await db.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await db.execute("CREATE TABLE IF NOT EXISTS schema_versions ("
                             "component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
            version = await db.fetchval("SELECT version FROM schema_versions WHERE component = $1", component) or 0
            for number, migration in enumerate(migrations[version:], start=version + 1):
                await migration(db)
                log.info("PostgreSQL: %s migration %d applied", component, number)
            if len(migrations) > version:
                await db.execute("INSERT INTO schema_versions(component, version) VALUES ($1, $2) "
                                 "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                                 component, len(migrations))
    except asyncpg.PostgresError as exc:
        if is_unreachable(exc):
            raise
        raise BackendUnavailable(f"PostgreSQL at {describe(dsn)} cannot hold the {component} tables: {exc}") from None
