"""What a connector must remember across restarts, kept in the wearer's encrypted store beside the messages.

- state: sealed values per source (the account's access token, the sync position, the room ↔ chat names);
- events: which message row each of the source's event ids became (a keyed digest of the id, never the id), so an
  event seen twice is stored and shown once, and an edit or a deletion finds its message;
- outgoing: confirmed replies waiting for the server, sealed, each with the transaction id that makes a repeated
  send land once (a Matrix server answers a repeated transaction id with the first send's event).

A message and its event id are written in one transaction, and the sync position only after the messages it
covers: a crash anywhere repeats work (deduplicated), it never skips it.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from device.messages.inbox import Message
from device.messages.store import MessageStore
from device.privacy.crypto import IntegrityError

SCHEMA = """
CREATE TABLE IF NOT EXISTS source_state (
    source TEXT NOT NULL, name TEXT NOT NULL, body BLOB NOT NULL, PRIMARY KEY (source, name));
CREATE TABLE IF NOT EXISTS source_events (
    source TEXT NOT NULL, event TEXT NOT NULL, message_id INTEGER, PRIMARY KEY (source, event));
CREATE TABLE IF NOT EXISTS outgoing (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL, txn TEXT NOT NULL UNIQUE, created REAL NOT NULL,
    body BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);
"""


class LedgerError(Exception):
    pass


@dataclass(frozen=True)
class Outgoing:
    id: int
    txn: str
    room: str
    thread: str
    text: str
    attempts: int


class Ledger:
    def __init__(self, store: MessageStore, source: str):
        self.store = store
        self.source = source
        store.db.executescript(SCHEMA)

    # -- sealed values ------------------------------------------------------------------------------------------
    def _aad(self, name: str) -> bytes:
        return f"source-state:{self.source}:{name}".encode()

    def get(self, name: str, default: Any = None) -> Any:
        row = self.store.db.execute("SELECT body FROM source_state WHERE source=? AND name=?",
                                    (self.source, name)).fetchone()
        if row is None:
            return default
        try:
            return json.loads(self.store.cipher.open(row[0], self._aad(name)))
        except IntegrityError as exc:
            raise LedgerError(f"the {self.source} connector's saved {name} in {self.store.path} failed "
                              f"authentication (tampered or corrupted); connect again") from exc

    def put(self, name: str, value: Any) -> None:
        with self.store.transaction(f"save the {self.source} {name}"):
            self._put(name, value)

    def _put(self, name: str, value: Any) -> None:
        self.store.db.execute("INSERT OR REPLACE INTO source_state VALUES (?,?,?)",
                              (self.source, name, self.store.cipher.seal(json.dumps(value), self._aad(name))))

    def forget(self) -> None:
        """Sign out: the token, sync position and queue go; the messages stay (they are the wearer's)."""
        with self.store.transaction(f"forget the {self.source} account"):
            for table in ("source_state", "source_events", "outgoing"):
                self.store.db.execute(f"DELETE FROM {table} WHERE source=?", (self.source,))

    # -- events ↔ messages --------------------------------------------------------------------------------------
    def _event(self, event_id: str) -> str:
        return self.store.cipher.blind("source-event", self.source, event_id)

    def seen(self, event_id: str) -> bool:
        return self.store.db.execute("SELECT 1 FROM source_events WHERE source=? AND event=?",
                                     (self.source, self._event(event_id))).fetchone() is not None

    def message_of(self, event_id: str) -> int | None:
        row = self.store.db.execute("SELECT message_id FROM source_events WHERE source=? AND event=?",
                                    (self.source, self._event(event_id))).fetchone()
        return row[0] if row else None

    def record(self, event_id: str, message: Message | None) -> int | None:
        """Store the message an event carries (None: an event that is no message) and mark the event seen; the
        message's row id."""
        with self.store.transaction("store a received message"):
            rid = self.store.insert(message) if message is not None else None
            self.store.db.execute("INSERT OR REPLACE INTO source_events VALUES (?,?,?)",
                                  (self.source, self._event(event_id), rid))
        return rid

    def link(self, event_id: str, rid: int | None) -> None:
        with self.store.transaction("link a sent message"):
            self.store.db.execute("INSERT OR REPLACE INTO source_events VALUES (?,?,?)",
                                  (self.source, self._event(event_id), rid))

    def replace(self, event_id: str, target_event: str, new_text: str) -> tuple[Message, Message] | None:
        """An edit: the message `target_event` became gets `new_text` (same sender, time and chat); (old, new)."""
        rid = self.message_of(target_event)
        old = self.store.message(rid) if rid is not None else None
        if old is None:
            self.record(event_id, None)
            return None
        new = Message(old.thread, old.sender, new_text, old.ts)
        with self.store.transaction("store an edited message"):
            self.store.delete_in_transaction([rid])
            new_rid = self.store.insert(new)
            self.store.db.execute("UPDATE source_events SET message_id=? WHERE source=? AND message_id=?",
                                  (new_rid, self.source, rid))
            self.store.db.execute("INSERT OR REPLACE INTO source_events VALUES (?,?,?)",
                                  (self.source, self._event(event_id), None))
        return old, new

    def delete(self, event_id: str, target_event: str) -> Message | None:
        """A deletion (redaction): the message is gone from the store and the search index; the message it was."""
        rid = self.message_of(target_event)
        old = self.store.message(rid) if rid is not None else None
        with self.store.transaction("delete a message deleted at its source"):
            if rid is not None:
                self.store.delete_in_transaction([rid])
                self.store.db.execute("UPDATE source_events SET message_id=NULL WHERE source=? AND message_id=?",
                                      (self.source, rid))
            self.store.db.execute("INSERT OR REPLACE INTO source_events VALUES (?,?,?)",
                                  (self.source, self._event(event_id), None))
        return old

    # -- the outgoing queue -------------------------------------------------------------------------------------
    def _out_aad(self, txn: str) -> bytes:
        return f"outgoing:{self.source}:{txn}".encode()

    def enqueue(self, room: str, thread: str, text: str) -> str:
        """A confirmed reply, durable before the wearer is told it is sent; its transaction id."""
        txn = f"glassmate-{secrets.token_hex(12)}"
        body = self.store.cipher.seal(json.dumps({"room": room, "thread": thread, "text": text}), self._out_aad(txn))
        with self.store.transaction("queue a reply"):
            self.store.db.execute("INSERT INTO outgoing (source, txn, created, body) VALUES (?,?,?,?)",
                                  (self.source, txn, time.time(), body))
        return txn

    def pending(self) -> list[Outgoing]:
        out = []
        for rid, txn, body, attempts in self.store.db.execute(
                "SELECT id, txn, body, attempts FROM outgoing WHERE source=? ORDER BY id", (self.source,)):
            obj = json.loads(self.store.cipher.open(body, self._out_aad(txn)))
            out.append(Outgoing(rid, txn, obj["room"], obj["thread"], obj["text"], attempts))
        return out

    def is_ours(self, txn: str | None) -> bool:
        return bool(txn) and txn.startswith("glassmate-")

    def attempted(self, item: Outgoing) -> None:
        with self.store.transaction("count a send attempt"):
            self.store.db.execute("UPDATE outgoing SET attempts=attempts+1 WHERE id=?", (item.id,))

    def sent(self, item: Outgoing, event_id: str, rid: int | None) -> None:
        """The server has it: off the queue, and its event id points at the reply stored when it was confirmed."""
        with self.store.transaction("mark a reply sent"):
            self.store.db.execute("DELETE FROM outgoing WHERE id=?", (item.id,))
            self.store.db.execute("INSERT OR REPLACE INTO source_events VALUES (?,?,?)",
                                  (self.source, self._event(event_id), rid))
