"""What reaches the glasses: the delivery policy (allow / mute / priority per chat and per source, quiet hours,
bursts folded into one card), on the session, by voice, on the CLI, and kept sealed in the store. Fast: the model is
tests/fakes.py's scripted one."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from device.assistant.core import Assistant
from device.cli import app
from device.glasses.commands import ContactBook, parse
from device.glasses.session import GlassesSession
from device.messages.delivery import (
    Action,
    Delivery,
    DeliveryPolicy,
    HeldSummary,
    Level,
    PolicyError,
    QuietHours,
    Rule,
    parse_clock,
)
from device.messages.inbox import Message, group_threads, read_feed
from device.messages.store import MessageStore, StoreError
from tests.conftest import glassmate_home
from tests.fakes import FakeEngine

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "device" / "data" / "sample_inbox.jsonl"
NOON = datetime(2026, 11, 22, 12, 0).astimezone()
runner = CliRunner()


class Clock:
    def __init__(self, at: datetime = NOON):
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def set(self, hour: int, minute: int = 0, days: int = 0) -> datetime:
        self.at = (NOON + timedelta(days=days)).replace(hour=hour, minute=minute)
        return self.at

    def tick(self, seconds: float) -> datetime:
        self.at += timedelta(seconds=seconds)
        return self.at


def msg(thread: str, sender: str, text: str, clock: Clock) -> Message:
    return Message(thread, sender, text, clock())


# -- the policy -----------------------------------------------------------------------------------------------------
def test_levels_default_to_allow_and_a_chat_rule_beats_its_source_rule():
    policy = DeliveryPolicy()
    assert policy.level("Mum", "feed", NOON) is Level.ALLOW
    policy.set_source("matrix", Level.MUTE)
    assert policy.level("Climbing crew", "matrix", NOON) is Level.MUTE
    assert policy.level("Climbing crew", "feed", NOON) is Level.ALLOW
    policy.set_chat("Climbing crew", Level.PRIORITY)
    assert policy.rule("Climbing crew", "matrix", NOON)[1] == "chat"
    assert policy.level("Climbing crew", "matrix", NOON) is Level.PRIORITY
    policy.set_chat("Mum", Level.ALLOW)  # an explicit allow beats a muted source too
    assert policy.level("Mum", "matrix", NOON) is Level.ALLOW
    with pytest.raises(PolicyError):
        policy.set_chat(" ", Level.MUTE)


def test_a_rule_lapses_at_its_until_and_the_source_rule_shows_through():
    policy = DeliveryPolicy()
    policy.set_source("matrix", Level.PRIORITY)
    policy.set_chat("Flat 4B", Level.MUTE, until=NOON + timedelta(hours=2))
    assert policy.level("Flat 4B", "matrix", NOON + timedelta(hours=1)) is Level.MUTE
    assert policy.level("Flat 4B", "matrix", NOON + timedelta(hours=2)) is Level.PRIORITY
    assert policy.prune(NOON + timedelta(hours=3)) and "Flat 4B" not in policy.chats
    assert not policy.prune(NOON + timedelta(hours=3))


def test_unmute_drops_the_chat_rule_and_overrides_a_muting_source():
    policy = DeliveryPolicy()
    policy.set_chat("Mum", Level.MUTE)
    policy.unmute("Mum", "feed", NOON)
    assert "Mum" not in policy.chats and policy.level("Mum", "feed", NOON) is Level.ALLOW
    policy.set_source("matrix", Level.MUTE)
    policy.unmute("Climbing crew", "matrix", NOON)
    assert policy.chats["Climbing crew"] == Rule(Level.ALLOW)


def test_quiet_hours_across_midnight_and_within_a_day():
    night = QuietHours(time(22), time(7))
    at = NOON.replace
    assert night.covers(at(hour=22)) and night.covers(at(hour=23, minute=59)) and night.covers(at(hour=0))
    assert night.covers(at(hour=6, minute=59)) and not night.covers(at(hour=7)) and not night.covers(at(hour=12))
    assert not night.covers(at(hour=21, minute=59))
    afternoon = QuietHours(time(13), time(15, 30))
    assert afternoon.covers(at(hour=14)) and not afternoon.covers(at(hour=15, minute=30))
    assert not afternoon.covers(at(hour=23))
    with pytest.raises(PolicyError):
        QuietHours(time(7), time(7))
    assert night.describe() == "22:00–07:00"


@pytest.mark.parametrize(("text", "want"), [("22:00", time(22)), ("7:30", time(7, 30)), ("07", time(7)),
                                            ("10pm", time(22)), ("10:30 pm", time(22, 30)), ("12am", time(0)),
                                            ("12 pm", time(12)), ("7 a.m.", time(7))])
def test_clock_times(text, want):
    assert parse_clock(text) == want


@pytest.mark.parametrize("text", ["25:00", "7:75", "13pm", "tea time", ""])
def test_bad_clock_times_are_refused(text):
    with pytest.raises(PolicyError):
        parse_clock(text)


def test_decisions_mute_hold_priority_and_fold():
    clock = Clock()
    policy = DeliveryPolicy(quiet=QuietHours(time(22), time(7)))
    policy.set_chat("Spam", Level.MUTE)
    policy.set_chat("Mum", Level.PRIORITY)
    delivery = Delivery(policy, clock)
    assert delivery.decide(msg("Spam", "x", "win", clock), "feed").action is Action.SILENT
    first = delivery.decide(msg("Climbing crew", "Priya", "7pm?", clock), "feed")
    assert first == delivery.decide(msg("Climbing crew", "Priya", "7pm?", clock), "feed")  # no card shown yet
    assert first.action is Action.CARD
    delivery.card_shown("Climbing crew", "Priya asks about 7pm")
    clock.tick(60)
    folded = delivery.decide(msg("Climbing crew", "Jonas", "yes", clock), "feed")
    assert (folded.action, folded.more) == (Action.FOLD, 1)
    clock.tick(59)
    assert delivery.decide(msg("Climbing crew", "Tomasz", "me too", clock), "feed").more == 2
    assert delivery.fold_text("Climbing crew") == "2 more from Climbing crew · Priya asks about 7pm"
    clock.tick(1)  # 120 s after the card: a new one
    assert delivery.decide(msg("Climbing crew", "Priya", "rope?", clock), "feed").action is Action.CARD
    delivery.card_shown("Climbing crew", "Priya asks about the rope")
    assert delivery.decide(msg("Climbing crew", "Jonas", "got it", clock), "feed", caught_up=True).action \
        is Action.CARD  # the wearer read the chat since: a new card, not a fold
    clock.set(23)
    assert delivery.decide(msg("Flat 4B", "Lena", "plumber", clock), "feed").action is Action.HOLD
    assert delivery.decide(msg("Mum", "Mum", "call me", clock), "feed").action is Action.CARD  # priority
    assert delivery.take_summary() is None  # still quiet hours


def test_the_held_summary_counts_and_names_the_chats():
    clock = Clock()
    delivery = Delivery(DeliveryPolicy(quiet=QuietHours(time(22), time(7))), clock)
    clock.set(23)
    for thread in ("Flat 4B", "Climbing crew", "Flat 4B", "Dinner Friday", "Alice Chen"):
        delivery.decide(msg(thread, "x", "hi", clock), "feed")
    clock.set(7, 1, days=1)
    held = delivery.take_summary()
    assert held is not None and held.count == 5 and held.latest.thread == "Alice Chen"
    assert held.text == "5 messages in quiet hours from Alice Chen, Dinner Friday, Flat 4B and 1 other chat"
    assert delivery.take_summary() is None  # given once
    assert HeldSummary(1, ("Mum",), held.latest).text == "1 message in quiet hours from Mum"
    assert HeldSummary(3, ("Mum", "Flat 4B"), held.latest).text == "3 messages in quiet hours from Mum and Flat 4B"


# -- kept in the store, sealed --------------------------------------------------------------------------------------
def test_the_policy_round_trips_through_the_store_sealed(tmp_path):
    policy = DeliveryPolicy(quiet=QuietHours(time(22), time(7)), fold_window_s=90)
    policy.set_chat("Climbing crew", Level.MUTE, until=NOON + timedelta(hours=2))
    policy.set_chat("Mum", Level.PRIORITY)
    policy.set_source("matrix", Level.MUTE)
    with MessageStore(tmp_path / "glassmate.db") as store:
        assert DeliveryPolicy.load(store) == DeliveryPolicy()  # nothing saved: the defaults
        policy.save(store)
        assert DeliveryPolicy.load(store) == policy
    with MessageStore(tmp_path / "glassmate.db") as store:  # and after a restart
        assert DeliveryPolicy.load(store) == policy
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("glassmate.db"))
    assert b"Climbing crew" not in raw and b"Mum" not in raw and b"matrix" not in raw and b"22:00" not in raw
    db = sqlite3.connect(tmp_path / "glassmate.db")
    (value,) = db.execute("SELECT value FROM meta WHERE name='delivery'").fetchone()
    db.execute("UPDATE meta SET value=? WHERE name='delivery'", (value[:-1] + bytes([value[-1] ^ 1]),))
    db.commit()
    db.close()
    with MessageStore(tmp_path / "glassmate.db") as store, pytest.raises(StoreError, match="failed authentication"):
        DeliveryPolicy.load(store)


# -- the session ----------------------------------------------------------------------------------------------------
class Notes:
    """The assistant's notification calls, counted (the model call folding must skip)."""

    def __init__(self):
        self.engine = FakeEngine(lambda prompt, params: "A line about the message")
        self.assistant = Assistant(self.engine, verbatim_words=0, check_acts=False)

    @property
    def calls(self) -> int:
        return len(self.engine.generations)


def session_for(clock: Clock, policy: DeliveryPolicy | None = None, **kw) -> tuple[GlassesSession, Notes]:
    threads = group_threads(read_feed(SAMPLE))
    for t in threads.values():
        t.mark_read()
    notes = Notes()
    return GlassesSession(notes.assistant, None, threads, now=clock, policy=policy, **kw), notes


def test_a_burst_folds_into_one_card_without_a_model_call_or_a_sound():
    clock = Clock()
    session, notes = session_for(clock)
    s = session.receive(msg("Climbing crew", "Priya", "Are we still on for 7pm at the wall?", clock))
    assert s.view == "card" and s.say and notes.calls == 1
    for i, sender in enumerate(("Jonas", "Tomasz", "Priya"), 1):
        clock.tick(30)
        s = session.receive(msg("Climbing crew", sender, f"reply {i}", clock))
        assert s.view == "card" and s.say is None and notes.calls == 1
        assert s.card["summary"] == f"{i} more from Climbing crew · A line about the message"
    assert s.card["sender"] == "Priya" and s.unread == 4
    clock.tick(120)
    s = session.receive(msg("Climbing crew", "Jonas", "later one", clock))
    assert s.card["summary"] == "A line about the message" and s.say and notes.calls == 2


def test_a_chat_read_since_its_card_starts_a_new_card():
    clock = Clock()
    session, notes = session_for(clock)
    session.receive(msg("Climbing crew", "Priya", "Are we still on for 7pm?", clock))
    assert session.hear("read the climbing crew").view == "thread"
    clock.tick(10)
    s = session.receive(msg("Climbing crew", "Jonas", "yes", clock))
    assert s.view == "thread" and s.toast == "New message from Jonas"  # reading it: no card
    session.hear("cancel")
    s = session.receive(msg("Climbing crew", "Tomasz", "me too", clock))
    assert s.view == "card" and s.card["summary"] == "A line about the message" and notes.calls == 2


def test_muted_chats_are_stored_unread_but_make_no_card_and_leave_the_badge():
    clock = Clock()
    saved: list[dict] = []
    session, notes = session_for(clock, save_policy=lambda p: saved.append(p.to_json()))
    s = session.hear("mute mum for 2 hours")
    assert s.toast == "Muted Mum for 2 hours" and saved[-1]["chats"]["Mum"]["level"] == "mute"
    assert session.policy.chats["Mum"] == Rule(Level.MUTE, NOON + timedelta(hours=2))
    s = session.receive(msg("Mum", "Mum", "Call me when you can", clock))
    assert s.view == "idle" and s.unread == 0 and notes.calls == 0
    assert len(session.threads["Mum"].unread) == 1  # kept, unread, for when the wearer looks
    assert session.hear("next").toast == "All caught up"
    clock.tick(2 * 3600)
    s = session.receive(msg("Mum", "Mum", "Call me please", clock))
    assert s.view == "card" and s.unread == 2


def test_a_source_rule_comes_from_source_of_and_a_chat_rule_beats_it():
    clock = Clock()
    policy = DeliveryPolicy()
    policy.set_source("matrix", Level.MUTE)
    bridged = {"Climbing crew", "Dinner Friday"}
    session, notes = session_for(clock, policy, source_of=lambda m: "matrix" if m.thread in bridged else "feed")
    assert session.receive(msg("Climbing crew", "Priya", "7pm?", clock)).view == "idle"
    assert session.receive(msg("Flat 4B", "Lena", "plumber at 3", clock)).view == "card"
    session.hear("cancel")
    policy.set_chat("Dinner Friday", Level.ALLOW)
    assert session.receive(msg("Dinner Friday", "Marco", "deposit please", clock)).view == "card"
    assert session.screen.unread == 2  # Climbing crew's message is muted: not on the badge


def test_priority_interrupts_the_thread_view_but_never_a_reply_being_confirmed():
    clock = Clock()
    policy = DeliveryPolicy()
    policy.set_chat("Mum", Level.PRIORITY)
    session, _ = session_for(clock, policy)
    session.hear("read flat 4b")
    s = session.receive(msg("Climbing crew", "Priya", "7pm?", clock))
    assert s.view == "thread" and s.toast == "New message from Priya"  # allow: only a toast
    s = session.receive(msg("Mum", "Mum", "Call me, it's urgent", clock))
    assert s.view == "card" and s.card["thread"] == "Mum" and s.thread is None and s.say
    session.hear("tell lena thanks")
    assert session.screen.view == "confirm"
    clock.tick(300)
    s = session.receive(msg("Mum", "Mum", "Hello??", clock))
    assert s.view == "confirm" and s.confirm["thread"] == "Flat 4B" and s.toast == "New message from Mum"


def test_quiet_hours_hold_all_but_priority_then_one_summary_card_on_the_next_arrival():
    clock = Clock()
    policy = DeliveryPolicy(quiet=QuietHours(time(22), time(7)))
    policy.set_chat("Mum", Level.PRIORITY)
    session, notes = session_for(clock, policy)
    clock.set(23, 30)
    for thread, sender in (("Climbing crew", "Priya"), ("Flat 4B", "Lena"), ("Climbing crew", "Jonas")):
        s = session.receive(msg(thread, sender, "late news", clock))
        assert s.view == "idle" and s.say is None
    assert notes.calls == 0 and s.unread == 3
    clock.set(2, days=1)  # past midnight, still quiet
    assert session.receive(msg("Flat 4B", "Dev", "still up?", clock)).view == "idle"
    s = session.receive(msg("Mum", "Mum", "Landed safely", clock))
    assert s.view == "card" and s.card["thread"] == "Mum" and notes.calls == 1  # priority gets through
    session.hear("cancel")
    clock.set(7, 15, days=1)
    s = session.receive(msg("Dinner Friday", "Marco", "Table booked", clock))
    assert s.view == "card" and s.card["thread"] == "Dinner Friday"
    assert s.card["summary"] == ("4 messages in quiet hours from Flat 4B and Climbing crew; now Marco: "
                                 "A line about the message")
    assert s.say.startswith("4 messages in quiet hours from Flat 4B and Climbing crew. Now Marco:")
    session.hear("cancel")
    clock.tick(300)
    s = session.receive(msg("Alice Chen", "Alice Chen", "Morning!", clock))
    assert "quiet hours" not in s.card["summary"]  # one summary, once


def test_the_summary_card_comes_on_next_and_leaves_out_what_was_read():
    clock = Clock()
    session, notes = session_for(clock, DeliveryPolicy(quiet=QuietHours(time(22), time(7))))
    clock.set(22, 30)
    session.receive(msg("Climbing crew", "Priya", "late news", clock))
    session.receive(msg("Alice Chen", "Alice Chen", "you up?", clock))
    session.hear("read alice chen")  # read during quiet hours: not in the summary
    session.hear("cancel")
    clock.set(8, days=1)
    s = session.hear("next")
    assert s.view == "card" and s.card["summary"] == "1 message in quiet hours from Climbing crew"
    assert s.card["thread"] == "Climbing crew" and notes.calls == 0
    assert session.hear("next").toast == "All caught up"


def test_voice_sets_priority_unmute_and_quiet_hours_and_they_are_saved(tmp_path):
    clock = Clock()
    with MessageStore(tmp_path / "glassmate.db") as store:
        session, _ = session_for(clock, DeliveryPolicy.load(store), save_policy=lambda p: p.save(store))
        assert session.hear("make Mum a priority").toast == "Mum always gets through"
        assert session.hear("mute the climbing crew").toast == "Muted Climbing crew until you unmute it"
        assert session.hear("quiet hours from 10 pm to 7 am").toast == "Quiet hours 22:00–07:00"
        kept = DeliveryPolicy.load(store)
        assert kept.chats == {"Mum": Rule(Level.PRIORITY), "Climbing crew": Rule(Level.MUTE)}
        assert kept.quiet == QuietHours(time(22), time(7))
        assert session.hear("unmute the climbing crew").toast == "Unmuted Climbing crew"
        assert session.hear("turn off quiet hours").toast == "Quiet hours off"
        kept = DeliveryPolicy.load(store)
        assert kept.chats == {"Mum": Rule(Level.PRIORITY)} and kept.quiet is None
        assert session.hear("make zebediah a priority").toast == "No chat called “zebediah”"
        assert session.hear("quiet hours").toast == "Quiet hours from when to when?"


def test_a_failing_save_keeps_the_rule_for_the_session_and_says_so():
    def broken(policy: DeliveryPolicy) -> None:
        raise StoreError("disk full")
    session, _ = session_for(Clock(), save_policy=broken)
    assert session.hear("mute flat 4b").toast == "Muted Flat 4B until you unmute it (not saved: disk full)"
    assert session.policy.chats["Flat 4B"].level is Level.MUTE


# -- voice ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def book() -> ContactBook:
    return ContactBook.from_threads(group_threads(read_feed(SAMPLE)),
                                    ContactBook.read_aliases(ROOT / "tests" / "fixtures" / "commands" /
                                                             "aliases.json"))


@pytest.mark.parametrize(("said", "intent", "slots"), [
    ("mute Climbing crew", "mute", {"thread": "Climbing crew"}),
    ("unmute Climbing crew", "unmute", {"thread": "Climbing crew"}),
    ("un mute the flat group", "unmute", {"thread": "Flat 4B"}),
    ("turn notifications back on for dinner friday", "unmute", {"thread": "Dinner Friday"}),
    ("unmute this", "unmute", {}),
    ("unmute lena", "unmute", {"unknown": "lena"}),
    ("make Mum a priority", "priority", {"thread": "Mum"}),
    ("always tell me about Mum", "priority", {"thread": "Mum"}),
    ("always tell me when mum writes", "priority", {"thread": "Mum"}),
    ("prioritize the climbing crew for two hours", "priority", {"thread": "Climbing crew", "minutes": 120}),
    ("always let alice chen through", "priority", {"thread": "Alice Chen"}),
    ("make this a priority", "priority", {}),
    ("quiet hours from 10 pm to 7 am", "quiet_hours", {"start": "22:00", "end": "07:00"}),
    ("please set quiet hours from 10pm to 7am", "quiet_hours", {"start": "22:00", "end": "07:00"}),
    ("quiet hours 22:00 to 06:30", "quiet_hours", {"start": "22:00", "end": "06:30"}),
    ("do not disturb from eleven thirty pm to six am", "quiet_hours", {"start": "23:30", "end": "06:00"}),
    ("quiet hours from ten to seven", "quiet_hours", {"start": "22:00", "end": "07:00"}),
    ("quiet hours from midnight to half past seven", "quiet_hours", {"start": "00:00", "end": "07:30"}),
    ("turn off quiet hours", "quiet_hours_off", {}),
    ("quiet hours off", "quiet_hours_off", {}),
    ("cancel quiet hours", "quiet_hours_off", {}),
    ("no more do not disturb", "quiet_hours_off", {}),
    # the old meanings of the words the new intents share stay
    ("quiet the flat group", "mute", {"thread": "Flat 4B"}),
    ("tell mum I'll be late", "reply", {"to": "Mum", "text": "i'll be late"}),
    ("stop", "cancel", {}),
])
def test_voice_utterances_become_delivery_intents(book, said, intent, slots):
    cmd = parse(said, book)
    assert cmd is not None and (cmd.intent, cmd.slots) == (intent, slots)


# -- the CLI --------------------------------------------------------------------------------------------------------
@pytest.fixture
def home(tmp_path) -> Path:
    with glassmate_home(tmp_path), MessageStore(tmp_path / "state" / "glassmate.db") as store:
        store.add(read_feed(SAMPLE))
        yield tmp_path


def chats(*args: str):
    result = runner.invoke(app, ["chats", *args])
    return result, " ".join(result.stderr.split())


def test_cli_sets_rules_and_quiet_hours_and_lists_them(home):
    result, _ = chats("mute", "climbing crew", "--for", "2h", "--json")  # case-insensitive match
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["chat"] == "Climbing crew" and doc["level"] == "mute"
    assert timedelta(hours=1, minutes=59) < datetime.fromisoformat(doc["until"]) - datetime.now().astimezone() \
        <= timedelta(hours=2)
    assert chats("priority", "Mum")[0].exit_code == 0
    assert chats("mute", "--source", "matrix")[0].exit_code == 0
    result, _ = chats("quiet", "22:00", "07:00")
    assert result.exit_code == 0 and "22:00–07:00" in result.stdout
    result, _ = chats("list", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    rows = {r["chat"]: r for r in doc["chats"]}
    assert rows["Climbing crew"]["level"] == "mute" and rows["Climbing crew"]["unread"] == 8
    assert rows["Mum"]["level"] == "priority" and rows["Flat 4B"]["level"] == "allow"
    assert doc["sources"] == {"matrix": {"level": "mute", "until": None}}
    assert doc["quiet_hours"] == {"start": "22:00", "end": "07:00"}
    with MessageStore(home / "state" / "glassmate.db") as store:  # the session reads the same settings
        assert DeliveryPolicy.load(store).level("Mum", "feed", datetime.now().astimezone()) is Level.PRIORITY
    result, _ = chats("list")
    assert result.exit_code == 0 and "priority" in result.stdout and "quiet hours: 22:00–07:00" in result.stdout
    assert chats("quiet", "off")[0].exit_code == 0 and json.loads(chats("list", "--json")[0].stdout)[
        "quiet_hours"] is None
    assert chats("allow", "Mum")[0].exit_code == 0
    assert json.loads(chats("list", "--json")[0].stdout)["chats"][0]["level"] == "allow"


def test_cli_refuses_an_unknown_chat_naming_close_matches(home):
    result, err = chats("mute", "Climbing")
    assert result.exit_code == 1 and "no chat named 'Climbing'" in err and "did you mean 'Climbing crew'?" in err
    result, err = chats("priority", "Zebediah")
    assert result.exit_code == 1 and "stored chats: 'Mum'" in err
    with MessageStore(home / "state" / "glassmate.db") as store:
        assert DeliveryPolicy.load(store) == DeliveryPolicy()  # nothing was changed


@pytest.mark.parametrize("args", [("mute",), ("mute", "Mum", "--source", "matrix"), ("mute", "--source", "xmpp"),
                                  ("mute", "Mum", "--for", "2 fortnights"), ("quiet", "22:00"),
                                  ("quiet", "22:00", "22:00"), ("quiet", "late", "early")])
def test_cli_refuses_what_it_cannot_keep(home, args):
    result, _ = chats(*args)
    assert result.exit_code == 2, result.output


# -- a source's edits, deletions and state on the display (what the Matrix connector calls) -------------------------
def test_an_edit_replaces_the_message_a_deletion_removes_it_and_its_card_and_the_state_line_keeps_the_toast():
    clock = Clock()
    session, _ = session_for(clock)
    original = msg("Climbing crew", "Priya", "Are we still on for 7pm at the wall?", clock)
    session.receive(original)
    assert session.screen.view == "card"
    edited = Message(original.thread, original.sender, "Are we still on for 8pm at the wall?", original.ts)
    session.replace_message(original, edited)
    assert session.threads["Climbing crew"].messages[-1] == edited and original not in \
        session.threads["Climbing crew"].messages
    session.remove_message(edited)
    assert edited not in session.threads["Climbing crew"].messages
    assert (session.screen.view, session.screen.card) == ("idle", None), "the deleted message's card goes too"
    session._show(toast="Sent to Mum")
    shown = session.set_connection("Matrix: reconnecting… (server unreachable; next try in 2 s)")
    assert shown.connection.startswith("Matrix: reconnecting") and shown.toast == "Sent to Mum"
    assert session.set_connection(None).connection is None
