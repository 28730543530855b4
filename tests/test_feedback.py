"""What the wearer did with each set of drafts (device/glasses/feedback.py): picked, edited, dictated, dismissed —
recorded by the session as it happens, sealed in the real encrypted store, erased with the thread."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from device.assistant.core import Result
from device.glasses.commands import ContactBook, parse
from device.glasses.feedback import Feedback, FeedbackLog, Outcome
from device.glasses.session import GlassesSession
from device.messages.inbox import Message, Thread
from device.messages.retention import apply_retention, forget_thread
from device.messages.store import MessageStore, StoreError
from device.privacy.egress import AuditLog, EgressGate
from device.privacy.transport import MemoryTransport
from device.tasks import Task

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
DRAFTS = ["Yes, see you at 7", "Sorry, I can't tonight", "Let me check and get back to you"]


class DraftingAssistant:
    def notify(self, message: Message) -> Result:
        return Result(Task.NOTIFY, f"{message.sender}: {message.text}", "fake", 0.0, 0.0)

    def catch_up(self, thread: Thread) -> Result:
        return Result(Task.CATCH_UP, "summary", "fake", 0.0, 0.0)

    def draft_replies(self, thread: Thread) -> Result:
        return Result(Task.DRAFT_REPLIES, " | ".join(DRAFTS), "fake", 0.0, 0.0, replies=list(DRAFTS))


def _session(tmp_path):
    store = MessageStore(tmp_path / "glassmate.db")
    threads = {name: Thread(name) for name in ("Mum", "Dev")}
    texts = {"Mum": "Dinner at 7 tonight?", "Dev": "Can you review my PR?"}
    for i, (name, thread) in enumerate(threads.items()):
        m = Message(name, name, texts[name], T0 + timedelta(minutes=i))
        thread.add(m)
        store.add([m])
    gate = EgressGate(lambda: [m.text for t in threads.values() for m in t.messages], AuditLog(tmp_path / "a.jsonl"),
                      MemoryTransport())
    clock = [T0 + timedelta(hours=1)]
    session = GlassesSession(DraftingAssistant(), gate, threads, now=lambda: clock[0])
    log = FeedbackLog(store)
    session.on_feedback = log.record
    return session, store, log, clock


def test_each_way_a_set_of_drafts_ends_is_recorded(tmp_path):
    session, store, log, clock = _session(tmp_path)
    # picked: tap the second chip, confirm
    session.do(parse("catch me up on mum", session.book))
    session.do(parse("reply to mum", session.book))
    session.key("right")
    session.key("enter")
    assert session.key("enter").toast == "Sent to Mum"
    # edited: choose the first, change it, confirm
    session.do(parse("reply to mum", session.book))
    session.hear("the first one")
    s = session.hear("change it to yes, see you at 8")
    assert s.view == "confirm" and s.confirm["text"] == "Yes see you at 8"
    session.hear("send")
    # dictated: drafts on the display, the wearer says their own words
    session.do(parse("reply to dev", session.book))
    session.hear("tell dev I'll look at it after lunch")
    session.hear("send")
    # dismissed: drafts shown, then left
    session.do(parse("reply to dev", session.book))
    session.hear("cancel")

    got = log.all()
    assert [f.outcome for f in got] == [Outcome.PICKED, Outcome.EDITED, Outcome.DICTATED, Outcome.DISMISSED]
    picked, edited, dictated, dismissed = got
    assert picked == Feedback("Mum", tuple(DRAFTS), Outcome.PICKED, T0.isoformat(), clock[0].isoformat(), 1, DRAFTS[1])
    assert (edited.index, edited.shown[edited.index], edited.sent) == (0, DRAFTS[0], "Yes see you at 8")
    assert (dictated.thread, dictated.index, dictated.sent) == ("Dev", None, "I'll look at it after lunch")
    assert (dismissed.thread, dismissed.sent) == ("Dev", None)
    assert log.counts() == {"picked": 1, "edited": 1, "dictated": 1, "dismissed": 1, "total": 4, "chats": 2}


def test_drafts_left_for_another_chat_or_the_next_card_are_dismissed(tmp_path):
    session, _, log, _ = _session(tmp_path)
    session.do(parse("reply to mum", session.book))
    session.do(parse("reply to dev", session.book))  # Mum's drafts replaced by Dev's
    session.hear("next")
    assert [(f.thread, f.outcome) for f in log.all()] == [("Mum", Outcome.DISMISSED), ("Dev", Outcome.DISMISSED)]


def test_the_signal_is_sealed_and_goes_with_the_thread(tmp_path):
    session, store, log, clock = _session(tmp_path)
    session.do(parse("reply to mum", session.book))
    session.key("enter")
    session.key("enter")
    session.do(parse("reply to dev", session.book))
    session.hear("cancel")
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("glassmate.db*"))
    assert DRAFTS[0].encode() not in raw and b"picked" not in raw, "drafts and outcomes are sealed"
    report = forget_thread(store, "Mum", tmp_path / "state")
    assert report["derived"] == 1 and [f.thread for f in log.all()] == ["Dev"]
    apply_retention(store, clock[0] + timedelta(days=1), tmp_path / "state")
    assert log.all() == []


def test_a_failing_store_never_fails_the_send(tmp_path, caplog):
    session, store, _, _ = _session(tmp_path)
    (pages,) = store.db.execute("PRAGMA page_count").fetchone()
    store.db.execute(f"PRAGMA max_page_count={pages}")  # a disk that holds no more: SQLite says it is full
    for size in (500, 100, 10):  # fill what room the derived rows' pages have left
        with pytest.raises(StoreError, match="full"):
            for _ in range(1000):
                store.save_derived("filler", "summary", "x" * size, T0)
    session.do(parse("reply to mum", session.book))
    session.key("enter")
    assert session.key("enter").toast == "Sent to Mum"
    assert "could not record what happened to the drafts" in caplog.text and FeedbackLog(store).all() == []


def test_change_it_to_is_an_edit_and_only_of_a_reply_waiting_to_be_sent():
    book = ContactBook(["Mum"], [])
    cmd = parse("change it to see you at 8", book)
    assert (cmd.intent, cmd.slots) == ("edit", {"text": "see you at 8"})
    assert parse("make it half past seven instead", book).slots == {"text": "half past seven instead"}
    assert parse("make mum a priority", book).intent == "priority"
    session = GlassesSession(DraftingAssistant(), None, {"Mum": Thread("Mum")})
    assert session.hear("change it to no").toast == "Nothing to change"
