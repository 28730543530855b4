from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from device.messages.inbox import Message
from device.messages.store import MessageStore


def _msgs():
    t = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
    return [Message("Mum", "Mum", "Lunch at 1pm on Sunday?", t),
            Message("Mum", "Mum", "Bring a dessert, no nuts 🌰", t.replace(minute=1)),
            Message("Flat", "Lena", "Plumber Thursday 8-10am", t.replace(minute=2))]


def test_round_trip_survives_reopen(tmp_path):
    db = tmp_path / "store.db"
    with MessageStore(db) as store:
        ids = store.add(_msgs())
        assert len(set(ids)) == 3
    with MessageStore(db) as store:
        thread = store.thread("Mum")
        assert [m.text for m in thread.messages] == ["Lunch at 1pm on Sunday?", "Bring a dessert, no nuts 🌰"]
        assert thread.messages[0].ts == _msgs()[0].ts
        assert set(store.thread_names()) == {"Mum", "Flat"}
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_duplicates_are_stored_once_and_read_state_persists(tmp_path):
    db = tmp_path / "store.db"
    with MessageStore(db) as store:
        first = store.add(_msgs())
        again = store.add(_msgs()[:2])
        assert again == first[:2]
        assert store.unread_count("Mum") == 2
        assert store.mark_read("Mum") == 2
    with MessageStore(db) as store:
        assert store.unread_count("Mum") == 0
        assert store.thread("Mum").unread == []
        store.add([Message("Mum", "Mum", "Also the cake!", datetime(2026, 11, 20, 19, 0, tzinfo=UTC))])
        assert [m.text for m in store.thread("Mum").unread] == ["Also the cake!"]
