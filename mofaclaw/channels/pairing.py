"""Pairing: how an unknown sender asks for access with a code, and how the owner admits or revokes them.

One SQLite file (mode 0600) under MOFACLAW_HOME, shared by `mofaclaw pairing` and the running channels:
each check reads it afresh, so an approval takes effect at once, without a restart. The methods block
(they are short SQLite transactions); async callers run them with asyncio.to_thread.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# No 0/O or 1/I: the code is read off a phone and typed into a terminal.
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
CODE_TTL = 3600.0  # seconds a code stays valid
RENOTIFY_AFTER = 600.0  # seconds before an unknown sender who keeps writing is answered again
MAX_PENDING = 500  # per channel: a flood of strangers cannot grow the file without bound

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    channel TEXT NOT NULL, sender_id TEXT NOT NULL, username TEXT NOT NULL, chat_id TEXT NOT NULL,
    code TEXT NOT NULL UNIQUE, created REAL NOT NULL, notified REAL NOT NULL,
    PRIMARY KEY (channel, sender_id));
CREATE TABLE IF NOT EXISTS approved (
    channel TEXT NOT NULL, sender_id TEXT NOT NULL, username TEXT NOT NULL, approved REAL NOT NULL,
    PRIMARY KEY (channel, sender_id));
"""


@dataclass(frozen=True, slots=True)
class Pairing:
    channel: str
    sender_id: str
    username: str  # "" when the sender has none
    chat_id: str = ""
    code: str = ""  # pending pairings only
    since: float = 0.0  # when the code was made, or when the sender was approved

    @property
    def who(self) -> str:
        return f"{self.sender_id} (@{self.username})" if self.username else self.sender_id


@dataclass(frozen=True, slots=True)
class PairingRequest:
    code: str
    notify: bool  # False: this sender was told the code a moment ago; say nothing this time


class PairingStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def request(self, channel: str, sender_id: str, username: str = "", chat_id: str = "") -> PairingRequest:
        """The sender's pending code (a new one when none is valid), and whether to tell them now."""
        now = time.time()
        with self._db() as db:
            db.execute("DELETE FROM pending WHERE created < ?", (now - CODE_TTL,))
            row = db.execute("SELECT code, notified FROM pending WHERE channel = ? AND sender_id = ?",
                             (channel, sender_id)).fetchone()
            if row is not None:
                code, notified = row
                notify = now - notified >= RENOTIFY_AFTER
                if notify:
                    db.execute("UPDATE pending SET notified = ? WHERE code = ?", (now, code))
                return PairingRequest(code, notify)
            count = db.execute("SELECT count(*) FROM pending WHERE channel = ?", (channel,)).fetchone()[0]
            if count >= MAX_PENDING:
                return PairingRequest("", False)
            code = _new_code(db)
            db.execute("INSERT INTO pending VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (channel, sender_id, username, chat_id, code, now, now))
            return PairingRequest(code, True)

    def approve(self, code: str) -> Pairing | None:
        """Admit the sender holding `code` (any case, spaces ignored); None when no valid code matches."""
        code = "".join(code.split()).upper()
        now = time.time()
        with self._db() as db:
            row = db.execute("SELECT channel, sender_id, username, chat_id FROM pending "
                             "WHERE code = ? AND created >= ?", (code, now - CODE_TTL)).fetchone()
            if row is None:
                return None
            channel, sender_id, username, chat_id = row
            db.execute("DELETE FROM pending WHERE code = ?", (code,))
            db.execute("INSERT OR REPLACE INTO approved VALUES (?, ?, ?, ?)", (channel, sender_id, username, now))
            return Pairing(channel, sender_id, username, chat_id, since=now)

    def is_approved(self, channel: str, sender_id: str) -> bool:
        if not self.path.exists():
            return False
        with self._db() as db:
            return db.execute("SELECT 1 FROM approved WHERE channel = ? AND sender_id = ?",
                              (channel, sender_id)).fetchone() is not None

    def revoke(self, who: str, channel: str | None = None) -> list[Pairing]:
        """Remove approvals whose sender id or username (with or without '@') is `who`."""
        name = who.removeprefix("@").lower()
        with self._db() as db:
            rows = db.execute("SELECT channel, sender_id, username, approved FROM approved "
                              "WHERE (sender_id = ? OR lower(username) = ?) AND (? IS NULL OR channel = ?)",
                              (who, name, channel, channel)).fetchall()
            for ch, sender_id, _, _ in rows:
                db.execute("DELETE FROM approved WHERE channel = ? AND sender_id = ?", (ch, sender_id))
        return [Pairing(ch, sid, user, since=since) for ch, sid, user, since in rows]

    def pending(self) -> list[Pairing]:
        with self._db() as db:
            rows = db.execute("SELECT channel, sender_id, username, chat_id, code, created FROM pending "
                              "WHERE created >= ? ORDER BY created", (time.time() - CODE_TTL,)).fetchall()
        return [Pairing(*row) for row in rows]

    def approved(self) -> list[Pairing]:
        with self._db() as db:
            rows = db.execute("SELECT channel, sender_id, username, approved FROM approved "
                              "ORDER BY approved").fetchall()
        return [Pairing(ch, sid, user, since=since) for ch, sid, user, since in rows]

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self._create()
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")  # one writer at a time: the CLI and the gateway share the file
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def _create(self) -> None:
        """Make the file owner-only before SQLite writes a byte (its journal takes the same mode)."""
        if self.path.exists():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))


def _new_code(db: sqlite3.Connection) -> str:
    while True:
        code = "".join(secrets.choice(_ALPHABET) for _ in range(CODE_LENGTH))
        if db.execute("SELECT 1 FROM pending WHERE code = ?", (code,)).fetchone() is None:
            return code
