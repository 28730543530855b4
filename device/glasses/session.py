"""What the wearer experiences: messages arriving, the temple touchpad, voice commands — one state machine that the
HUD draws and the voice loop speaks.

Views: idle → card (a new message: sender + one-line summary) → thread (catch-up summary, three reply chips)
→ confirm (the reply read back, "send or cancel?") → sent. A dictated reply goes straight to confirm. A question
about the messages ("which bus did Tomasz say?") → answer (the answer, spoken, with the messages it comes from).

Never auto-send: a reply leaves only from the confirm view, after it was shown and read back, on an explicit
"send" (voice, matched by the rules — a guess of the LLM fallback is not a confirmation) or a tap on the confirm
prompt; it leaves through the egress gate, which itself refuses a reply the wearer did not confirm. Cancel works in
every view.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from device.engines.base import EngineError
from device.glasses.commands import Command, ContactBook, understand
from device.glasses.feedback import Feedback, Outcome
from device.glasses.prepare import Part, Preparer, Serialized, serialized
from device.messages.delivery import (
    DEFAULT_SOURCE,
    Action,
    Delivery,
    DeliveryPolicy,
    HeldSummary,
    Level,
    PolicyError,
    QuietHours,
    parse_clock,
)
from device.messages.inbox import WEARER, Message, Thread
from device.messages.store import StoreError
from device.privacy.egress import EgressGate

CHIPS = 3
log = logging.getLogger(__name__)


@dataclass
class _ShownDrafts:
    """The drafts on the display, what they answered, and which one the wearer took to the confirm view."""

    thread: str
    chips: tuple[str, ...]
    context_upto: str
    chosen: int | None = None


@dataclass
class Screen:
    """Everything the HUD draws (and `say`, what the speaker says), as plain JSON."""

    view: str = "idle"  # idle | card | thread | confirm | sent | answer
    card: dict | None = None  # {thread, sender, summary, ts}
    thread: dict | None = None  # {name, summary, messages: [{sender, text, ts}]}
    chips: list[str] = field(default_factory=list)
    chip: int = 0  # the highlighted chip
    dictation: str | None = None  # words heard so far (live while the wearer speaks)
    confirm: dict | None = None  # {thread, text}
    answer: dict | None = None  # {question, text, abstained, cited: [{thread, sender, text, ts}]}
    toast: str | None = None  # a one-line notice: "Sent to Mum", "Alice Chen or Alice Park?"
    say: str | None = None  # what the speaker says for this change (None: nothing)
    busy: str | None = None  # "summarizing…", "drafting replies…"
    unread: int = 0
    connection: str | None = None  # a message source's state when it is not simply working: "Matrix: reconnecting…"
    seq: int = 0

    def to_json(self) -> dict:
        return asdict(self)


class GlassesSession:
    def __init__(self, assistant, gate: EgressGate, threads: dict[str, Thread] | None = None,
                 aliases: dict[str, str] | None = None, complete=None,
                 on_message: Callable[[Message], None] | None = None, now: Callable[[], datetime] | None = None,
                 asker: Callable[[str], Any] | None = None, policy: DeliveryPolicy | None = None,
                 source_of: Callable[[Message], str] | None = None,
                 save_policy: Callable[[DeliveryPolicy], None] | None = None, prepare: bool = False):
        # one model, one task at a time: the foreground and the preparer's worker take turns on this lock
        self._model_lock = threading.RLock()
        self.assistant = Serialized(assistant, self._model_lock)
        self.gate = gate
        self.threads: dict[str, Thread] = threads if threads is not None else {}
        self.book = ContactBook.from_threads(self.threads, aliases)
        self.complete = serialized(complete, self._model_lock)  # the LLM fallback for free phrasing (None: rules)
        self.on_message = on_message  # every message in or out (the CLI stores them, encrypted)
        self.on_read: Callable[[str], None] | None = None  # a thread read to its end (the store keeps the mark)
        # what the wearer did with each set of drafts (the CLI seals it in the store: `feedback.py`)
        self.on_feedback: Callable[[Feedback], None] | None = None
        self._drafts: _ShownDrafts | None = None
        self.last_active = time.monotonic()  # the display last changed (the idle learner waits for quiet)
        self.now = now or (lambda: datetime.now().astimezone())
        # question → device.ask.answer.Asked over the wearer's indexed messages (None: not offered); it may share the
        # engine, so it takes its turn on the model too
        self.asker = serialized(asker, self._model_lock)
        # what reaches the display (mute / priority / quiet hours / bursts folded); voice changes are kept through
        # `save_policy` (the CLI: sealed in the wearer's store)
        self.policy = policy if policy is not None else DeliveryPolicy()
        self.delivery = Delivery(self.policy, lambda: self.now())  # follows a clock swapped in later
        self.source_of = source_of or (lambda message: DEFAULT_SOURCE)
        self.save_policy = save_policy
        self._sources: dict[str, str] = {}  # thread -> the source its messages come from
        self.screen = Screen()
        self.sent: list[tuple[str, str]] = []
        self._pending_question: Command | None = None
        self._lock = threading.RLock()
        self._listeners: list[Callable[[Screen], None]] = []
        # where a confirmed reply to a thread goes (the egress destination): the phone bridge unless a connector
        # (Matrix) owns the thread
        self.reply_destination: Callable[[str], str] = lambda thread: "phone-bridge"
        # a chat with a card gets its catch-up and drafts made in the background (`prepare.py`)
        self.preparer = Preparer(assistant, self._model_lock, self._snapshot) if prepare else None

    def close(self) -> None:
        if self.preparer is not None:
            self.preparer.close()

    def _snapshot(self, name: str) -> Thread | None:
        # no session lock: list() and the int are read atomically, and the preparer's worker calls this while the
        # foreground may hold the session's lock waiting for that worker
        thread = self.threads.get(name)
        return None if thread is None else Thread(thread.name, list(thread.messages), thread.read_upto)

    def _prepare(self, name: str) -> None:
        if self.preparer is not None:
            self.preparer.request(name)

    # -- observers -------------------------------------------------------------------------------------------
    def subscribe(self, listener: Callable[[Screen], None]) -> None:
        self._listeners.append(listener)

    def _show(self, **changes) -> Screen:
        base = {"toast": None, "say": None, "busy": None}
        self.screen = Screen(**(asdict(self.screen) | base | changes))
        self.screen.unread = sum(len(t.unread) for n, t in self.threads.items() if not self._is_muted(n))
        self.screen.seq += 1
        self.last_active = time.monotonic()
        for listener in list(self._listeners):
            listener(self.screen)
        return self.screen

    def _busy(self, what: str) -> None:
        self._show(busy=what)

    # -- messages arriving -----------------------------------------------------------------------------------
    def receive(self, message: Message, notify: bool = True) -> Screen:
        with self._lock:
            thread = self.threads.setdefault(message.thread, Thread(message.thread))
            thread.add(message)
            if self.on_message:
                self.on_message(message)
            self.book.note_sender(message.sender, message.thread)
            if message.from_wearer or not notify:
                return self._show()
            source = self._sources[message.thread] = self.source_of(message)
            # a chat the wearer has seen since its last card (opened, replied to) starts a new card, never folds
            decision = self.delivery.decide(message, source, caught_up=len(thread.unread) == 1)
            if decision.action in (Action.SILENT, Action.HOLD):
                return self._show()
            s = self.screen
            if s.view in ("confirm", "thread") and s.thread:
                # do not yank the wearer's view; a priority chat does interrupt reading another chat, but never a
                # reply being confirmed (it would be lost)
                interrupts = decision.level is Level.PRIORITY and s.view == "thread" and \
                    s.thread["name"] != message.thread
                if not interrupts:
                    self._prepare(message.thread)
                    return self._show(toast=f"New message from {message.sender}")
            held = self.delivery.take_summary(self._still_unread)
            card = {"thread": message.thread, "sender": message.sender, "ts": message.ts.isoformat()}
            if decision.action is Action.FOLD and held is None:  # no model call, no sound: the card's count grows
                self._prepare(message.thread)
                return self._show(view="card", card=card | {"summary": self.delivery.fold_text(message.thread)},
                                  thread=None, chips=[], confirm=None, dictation=None)
            note = self.assistant.notify(message)  # the card first; then its chat is prepared behind it
            self.delivery.card_shown(message.thread, note.text)
            self._prepare(message.thread)
            if held is not None:  # quiet hours are over: what they held comes first, in the same card
                return self._show(view="card", card=card | {"summary": f"{held.text}; now {message.sender}: "
                                                                       f"{note.text}"},
                                  thread=None, chips=[], confirm=None, dictation=None,
                                  say=f"{held.text}. Now {message.sender}: {note.text}")
            return self._show(view="card", card=card | {"summary": note.text}, thread=None, chips=[], confirm=None,
                              dictation=None, say=f"{message.sender}: {note.text}")

    def _is_muted(self, thread: str) -> bool:
        return self.policy.level(thread, self._source_of_thread(thread), self.now()) is Level.MUTE

    def _source_of_thread(self, name: str) -> str:
        if name not in self._sources:
            thread = self.threads.get(name)
            theirs = [m for m in thread.messages if not m.from_wearer] if thread else []
            if not theirs:
                return DEFAULT_SOURCE
            self._sources[name] = self.source_of(theirs[-1])
        return self._sources[name]

    def _still_unread(self, message: Message) -> bool:
        thread = self.threads.get(message.thread)
        return thread is not None and message in thread.unread

    def _summary_card(self, held: HeldSummary) -> Screen:
        last = held.latest
        card = {"thread": last.thread, "sender": last.sender, "summary": held.text, "ts": last.ts.isoformat()}
        return self._show(view="card", card=card, thread=None, chips=[], confirm=None, say=f"{held.text}.")

    def set_connection(self, state: str | None) -> Screen:
        """A message source's state on the display (None: working, nothing to say)."""
        with self._lock:
            if state == self.screen.connection:
                return self.screen
            return self._show(connection=state, toast=self.screen.toast)  # a notice on screen stays

    def replace_message(self, old: Message, new: Message) -> Screen:
        """An edited message: the new text takes the old one's place (and what was derived from it is redone)."""
        with self._lock:
            thread = self.threads.get(old.thread)
            if thread is None or old not in thread.messages:
                return self.screen
            thread.messages[thread.messages.index(old)] = new
            return self._refresh_thread(thread.name)

    def remove_message(self, message: Message) -> Screen:
        """A deleted message: gone from the thread, the card and the thread view."""
        with self._lock:
            thread = self.threads.get(message.thread)
            if thread is None or message not in thread.messages:
                return self.screen
            at = thread.messages.index(message)
            del thread.messages[at]
            if at < thread.read_upto:
                thread.read_upto -= 1
            card = self.screen.card
            if card and card["thread"] == message.thread and card["ts"] == message.ts.isoformat() \
                    and card["sender"] == message.sender:
                return self._show(view="idle" if self.screen.view == "card" else self.screen.view, card=None)
            return self._refresh_thread(thread.name)

    def _mark_read(self, thread: Thread) -> None:
        thread.mark_read()
        if self.on_read:
            self.on_read(thread.name)

    def _refresh_thread(self, name: str) -> Screen:
        if self.screen.thread and self.screen.thread["name"] == name:
            return self._show(thread=self._thread_view(self.threads[name], None))
        return self._show()

    # -- the touchpad ----------------------------------------------------------------------------------------
    def key(self, name: str) -> Screen:
        """`left`/`right` (swipe), `enter` (tap), `esc` (back)."""
        with self._lock:
            view = self.screen.view
            if name == "esc":
                return self.do(Command("cancel"))
            if name in ("left", "right"):
                if view == "thread" and self.screen.chips:
                    step = 1 if name == "right" else -1
                    return self._show(chip=(self.screen.chip + step) % len(self.screen.chips))
                if name == "right":
                    return self.do(Command("next"))
                return self._show()
            if name != "enter":
                raise ValueError(f"unknown key {name!r}: left, right, enter, esc")
            if view == "confirm":
                return self._send(tapped=True)
            if view == "thread" and self.screen.chips:
                return self.do(Command("choose_reply", {"index": self.screen.chip + 1}))
            if view == "answer" and self.screen.answer and self.screen.answer["cited"]:
                source = self.screen.answer["cited"][0]["thread"]  # tap: the chat the answer comes from
                if source in self.threads:
                    return self._open(source, with_chips=True)
            if view in ("card", "idle", "sent"):
                name_ = self.screen.card["thread"] if view == "card" and self.screen.card else self._newest_unread()
                if name_ is None:
                    return self._show(toast="No new messages")
                return self._open(name_, with_chips=True)
            return self._show()

    # -- voice -----------------------------------------------------------------------------------------------
    def show_dictation(self, words: str) -> Screen:
        """What the microphone heard, on the display before it is acted on (the dictation preview)."""
        with self._lock:
            return self._show(dictation=words)

    def hear(self, utterance: str) -> Screen:
        with self._lock:
            if self._pending_question is not None:
                answered = self._answer_question(utterance)
                if answered is not None:
                    return self.do(answered)
            return self.do(understand(utterance, self.book, self.complete))

    def _answer_question(self, utterance: str) -> Command | None:
        """"Alice Chen or Alice Park?" — "Chen" / "Alice Park" / "the second" settles it."""
        cmd, self._pending_question = self._pending_question, None
        assert cmd is not None
        slot = next(k for k, v in cmd.slots.items() if isinstance(v, str) and "|" in v)
        options = sorted(cmd.slots[slot].split("|"))
        picked = None
        order = {"first": 0, "one": 0, "second": 1, "two": 1, "third": 2, "three": 2, "last": len(options) - 1}
        for word in utterance.lower().split():
            if word in order and order[word] < len(options):
                picked = options[order[word]]
        if picked is None:
            res = ContactBook(options, []).resolve(utterance)
            if len(res.matches) == 1:
                picked = res.matches[0]
        if picked is None:
            return None
        return Command(cmd.intent, cmd.slots | {slot: picked}, source=cmd.source, utterance=cmd.utterance)

    def do(self, cmd: Command) -> Screen:
        """Carry out one command (from the rules, the LLM fallback or a key)."""
        with self._lock:
            if cmd.clarify:
                self._pending_question = cmd
                return self._show(toast=cmd.clarify, say=cmd.clarify)
            handler = getattr(self, f"_do_{cmd.intent}", None)
            if handler is None:
                return self._show(toast="Sorry, I didn't get that.", say="Sorry, I didn't get that.")
            return handler(cmd)

    def _do_read(self, cmd: Command) -> Screen:
        target = cmd.slots.get("target")
        name = self.book.thread_of(target) if target else self._current() or self._newest_unread()
        if name is None or name not in self.threads:
            return self._show(toast="No new messages", say="No new messages.")
        thread = self.threads[name]
        todo = [m for m in (thread.unread or thread.messages[-3:]) if target is None or target == name
                or m.sender == target] or thread.messages[-1:]
        spoken = " ".join(f"{m.sender}: {m.text}" for m in todo if not m.from_wearer)
        self._mark_read(thread)
        return self._show(view="thread", thread=self._thread_view(thread, None), chips=[], confirm=None,
                          say=spoken or "Nothing new.")

    def _do_catch_up(self, cmd: Command) -> Screen:
        name = cmd.slots.get("thread") or self._current() or self._newest_unread()
        if name is None or name not in self.threads:
            return self._show(toast="Nothing to catch up on", say="Nothing to catch up on.")
        return self._open(name, with_chips=False)

    def _do_reply(self, cmd: Command) -> Screen:
        to = cmd.slots.get("to")
        name = self.book.thread_of(to) if to else self._current()
        if name is None or name not in self.threads:
            return self._show(toast="Reply to whom?", say="Who should I reply to?")
        text = cmd.slots.get("text")
        if not text:
            return self._open(name, with_chips=True, summarize=False)
        if self._drafts is not None and self._drafts.thread == name:
            self._drafts.chosen = None  # the wearer's own words, not a draft
        return self._ask_confirm(name, _sentence(text))

    def _do_choose_reply(self, cmd: Command) -> Screen:
        chips = self.screen.chips
        index = int(cmd.slots.get("index", 1)) - 1
        if not chips or not self.screen.thread:
            return self._show(toast="No reply suggestions on screen", say="There are no suggestions to choose.")
        if not 0 <= index < len(chips):
            return self._show(toast=f"Choose 1 to {len(chips)}")
        if self._drafts is not None and self._drafts.thread == self.screen.thread["name"]:
            self._drafts.chosen = index
        return self._ask_confirm(self.screen.thread["name"], chips[index])

    def _do_edit(self, cmd: Command) -> Screen:
        """The reply waiting for confirmation, changed by voice; it is read back again before it can be sent."""
        text = (cmd.slots.get("text") or "").strip()
        if self.screen.view != "confirm" or not self.screen.confirm:
            return self._show(toast="Nothing to change", say="There's no reply to change.")
        if not text:
            return self._show(toast="Change it to what?", say="What should it say?")
        return self._ask_confirm(self.screen.confirm["thread"], _sentence(text))

    def _do_send(self, cmd: Command) -> Screen:
        if cmd.source != "rules":  # an LLM's reading of free phrasing never confirms a send
            if self.screen.view == "confirm":
                return self._show(toast="Say “send” to send it", say="Say send to send it, or cancel.")
            return self._show()
        return self._send(tapped=False)

    def _do_cancel(self, cmd: Command) -> Screen:
        self._pending_question = None
        if self.screen.view == "confirm" and self.screen.thread:
            return self._show(view="thread", confirm=None, dictation=None, toast="Not sent", say="Cancelled.")
        self._settle_drafts(None)
        return self._show(view="idle", card=None, thread=None, chips=[], chip=0, confirm=None, dictation=None,
                          toast="Cancelled" if self.screen.view != "idle" else None)

    def _do_next(self, cmd: Command) -> Screen:
        self._settle_drafts(None)
        current = self._current()
        if current and current in self.threads:
            self._mark_read(self.threads[current])
        held = self.delivery.take_summary(self._still_unread)
        if held is not None:  # quiet hours are over: what they held, as one card, before the rest
            return self._summary_card(held)
        name = self._newest_unread()
        if name is None:
            return self._show(view="idle", card=None, thread=None, chips=[], confirm=None, toast="All caught up",
                              say="You're all caught up.")
        last = self.threads[name].unread[-1]
        note = self.assistant.notify(last)
        card = {"thread": name, "sender": last.sender, "summary": note.text, "ts": last.ts.isoformat()}
        return self._show(view="card", card=card, thread=None, chips=[], confirm=None,
                          say=f"{last.sender}: {note.text}")

    def _do_ask(self, cmd: Command) -> Screen:
        question = cmd.slots.get("question") or cmd.utterance
        if self.asker is None:
            return self._show(toast="Questions about your messages need the ask extra",
                              say="I can't search your messages here.")
        self._busy("looking in your messages…")
        try:
            asked = self.asker(question)
        except (EngineError, ValueError, OSError) as exc:  # the display must not stay on "looking…"
            return self._show(toast=f"Couldn't search your messages: {exc}", say="Sorry, I couldn't search your "
                              "messages.")
        cited = [{"thread": m.thread, "sender": m.sender, "text": m.text, "ts": m.ts.isoformat()}
                 for m in asked.cited]
        spoken = asked.answer.spoken or asked.answer.answer
        return self._show(view="answer", card=None, thread=None, chips=[], confirm=None, dictation=None,
                          answer={"question": question, "text": spoken, "abstained": asked.answer.abstained,
                                  "cited": cited}, say=spoken)

    def _do_mute(self, cmd: Command) -> Screen:
        name = cmd.slots.get("thread") or self._current()
        if name is None:
            return self._show(toast="Mute which chat?", say="Which chat should I mute?")
        minutes = cmd.slots.get("minutes")
        self.policy.set_chat(name, Level.MUTE, self.now() + timedelta(minutes=int(minutes)) if minutes else None)
        how = f"for {_duration(int(minutes))}" if minutes else "until you unmute it"
        kept = self._keep_policy()
        return self._show(view="idle", card=None, thread=None, chips=[], confirm=None,
                          toast=f"Muted {name} {how}{kept}", say=f"Muted {name} {how}.")

    def _do_unmute(self, cmd: Command) -> Screen:
        name = self._named_chat(cmd)
        if name is None:
            return self._unknown_chat(cmd, "Unmute which chat?")
        self.policy.unmute(name, self._source_of_thread(name), self.now())
        return self._show(toast=f"Unmuted {name}{self._keep_policy()}", say=f"{name} is unmuted.")

    def _do_priority(self, cmd: Command) -> Screen:
        name = self._named_chat(cmd)
        if name is None:
            return self._unknown_chat(cmd, "Which chat should always get through?")
        minutes = cmd.slots.get("minutes")
        self.policy.set_chat(name, Level.PRIORITY, self.now() + timedelta(minutes=int(minutes)) if minutes else None)
        how = f" for {_duration(int(minutes))}" if minutes else ""
        return self._show(toast=f"{name} always gets through{how}{self._keep_policy()}",
                          say=f"{name} will always get through{how}, even in quiet hours.")

    def _do_quiet_hours(self, cmd: Command) -> Screen:
        start, end = cmd.slots.get("start"), cmd.slots.get("end")
        if not (start and end):
            if self.policy.quiet is not None:
                hours = self.policy.quiet.describe()
                return self._show(toast=f"Quiet hours {hours}", say=f"Quiet hours are {hours}.")
            return self._show(toast="Quiet hours from when to when?",
                              say="Say, for example: quiet hours from 10 pm to 7 am.")
        try:
            self.policy.quiet = QuietHours(parse_clock(start), parse_clock(end))
        except PolicyError as exc:
            return self._show(toast=str(exc), say="Quiet hours need a start and a different end.")
        hours = self.policy.quiet.describe()
        return self._show(toast=f"Quiet hours {hours}{self._keep_policy()}",
                          say=f"Quiet hours from {start} to {end}: only priority chats get through.")

    def _do_quiet_hours_off(self, cmd: Command) -> Screen:
        self.policy.quiet = None
        return self._show(toast=f"Quiet hours off{self._keep_policy()}", say="Quiet hours are off.")

    def _named_chat(self, cmd: Command) -> str | None:
        """The chat a rule is for: the one named, else the one on screen — but not when a name was said that
        matches no chat (the chat on screen is not what the wearer meant)."""
        if cmd.slots.get("unknown"):
            return None
        return cmd.slots.get("thread") or self._current()

    def _unknown_chat(self, cmd: Command, question: str) -> Screen:
        if cmd.slots.get("unknown"):
            said = cmd.slots["unknown"]
            return self._show(toast=f"No chat called “{said}”", say=f"I don't know a chat called {said}.")
        return self._show(toast=question, say=question)

    def _keep_policy(self) -> str:
        """Save the changed policy; what to add to the toast when it could not be kept."""
        self.policy.prune(self.now())
        if self.save_policy is None:
            return ""
        try:
            self.save_policy(self.policy)
        except (StoreError, OSError) as exc:  # the rule holds for this session; the wearer learns it is not kept
            return f" (not saved: {exc})"
        return ""

    # -- helpers ---------------------------------------------------------------------------------------------
    def _current(self) -> str | None:
        s = self.screen
        if s.confirm:
            return s.confirm["thread"]
        if s.thread:
            return s.thread["name"]
        if s.card:
            return s.card["thread"]
        return None

    def _newest_unread(self) -> str | None:
        waiting = [(t.unread[-1].ts, n) for n, t in self.threads.items() if t.unread and not self._is_muted(n)]
        return max(waiting)[1] if waiting else None

    def _thread_view(self, thread: Thread, summary: str | None) -> dict:
        return {"name": thread.name, "summary": summary,
                "messages": [{"sender": m.sender, "text": m.text, "ts": m.ts.isoformat()}
                             for m in thread.messages[-6:]]}

    def _open(self, name: str, with_chips: bool, summarize: bool = True) -> Screen:
        thread = self.threads[name]
        summary = None
        if summarize:
            if not self._ready(thread, Part.SUMMARY):
                self._show(view="thread", thread=self._thread_view(thread, None), card=None, chips=[], confirm=None,
                           busy="summarizing…")
            summary = (self._take(thread, Part.SUMMARY) or self._make(thread, Part.SUMMARY)).text
        chips: list[str] = []
        if with_chips:
            if not self._ready(thread, Part.DRAFTS):
                self._show(view="thread", thread=self._thread_view(thread, summary), card=None, chips=[],
                           confirm=None, busy="drafting replies…")
            chips = list((self._take(thread, Part.DRAFTS) or self._make(thread, Part.DRAFTS)).replies or [])
        self._settle_drafts(None)
        if chips:
            self._drafts = _ShownDrafts(name, tuple(chips), thread.messages[-1].ts.isoformat())
        self._mark_read(thread)
        say = summary or ""
        if chips:
            say += (" " if say else "") + "Replies: " + "; ".join(f"{i}, {c}" for i, c in enumerate(chips, 1))
        return self._show(view="thread", thread=self._thread_view(thread, summary), card=None, chips=chips, chip=0,
                          confirm=None, dictation=None, say=say or None)

    def _ready(self, thread: Thread, part: Part) -> bool:
        return self.preparer is not None and self.preparer.has(thread, part)

    def _take(self, thread: Thread, part: Part):
        return self.preparer.take(thread, part) if self.preparer is not None else None

    def _make(self, thread: Thread, part: Part):
        result = self.assistant.catch_up(thread) if part is Part.SUMMARY else self.assistant.draft_replies(thread)
        if self.preparer is not None:
            self.preparer.put(thread, part, result)
        return result

    def _ask_confirm(self, thread: str, text: str) -> Screen:
        view = self.screen.thread if self.screen.thread and self.screen.thread["name"] == thread else \
            self._thread_view(self.threads[thread], None)
        return self._show(view="confirm", thread=view, confirm={"thread": thread, "text": text}, dictation=None,
                          say=f"Send to {thread}: {text}? Say send, or cancel.")

    def _send(self, tapped: bool) -> Screen:
        s = self.screen
        if s.view != "confirm" or not s.confirm:
            return self._show(toast="Nothing to send", say="There's nothing to send.")
        thread, text = s.confirm["thread"], s.confirm["text"]
        self.gate.confirm_reply(thread, text)  # shown, read back, and now confirmed by the wearer
        decision = self.gate.send("outgoing-reply", {"thread": thread, "text": text}, self.reply_destination(thread))
        if not decision.allowed:
            return self._show(toast=f"Not sent: {decision.reason}", say="I could not send that.")
        self.sent.append((thread, text))
        message = Message(thread, WEARER, text, self.now())
        self._settle_drafts((thread, text))
        self.threads[thread].add(message)
        self._mark_read(self.threads[thread])
        if self.on_message:
            self.on_message(message)
        # a source that is down keeps the reply queued and sends it once it is back: say so, never "Sent"
        toast, say = (f"Sent to {thread}", f"Sent to {thread}.") if not s.connection else \
            (f"Will send to {thread} when the connection is back", f"I'll send it to {thread} when the connection "
                                                                  f"is back.")
        return self._show(view="sent", confirm=None, chips=[], toast=toast, say=say,
                          thread=self._thread_view(self.threads[thread], s.thread.get("summary") if s.thread else None))


    def _settle_drafts(self, sent: tuple[str, str] | None) -> None:
        """The drafts on the display are done with: `sent` (thread, text) was sent, or (None) they were left."""
        shown, self._drafts = self._drafts, None
        if shown is None:
            return
        index = text = None
        if sent is None:
            outcome = Outcome.DISMISSED
        elif sent[0] != shown.thread:
            outcome = Outcome.DISMISSED  # a reply to another chat leaves these drafts unanswered
        else:
            text, index = sent[1], shown.chosen
            outcome = Outcome.DICTATED if index is None else \
                Outcome.PICKED if text == shown.chips[index] else Outcome.EDITED
        if self.on_feedback is None:
            return
        try:
            self.on_feedback(Feedback(shown.thread, shown.chips, outcome, shown.context_upto,
                                      self.now().isoformat(), index, text))
        except (StoreError, OSError) as exc:  # the signal is worth less than the reply: never fail a send for it
            log.warning("could not record what happened to the drafts: %s", exc)


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[0].upper() + text[1:] if text else text
    return " ".join("I" + w[1:] if w == "i" or w.startswith("i'") else w for w in text.split(" "))


def _duration(minutes: int) -> str:
    if minutes % 1440 == 0:
        return f"{minutes // 1440} day" + ("s" if minutes > 1440 else "")
    if minutes % 60 == 0:
        return f"{minutes // 60} hour" + ("s" if minutes > 60 else "")
    return f"{minutes} minutes"
