"""The SQLite store's connection on the event loop's thread: a turn's statements, which never wait nor fsync."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class Missed(Exception):
    """The loop connection cannot do this now (a lock is taken, another thread asks, it is closed):
    the caller does it on the store's worker thread instead, which may wait."""


class LoopConnection:
    """A second connection to a migrated WAL database, used only by the thread that first used it.

    A hop to the worker thread costs more than a turn's statements (the worker must win the GIL from a
    busy loop, then wake the loop again), so a turn's reads and its commit run here directly, on terms
    that keep the loop from ever blocking: `busy_timeout=0` (a lock held elsewhere answers BUSY at once,
    and the caller falls back to the worker, which waits), and no automatic checkpoint (a WAL commit
    with synchronous=NORMAL is a write() into the page cache; only checkpoints fsync, and the store
    runs those on its worker). A transaction here never spans an await: every method is synchronous.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._thread: int | None = None
        self._closed = False
        # close() may come from another thread than the loop's (a test tearing down): guard the handle.
        self._lock = threading.Lock()

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` on the loop connection, outside a transaction; raises Missed when it cannot run here."""
        db = self._connection()
        try:
            return fn(db)
        except sqlite3.OperationalError as exc:  # BUSY during a WAL restart, I/O: the worker retries
            self._recover(db, exc)
            raise Missed(str(exc)) from exc

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` in one immediate transaction, committed, or rolled back whole. Raises Missed (nothing
        written) when the write lock is taken or SQLite fails for a reason the worker may not meet;
        any other error (a constraint) is rolled back and raised as is."""
        db = self._connection()
        try:
            db.execute("BEGIN IMMEDIATE")  # the write lock now or BUSY now: never a deferred upgrade
        except sqlite3.OperationalError as exc:
            self._recover(db, exc)
            raise Missed(str(exc)) from exc
        try:
            result = fn(db)
            db.execute("COMMIT")
        except BaseException as exc:
            self._rollback(db)
            if isinstance(exc, sqlite3.OperationalError):
                raise Missed(str(exc)) from exc
            raise
        return result

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._db is not None:
                self._db.close()
                self._db = None

    def _connection(self) -> sqlite3.Connection:
        thread = threading.get_ident()
        if self._db is not None and self._thread == thread:
            return self._db
        with self._lock:
            if self._closed:
                raise Missed("closed")
            if self._db is None:
                self._db, self._thread = _open(self.path), thread
            elif self._thread != thread:
                raise Missed("owned by another thread")
            return self._db

    def _rollback(self, db: sqlite3.Connection) -> None:
        try:
            if db.in_transaction:
                db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            self._discard(db, exc)

    def _recover(self, db: sqlite3.Connection, exc: sqlite3.OperationalError) -> None:
        # BUSY and LOCKED are the expected, passing case; anything else may have left the handle
        # unusable (the file replaced, an I/O error), so the next turn opens a fresh one.
        if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            self._discard(db, exc)

    def _discard(self, db: sqlite3.Connection, exc: BaseException) -> None:
        log.warning("sessions: reopening the event loop's connection after: %s", exc)
        with self._lock:
            if self._db is db:
                self._db = None
        with contextlib.suppress(sqlite3.Error):
            db.close()


def _open(path: Path) -> sqlite3.Connection:
    # check_same_thread=False only so close() may come from elsewhere; _connection keeps use to one thread.
    try:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    except sqlite3.Error as exc:
        raise Missed(str(exc)) from exc
    try:
        db.execute("PRAGMA busy_timeout=0")
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.execute("PRAGMA synchronous=NORMAL")  # per connection: FULL would fsync every commit
        db.execute("PRAGMA foreign_keys=ON")
    except sqlite3.Error as exc:
        db.close()
        raise Missed(str(exc)) from exc
    return db
