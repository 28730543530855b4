"""Work done before it is asked for (device/glasses/prepare.py): a card's chat is summarized and drafted in the
background; opening it shows that work without a model call; anything that changes the chat makes it stale; the
model is never used by two tasks at once."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from device.assistant.core import Assistant, Result
from device.glasses.prepare import Part, Preparer, part_key
from device.glasses.session import GlassesSession
from device.messages.delivery import Level
from device.messages.inbox import Message, Thread
from device.tasks import Task
from tests.fakes import FakeEngine

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def msg(thread: str, sender: str, text: str, minutes: int = 0) -> Message:
    return Message(thread, sender, text, T0 + timedelta(minutes=minutes))


class CountingAssistant:
    """Counts each task and fails the test if two ever run at once (one engine, one task at a time)."""

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s
        self.calls: list[tuple[str, str, int]] = []  # (task, chat, messages read)
        self.running = 0
        self.overlaps = 0
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()

    def _task(self, task: str, thread: Thread, n: int) -> None:
        with self._lock:
            self.running += 1
            self.overlaps += self.running > 1
        if task != "notify":  # the card is never held up; the chat's work can be (the gate)
            assert self.gate.wait(10), "the test never released the model"
        time.sleep(self.delay_s)
        with self._lock:
            self.calls.append((task, thread.name, n))
            self.running -= 1

    def notify(self, message: Message) -> Result:
        self._task("notify", Thread(message.thread), 1)
        return Result(Task.NOTIFY, f"{message.sender}: {message.text}", "fake", 0.0, 0.0)

    def catch_up(self, thread: Thread) -> Result:
        self._task("catch_up", thread, len(thread.unread))
        return Result(Task.CATCH_UP, f"summary of {len(thread.unread)}", "fake", 0.0, 0.0)

    def draft_replies(self, thread: Thread) -> Result:
        self._task("draft_replies", thread, len(thread.messages))
        replies = [f"draft {i} after {len(thread.messages)}" for i in range(1, 4)]
        return Result(Task.DRAFT_REPLIES, " | ".join(replies), "fake", 0.0, 0.0, replies=replies)

    def count(self, task: str) -> int:
        return sum(1 for t, _, _ in self.calls if t == task)


def session_with(assistant, prepare: bool = True) -> GlassesSession:
    return GlassesSession(assistant, None, {}, now=lambda: T0, prepare=prepare)


def test_a_card_s_chat_is_ready_when_opened_with_no_model_call():
    assistant = CountingAssistant()
    session = session_with(assistant)
    try:
        session.receive(msg("Mum", "Mum", "Can you bring a dessert on Sunday? Nothing with nuts."))
        assert session.preparer.idle(10)
        assert (assistant.count("catch_up"), assistant.count("draft_replies")) == (1, 1)
        screen = session.key("enter")
        assert screen.view == "thread"
        assert screen.thread["summary"] == "summary of 1" and screen.chips == [f"draft {i} after 1" for i in (1, 2, 3)]
        assert (assistant.count("catch_up"), assistant.count("draft_replies")) == (1, 1), "opening made nothing new"
        assert session.preparer.stats.used == 2 and session.preparer.stats.missed == 0
    finally:
        session.close()


def test_without_prepare_opening_makes_the_work_as_before():
    assistant = CountingAssistant()
    session = session_with(assistant, prepare=False)
    session.receive(msg("Mum", "Mum", "Can you bring a dessert on Sunday?"))
    assert assistant.count("catch_up") == 0
    screen = session.key("enter")
    assert screen.thread["summary"] == "summary of 1" and len(screen.chips) == 3
    assert (assistant.count("catch_up"), assistant.count("draft_replies")) == (1, 1)


def test_a_message_after_the_work_makes_it_stale_and_the_chat_is_prepared_again():
    assistant = CountingAssistant()
    session = session_with(assistant)
    try:
        session.receive(msg("Crew", "Priya", "Boulderwelt is closed on Saturday, there is a competition."))
        assert session.preparer.idle(10)
        session.receive(msg("Crew", "Jonas", "Sunday at 10 instead?", 5))
        assert session.preparer.idle(10)
        screen = session.key("enter")
        assert screen.thread["summary"] == "summary of 2", "the summary reads both messages, never the old one"
        assert screen.chips[0] == "draft 1 after 2"
        assert assistant.count("catch_up") == 2
    finally:
        session.close()


def test_opening_while_the_worker_makes_that_part_waits_for_it_instead_of_making_it_twice():
    assistant = CountingAssistant()
    assistant.gate.clear()  # the worker's catch-up blocks inside the model until released
    session = session_with(assistant)
    try:
        session.receive(msg("Mum", "Mum", "Dinner at 7?"))
        deadline = time.monotonic() + 10
        while assistant.running == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        opened: list = []
        opener = threading.Thread(target=lambda: opened.append(session.key("enter")))
        opener.start()
        time.sleep(0.2)
        assert not opened, "the display waits for the catch-up being made"
        assistant.gate.set()
        opener.join(10)
        assert opened and opened[0].thread["summary"] == "summary of 1"
        assert (assistant.count("catch_up"), assistant.count("draft_replies")) == (1, 1)
        assert session.preparer.stats.waited >= 1 and session.preparer.stats.missed == 0
        assert assistant.overlaps == 0
    finally:
        assistant.gate.set()
        session.close()


def test_the_model_is_never_used_by_two_tasks_at_once():
    assistant = CountingAssistant(delay_s=0.01)
    session = session_with(assistant)
    try:
        for i in range(12):  # messages to four chats while the wearer opens chats in between
            session.receive(msg(f"chat {i % 4}", f"friend {i % 4}", f"message {i}: are you coming at 7?", i))
            if i % 3 == 2:
                session.key("enter")
                session.key("esc")
        assert session.preparer.idle(20)
        assert assistant.overlaps == 0
    finally:
        session.close()


def test_a_muted_chat_is_not_prepared():
    assistant = CountingAssistant()
    session = session_with(assistant)
    session.policy.set_chat("Crew", Level.MUTE)
    try:
        session.receive(msg("Crew", "Priya", "Anyone at the wall tonight?"))
        assert session.preparer.idle(10)
        assert assistant.count("catch_up") == 0 and assistant.count("draft_replies") == 0
    finally:
        session.close()


def test_the_keys_follow_what_each_part_reads():
    thread = Thread("Mum", [msg("Mum", "Mum", "Dinner at 7?"), msg("Mum", "Mum", "Or 8?", 1)])
    summary, drafts = part_key(thread, Part.SUMMARY), part_key(thread, Part.DRAFTS)
    thread.mark_read()
    assert part_key(thread, Part.SUMMARY) != summary, "a read mark changes what the catch-up reads"
    assert part_key(thread, Part.DRAFTS) == drafts, "drafts read the chat, read or not"
    thread.messages[0] = msg("Mum", "Mum", "Dinner at 6?")
    assert part_key(thread, Part.DRAFTS) != drafts, "an edit makes the drafts stale"


def test_an_unexpected_error_does_not_stop_the_worker():
    class Flaky(CountingAssistant):
        def __init__(self):
            super().__init__()
            self.fails = 1

        def catch_up(self, thread):
            if self.fails:
                self.fails -= 1
                raise RuntimeError("a bug in one chat's catch-up")
            return super().catch_up(thread)

    assistant = Flaky()
    threads = {"Mum": Thread("Mum", [msg("Mum", "Mum", "Dinner at 7?")])}
    preparer = Preparer(assistant, threading.RLock(), lambda name: threads.get(name))
    try:
        preparer.request("Mum")
        assert preparer.idle(10) and preparer.stats.failed == 1
        preparer.request("Mum")
        assert preparer.idle(10)
        assert preparer.take(threads["Mum"], Part.SUMMARY).text == "summary of 1", "the worker still works"
    finally:
        preparer.close()


def test_a_failing_model_leaves_the_foreground_to_make_it_and_say_why():
    class Broken(CountingAssistant):
        def catch_up(self, thread):
            from device.engines.base import EngineError
            raise EngineError("the model file is corrupt")

    lock = threading.RLock()
    threads = {"Mum": Thread("Mum", [msg("Mum", "Mum", "Dinner at 7?")])}
    preparer = Preparer(Broken(), lock, lambda name: threads.get(name))
    try:
        preparer.request("Mum")
        assert preparer.idle(10)
        assert preparer.stats.failed == 1 and preparer.take(threads["Mum"], Part.SUMMARY) is None
    finally:
        preparer.close()


def test_with_the_real_assistant_the_shown_drafts_are_the_prepared_ones():
    engine = FakeEngine(lambda prompt, params: '{"agree": "Yes, 7 works for me.", "decline": "Sorry, not tonight.", '
                                               '"later": "Let me check and get back to you."}'
                        if params.json_schema else "Mum asks you whether dinner at 7 works.")
    session = GlassesSession(Assistant(engine, verbatim_words=0, check_acts=False), None, {}, now=lambda: T0,
                             prepare=True)
    try:
        session.receive(msg("Mum", "Mum", "Can you come to dinner at 7 tonight? Dad is cooking."))
        assert session.preparer.idle(10)
        before = len(engine.generations)
        screen = session.key("enter")
        assert len(engine.generations) == before, "no model call when the chat is opened"
        assert len(screen.chips) == 3 and screen.thread["summary"]
    finally:
        session.close()


def test_what_the_foreground_made_itself_is_not_made_again_in_the_background():
    assistant = CountingAssistant()
    lock = threading.RLock()
    threads = {"Mum": Thread("Mum", [msg("Mum", "Mum", "Dinner at 7?")])}
    preparer = Preparer(assistant, lock, lambda name: threads.get(name))
    try:
        with lock:  # the foreground holds the model: the worker queues behind it
            preparer.request("Mum")
            time.sleep(0.1)
            preparer.put(threads["Mum"], Part.SUMMARY, assistant.catch_up(threads["Mum"]))
            preparer.put(threads["Mum"], Part.DRAFTS, assistant.draft_replies(threads["Mum"]))
        assert preparer.idle(10)
        assert (assistant.count("catch_up"), assistant.count("draft_replies")) == (1, 1)
    finally:
        preparer.close()
