"""The local message store: SQLite in WAL mode, one row per message, read state per thread.

Writes are committed before `add` returns (synchronous=FULL), so an acknowledged message survives a crash.
The same message delivered twice (same thread, sender, time and text) is stored once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from device.inbox import Message, Thread

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id     INTEGER PRIMARY KEY,
    thread TEXT NOT NULL,
    sender TEXT NOT NULL,
    text   TEXT NOT NULL,
    ts     TEXT NOT NULL,
    read   INTEGER NOT NULL DEFAULT 0,
    UNIQUE (thread, sender, ts, text)
);
CREATE INDEX IF NOT EXISTS messages_thread_ts ON messages (thread, ts, id);
"""


class StoreError(Exception):
    pass


class MessageStore:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(str(path), isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open message store {path}: {exc}") from exc

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> MessageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, messages: Iterable[Message]) -> list[int]:
        """Store messages in one transaction; returns their row ids (existing ids for duplicates)."""
        ids = []
        try:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                for m in messages:
                    row = (m.thread, m.sender, m.text, m.ts.isoformat())
                    self.db.execute("INSERT OR IGNORE INTO messages (thread, sender, text, ts) VALUES (?,?,?,?)", row)
                    (rid,) = self.db.execute(
                        "SELECT id FROM messages WHERE thread=? AND sender=? AND text=? AND ts=?", row).fetchone()
                    ids.append(rid)
        except sqlite3.OperationalError as exc:
            raise StoreError(f"could not write to the message store {self.path}: {exc}; nothing was stored") from exc
        return ids

    def thread_names(self) -> list[str]:
        rows = self.db.execute("SELECT thread FROM messages GROUP BY thread ORDER BY MAX(ts) DESC").fetchall()
        return [r[0] for r in rows]

    def thread(self, name: str) -> Thread:
        rows = self.db.execute(
            "SELECT sender, text, ts, read FROM messages WHERE thread=? ORDER BY ts, id", (name,)).fetchall()
        thread = Thread(name)
        for sender, text, ts, read in rows:
            thread.add(Message(name, sender, text, datetime.fromisoformat(ts)))
            if read:
                thread.read_upto = len(thread.messages)
        return thread

    def mark_read(self, name: str) -> int:
        with self.db:
            cur = self.db.execute("UPDATE messages SET read=1 WHERE thread=? AND read=0", (name,))
        return cur.rowcount

    def unread_count(self, name: str) -> int:
        (n,) = self.db.execute("SELECT COUNT(*) FROM messages WHERE thread=? AND read=0", (name,)).fetchone()
        return n
