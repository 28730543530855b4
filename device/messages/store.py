"""The local message store: SQLite (WAL), every message, summary and draft encrypted with AES-256-GCM.

What is stored in clear: row ids, a keyed digest of the thread name (so a thread's rows can be found), the
message time (for ordering and retention) and the read flag. Thread names, senders, texts, summaries and drafts
are sealed; each sealed body is bound to its row (the digest and time are authenticated data), so a tampered,
swapped or truncated row fails loudly instead of being dropped. Writes are committed before `add` returns
(synchronous=FULL), so an acknowledged message survives a crash. Deleted rows are overwritten (secure_delete).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from device.messages.inbox import Message, Thread
from device.privacy.crypto import Cipher, IntegrityError, load_or_create_key

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id        INTEGER PRIMARY KEY,
    thread_id TEXT NOT NULL,
    digest    TEXT NOT NULL UNIQUE,
    ts        REAL NOT NULL,
    read      INTEGER NOT NULL DEFAULT 0,
    body      BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_thread_ts ON messages (thread_id, ts, id);
CREATE TABLE IF NOT EXISTS derived (
    id        INTEGER PRIMARY KEY,
    thread_id TEXT NOT NULL,
    kind      TEXT NOT NULL,
    created   REAL NOT NULL,
    body      BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS derived_thread ON derived (thread_id, kind, created);
CREATE TABLE IF NOT EXISTS vectors (
    message_id INTEGER PRIMARY KEY,
    model      TEXT NOT NULL,
    body       BLOB NOT NULL
);
"""
CHECK = "glassmate store v1"


class StoreError(Exception):
    pass


class MessageStore:
    def __init__(self, path: Path | str, key: bytes | None = None, shared: bool = False):
        """`shared`: callers in several threads (the HUD's request workers, the feed replay, the voice loop) use
        this store; SQLite serializes them (Python's sqlite3 here is built thread-safe, `threadsafety == 3`)."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.cipher = Cipher(key if key is not None else load_or_create_key(self.path.parent))
        self._write_lock = threading.RLock()
        try:
            if shared and sqlite3.threadsafety != 3:
                raise StoreError("this Python's SQLite is not built thread-safe; the store cannot be shared")
            self.db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=not shared)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA secure_delete=ON")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open message store {self.path}: {exc}") from exc
        self._check_key()

    def _check_key(self) -> None:
        row = self.db.execute("SELECT value FROM meta WHERE name='check'").fetchone()
        if row is None:
            with self._writing("initialise"):
                self.db.execute("INSERT INTO meta VALUES ('check', ?)", (self.cipher.seal(CHECK, b"check"),))
            return
        try:
            ok = self.cipher.open(row[0], b"check") == CHECK
        except IntegrityError:
            ok = False
        if not ok:
            raise StoreError(f"wrong key for the message store {self.path}: it was encrypted under another key "
                             f"or passphrase. Nothing was read or changed.")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> MessageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """One write transaction; a full disk or a locked file becomes a StoreError and changes nothing. Threads
        sharing the connection take turns (a transaction is the connection's, not the thread's)."""
        with self._write_lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                yield
                self.db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise StoreError(f"could not {what} in {self.path}: {exc}; nothing was changed") from exc
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise

    # -- settings (the wearer's, e.g. what reaches the glasses): sealed, since they name chats ---------------------
    def setting(self, name: str) -> str | None:
        if name == "check":
            raise StoreError("'check' is the store's key check, not a setting")
        row = self.db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        if row is None:
            return None
        try:
            return self.cipher.open(row[0], f"setting:{name}".encode())
        except IntegrityError as exc:
            raise StoreError(f"the {name} settings in {self.path} failed authentication (tampered or "
                             f"corrupted); nothing was changed") from exc

    def save_setting(self, name: str, text: str) -> None:
        if name == "check":
            raise StoreError("'check' is the store's key check, not a setting")
        with self._writing(f"save the {name} settings"):
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                            (name, self.cipher.seal(text, f"setting:{name}".encode())))

    # -- messages -------------------------------------------------------------------------------------------
    def thread_id(self, name: str) -> str:
        return self.cipher.blind("thread", name)

    def _digest(self, m: Message) -> str:
        return self.cipher.blind("message", m.thread, m.sender, m.ts.isoformat(), m.text)

    @staticmethod
    def _aad(digest: str, ts: float) -> bytes:
        return f"message:{digest}:{ts!r}".encode()

    def add(self, messages: Iterable[Message], read: bool = False) -> list[int]:
        """Store messages in one transaction; returns their row ids (existing ids for duplicates). `read`: history
        the wearer already saw elsewhere (an imported export) — searchable, not new on the glasses."""
        with self._writing("store messages"):
            return [self.insert(m, read) for m in messages]

    def transaction(self, what: str):
        """One write transaction for a caller that writes its own rows beside messages (a connector's event ids):
        both land or neither does."""
        return self._writing(what)

    def insert(self, m: Message, read: bool = False) -> int:
        """Store one message inside a `transaction`; its row id (the existing one for a duplicate, unchanged)."""
        digest, ts = self._digest(m), m.ts.timestamp()
        body = self.cipher.seal(json.dumps({"thread": m.thread, "sender": m.sender, "text": m.text,
                                            "ts": m.ts.isoformat()}), self._aad(digest, ts))
        self.db.execute("INSERT OR IGNORE INTO messages (thread_id, digest, ts, read, body) VALUES (?,?,?,?,?)",
                        (self.thread_id(m.thread), digest, ts, int(read), body))
        (rid,) = self.db.execute("SELECT id FROM messages WHERE digest=?", (digest,)).fetchone()
        return rid

    def delete_in_transaction(self, ids: Iterable[int]) -> int:
        """Delete messages (and their search vectors) inside a `transaction`: a message deleted at its source."""
        n = 0
        for rid in ids:
            n += self.db.execute("DELETE FROM messages WHERE id=?", (rid,)).rowcount
            self.db.execute("DELETE FROM vectors WHERE message_id=?", (rid,))
        return n

    def message(self, rid: int) -> Message | None:
        row = self.db.execute("SELECT id, digest, ts, body FROM messages WHERE id=?", (rid,)).fetchone()
        return self._open_message(*row) if row else None

    def _open_message(self, rid: int, digest: str, ts: float, body: bytes) -> Message:
        try:
            obj = json.loads(self.cipher.open(body, self._aad(digest, ts)))
        except IntegrityError as exc:
            raise StoreError(f"message row {rid} in {self.path} failed authentication: it was tampered with or "
                             f"corrupted. Nothing was dropped; restore the file from a backup or remove the row "
                             f"with `glassmate privacy forget`.") from exc
        return Message(obj["thread"], obj["sender"], obj["text"], datetime.fromisoformat(obj["ts"]))

    def messages(self) -> Iterator[tuple[int, Message]]:
        for rid, digest, ts, body in self.db.execute("SELECT id, digest, ts, body FROM messages ORDER BY ts, id"):
            yield rid, self._open_message(rid, digest, ts, body)

    def message_ids(self) -> set[int]:
        """Every stored message's id, without decrypting anything."""
        return {rid for (rid,) in self.db.execute("SELECT id FROM messages")}

    def messages_by_id(self, ids: Iterable[int]) -> Iterator[tuple[int, Message]]:
        """The messages with these ids (decrypted), in time order."""
        wanted = sorted(set(ids))
        rows = []
        for i in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
            chunk = wanted[i:i + 500]
            rows += self.db.execute(f"SELECT id, digest, ts, body FROM messages WHERE id IN "
                                    f"({','.join('?' * len(chunk))})", chunk).fetchall()
        for rid, digest, ts, body in sorted(rows, key=lambda r: (r[2], r[0])):
            yield rid, self._open_message(rid, digest, ts, body)

    def thread_names(self) -> list[str]:
        latest: dict[str, float] = {}
        for _, m in self.messages():
            latest[m.thread] = max(latest.get(m.thread, 0.0), m.ts.timestamp())
        return sorted(latest, key=latest.__getitem__, reverse=True)

    def thread(self, name: str) -> Thread:
        rows = self.db.execute("SELECT id, digest, ts, body, read FROM messages WHERE thread_id=? ORDER BY ts, id",
                               (self.thread_id(name),)).fetchall()
        thread = Thread(name)
        for rid, digest, ts, body, read in rows:
            thread.add(self._open_message(rid, digest, ts, body))
            if read:
                thread.read_upto = len(thread.messages)
        return thread

    def thread_rows(self, name: str) -> list[tuple[int, Message]]:
        """A thread's messages with their row ids, in time order."""
        rows = self.db.execute("SELECT id, digest, ts, body FROM messages WHERE thread_id=? ORDER BY ts, id",
                               (self.thread_id(name),)).fetchall()
        return [(r[0], self._open_message(*r)) for r in rows]

    def mark_read(self, name: str) -> int:
        with self._writing("mark the thread read"):
            cur = self.db.execute("UPDATE messages SET read=1 WHERE thread_id=? AND read=0", (self.thread_id(name),))
        return cur.rowcount

    def unread_count(self, name: str) -> int:
        (n,) = self.db.execute("SELECT COUNT(*) FROM messages WHERE thread_id=? AND read=0",
                               (self.thread_id(name),)).fetchone()
        return n

    # -- summaries and drafts ---------------------------------------------------------------------------------
    def save_derived(self, thread: str, kind: str, text: str, created: datetime) -> int:
        tid, ts = self.thread_id(thread), created.timestamp()
        with self._writing(f"store the {kind}"):
            cur = self.db.execute("INSERT INTO derived (thread_id, kind, created, body) VALUES (?,?,?,?)",
                                  (tid, kind, ts, self.cipher.seal(text, f"derived:{tid}:{kind}:{ts!r}".encode())))
        return cur.lastrowid

    def derived(self, thread: str, kind: str) -> list[str]:
        tid = self.thread_id(thread)
        out = []
        for rid, ts, body in self.db.execute("SELECT id, created, body FROM derived WHERE thread_id=? AND kind=? "
                                             "ORDER BY created, id", (tid, kind)):
            try:
                out.append(self.cipher.open(body, f"derived:{tid}:{kind}:{ts!r}".encode()))
            except IntegrityError as exc:
                raise StoreError(f"{kind} row {rid} in {self.path} failed authentication (tampered or "
                                 f"corrupted); nothing was dropped") from exc
        return out

    def derived_of_kind(self, kind: str) -> list[str]:
        """Every thread's rows of one kind, oldest first."""
        out = []
        for rid, tid, ts, body in self.db.execute("SELECT id, thread_id, created, body FROM derived WHERE kind=? "
                                                  "ORDER BY created, id", (kind,)):
            try:
                out.append(self.cipher.open(body, f"derived:{tid}:{kind}:{ts!r}".encode()))
            except IntegrityError as exc:
                raise StoreError(f"{kind} row {rid} in {self.path} failed authentication (tampered or "
                                 f"corrupted); nothing was dropped") from exc
        return out

    def all_derived_texts(self) -> Iterator[str]:
        for tid, kind, ts, body in self.db.execute("SELECT thread_id, kind, created, body FROM derived"):
            yield self.cipher.open(body, f"derived:{tid}:{kind}:{ts!r}".encode())

    # -- the search index's vectors (sealed like everything else: an embedding can leak its text) -----------------
    @staticmethod
    def _vector_aad(rid: int, model: str) -> bytes:
        return f"vector:{rid}:{model}".encode()

    def save_vectors(self, items: Iterable[tuple[int, bytes]], model: str) -> int:
        n = 0
        with self._writing("store search vectors"):
            for rid, raw in items:
                body = self.cipher.seal_bytes(raw, self._vector_aad(rid, model))
                self.db.execute("INSERT OR REPLACE INTO vectors (message_id, model, body) VALUES (?,?,?)",
                                (rid, model, body))
                n += 1
        return n

    def vectors(self, model: str, ids: Iterable[int] | None = None) -> Iterator[tuple[int, bytes]]:
        """Sealed vectors opened: all of this model's, or only those of the messages `ids`."""
        if ids is None:
            rows = self.db.execute("SELECT message_id, body FROM vectors WHERE model=? ORDER BY message_id", (model,))
        else:
            wanted = sorted(set(ids))
            rows = []
            for i in range(0, len(wanted), 500):
                chunk = wanted[i:i + 500]
                rows += self.db.execute(f"SELECT message_id, body FROM vectors WHERE model=? AND message_id IN "
                                        f"({','.join('?' * len(chunk))}) ORDER BY message_id", (model, *chunk))
        for rid, body in rows:
            try:
                yield rid, self.cipher.open_bytes(body, self._vector_aad(rid, model))
            except IntegrityError as exc:
                raise StoreError(f"search vector of message {rid} in {self.path} failed authentication; rebuild "
                                 f"the index with `glassmate index rebuild`") from exc

    def clear_vectors(self) -> int:
        with self._writing("clear search vectors"):
            return self.db.execute("DELETE FROM vectors").rowcount

    def _drop_orphan_vectors(self) -> int:
        return self.db.execute("DELETE FROM vectors WHERE message_id NOT IN (SELECT id FROM messages)").rowcount

    # -- forgetting -------------------------------------------------------------------------------------------
    def forget_thread(self, name: str) -> dict[str, int]:
        tid = self.thread_id(name)
        with self._writing("forget the thread"):
            m = self.db.execute("DELETE FROM messages WHERE thread_id=?", (tid,)).rowcount
            d = self.db.execute("DELETE FROM derived WHERE thread_id=?", (tid,)).rowcount
            v = self._drop_orphan_vectors()
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return {"messages": m, "derived": d, "vectors": v}

    def purge_before(self, cutoff: datetime) -> dict[str, object]:
        """Delete messages older than `cutoff` and the summaries/drafts made before it; returns what went,
        including the ids of threads left with no messages (their caches go too)."""
        ts = cutoff.timestamp()
        with self._writing("apply retention"):
            before = {r[0] for r in self.db.execute("SELECT DISTINCT thread_id FROM messages")}
            m = self.db.execute("DELETE FROM messages WHERE ts < ?", (ts,)).rowcount
            d = self.db.execute("DELETE FROM derived WHERE created < ?", (ts,)).rowcount
            after = {r[0] for r in self.db.execute("SELECT DISTINCT thread_id FROM messages")}
            emptied = sorted(before - after)
            for tid in emptied:
                d += self.db.execute("DELETE FROM derived WHERE thread_id=?", (tid,)).rowcount
            v = self._drop_orphan_vectors()
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return {"messages": m, "derived": d, "vectors": v, "emptied_threads": emptied}
