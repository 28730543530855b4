"""What reaches the glasses: per chat and per source allow / mute / priority, quiet hours, bursts folded into one
card.

`DeliveryPolicy` is the wearer's settings (kept sealed in the message store, like everything else: chat names are
private); `Delivery` applies them message by message, with the little it must remember between messages (each
chat's last card, what quiet hours held back). Both are pure: the clock is passed in, nothing is drawn or said here.

- allow (the default): a card with a sound for each new burst.
- mute: stored and left unread, but no card and no sound (the display's unread badge leaves muted chats out).
- priority: always a card, even in quiet hours, and it interrupts the thread view instead of a toast.
A rule may lapse at `until` ("mute for 2 hours"); a chat's rule beats its source's ("matrix" muted, "Mum" priority).

Quiet hours (local times; they may cross midnight): only priority chats make a card; the rest are held silently and
come back, once quiet hours are over, as ONE summary card ("5 messages in quiet hours from A, B and C").

Bursts: a message to a chat within `fold_window_s` of that chat's last card folds into it ("4 more from Climbing
crew") — no new card, no sound and no model call (the notification line is the slow part).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum
from typing import TYPE_CHECKING

from device.messages.store import StoreError

if TYPE_CHECKING:
    from device.messages.inbox import Message
    from device.messages.store import MessageStore

SETTING = "delivery"  # the store's meta row that holds the sealed policy
FORMAT = 1
DEFAULT_SOURCE = "feed"
# where messages come from: the JSONL replay, the Matrix connector (bridged WhatsApp/Signal/Telegram rooms), imports
SOURCES = ("feed", "matrix", "import")
FOLD_WINDOW_S = 120.0
NAMES_IN_SUMMARY = 3


class Level(StrEnum):
    ALLOW = "allow"
    MUTE = "mute"
    PRIORITY = "priority"


class Action(StrEnum):
    """What one arriving message gets."""

    CARD = "card"  # a new card, spoken
    FOLD = "fold"  # into its chat's card: the count grows, no sound, no model call
    HOLD = "hold"  # quiet hours: kept for the summary card
    SILENT = "silent"  # muted: stored and unread, nothing shown


class PolicyError(ValueError):
    """A setting that cannot be kept (an empty chat name, quiet hours of no length, a damaged stored policy)."""


@dataclass(frozen=True)
class Rule:
    level: Level
    until: datetime | None = None  # the rule lapses then (None: until changed)

    def active(self, now: datetime) -> bool:
        return self.until is None or now < self.until

    def to_json(self) -> dict:
        return {"level": self.level.value, "until": self.until.isoformat() if self.until else None}

    @classmethod
    def from_json(cls, data: dict) -> Rule:
        until = data.get("until")
        return cls(Level(data["level"]), datetime.fromisoformat(until) if until else None)


def parse_clock(text: str) -> time:
    """"22:00", "7:30", "07", "7am", "10:30 pm" → a time of day."""
    m = re.fullmatch(r"\s*(\d{1,2})(?:[:.h](\d{2}))?\s*([ap])?\.?\s*(?:m\.?)?\s*", text.lower())
    if not m:
        raise PolicyError(f"{text!r} is not a time of day: write 22:00, 7:30 or 10pm")
    hour, minute = int(m[1]), int(m[2] or 0)
    if m[3]:
        if not 1 <= hour <= 12:
            raise PolicyError(f"{text!r}: an am/pm hour is 1 to 12")
        hour = hour % 12 + (12 if m[3] == "p" else 0)
    if hour > 23 or minute > 59:
        raise PolicyError(f"{text!r} is not a time of day (hours 0-23, minutes 0-59)")
    return time(hour, minute)


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time  # exclusive; before `start` means the quiet hours cross midnight

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise PolicyError("quiet hours must start and end at different times")

    def covers(self, now: datetime) -> bool:
        """Compared with the clock's own wall time (the session's clock is the wearer's local time)."""
        t = now.time()
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def describe(self) -> str:
        return f"{self.start:%H:%M}–{self.end:%H:%M}"

    def to_json(self) -> dict:
        return {"start": f"{self.start:%H:%M}", "end": f"{self.end:%H:%M}"}

    @classmethod
    def from_json(cls, data: dict) -> QuietHours:
        return cls(parse_clock(data["start"]), parse_clock(data["end"]))


@dataclass
class DeliveryPolicy:
    chats: dict[str, Rule] = field(default_factory=dict)
    sources: dict[str, Rule] = field(default_factory=dict)
    quiet: QuietHours | None = None
    fold_window_s: float = FOLD_WINDOW_S

    # -- reading ------------------------------------------------------------------------------------------------
    def rule(self, chat: str, source: str, now: datetime) -> tuple[Rule | None, str]:
        """The rule in force for a chat and where it comes from: "chat", "source" or "default" (no rule)."""
        for rules, key, where in ((self.chats, chat, "chat"), (self.sources, source, "source")):
            rule = rules.get(key)
            if rule is not None and rule.active(now):
                return rule, where
        return None, "default"

    def level(self, chat: str, source: str, now: datetime) -> Level:
        rule, _ = self.rule(chat, source, now)
        return rule.level if rule else Level.ALLOW

    def quiet_now(self, now: datetime) -> bool:
        return self.quiet is not None and self.quiet.covers(now)

    # -- changing -----------------------------------------------------------------------------------------------
    def set_chat(self, chat: str, level: Level, until: datetime | None = None) -> None:
        if not chat.strip():
            raise PolicyError("a chat rule needs the chat's name")
        self.chats[chat] = Rule(Level(level), until)

    def set_source(self, source: str, level: Level, until: datetime | None = None) -> None:
        if not source.strip():
            raise PolicyError("a source rule needs the source's name")
        self.sources[source] = Rule(Level(level), until)

    def unmute(self, chat: str, source: str, now: datetime) -> None:
        """The chat back to normal: its own rule goes, and where its source still mutes it, an explicit allow
        (the wearer asked to hear this chat)."""
        self.chats.pop(chat, None)
        if self.level(chat, source, now) is Level.MUTE:
            self.chats[chat] = Rule(Level.ALLOW)

    def prune(self, now: datetime) -> bool:
        """Drop the rules that have lapsed; True if any went."""
        before = len(self.chats) + len(self.sources)
        self.chats = {k: r for k, r in self.chats.items() if r.active(now)}
        self.sources = {k: r for k, r in self.sources.items() if r.active(now)}
        return len(self.chats) + len(self.sources) != before

    # -- keeping ------------------------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"format": FORMAT, "chats": {k: r.to_json() for k, r in self.chats.items()},
                "sources": {k: r.to_json() for k, r in self.sources.items()},
                "quiet": self.quiet.to_json() if self.quiet else None, "fold_window_s": self.fold_window_s}

    @classmethod
    def from_json(cls, data: dict) -> DeliveryPolicy:
        if data.get("format") != FORMAT:
            raise PolicyError(f"delivery settings of format {data.get('format')!r}; this glassmate reads {FORMAT}")
        return cls({k: Rule.from_json(r) for k, r in data["chats"].items()},
                   {k: Rule.from_json(r) for k, r in data["sources"].items()},
                   QuietHours.from_json(data["quiet"]) if data.get("quiet") else None,
                   float(data.get("fold_window_s", FOLD_WINDOW_S)))

    @classmethod
    def load(cls, store: MessageStore) -> DeliveryPolicy:
        """The wearer's settings from the store (the defaults when none were saved); a StoreError when they
        cannot be read, like any damaged row of the store."""
        raw = store.setting(SETTING)
        if raw is None:
            return cls()
        try:
            return cls.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreError(f"the delivery settings in {store.path} cannot be read ({exc}); set them again with "
                              f"`glassmate chats`") from exc

    def save(self, store: MessageStore) -> None:
        store.save_setting(SETTING, json.dumps(self.to_json(), ensure_ascii=False))


# -- applying it, message by message --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    action: Action
    level: Level
    more: int = 0  # FOLD: messages folded into the chat's card so far


@dataclass
class _Card:
    at: datetime
    note: str  # the card's notification line (folded messages get none of their own)
    more: int = 0


@dataclass(frozen=True)
class HeldSummary:
    """What quiet hours held back, as one card."""

    count: int
    chats: tuple[str, ...]  # most recent first
    latest: Message

    @property
    def text(self) -> str:
        names = list(self.chats[:NAMES_IN_SUMMARY])
        others = len(self.chats) - len(names)
        if others:
            names.append(f"{others} other chat" + ("s" if others > 1 else ""))
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return f"{self.count} message{'s' if self.count != 1 else ''} in quiet hours from {listed}"


class Delivery:
    """The policy applied to arriving messages; remembers each chat's last card and what quiet hours held."""

    def __init__(self, policy: DeliveryPolicy, now: Callable[[], datetime]):
        self.policy = policy
        self.now = now
        self.cards: dict[str, _Card] = {}
        self.held: list[Message] = []

    def decide(self, message: Message, source: str, caught_up: bool = False) -> Decision:
        """`caught_up`: the wearer has seen the chat since its last card (opened it, replied), so this message
        starts a new card instead of folding into the old one."""
        now = self.now()
        level = self.policy.level(message.thread, source, now)
        if level is Level.MUTE:
            return Decision(Action.SILENT, level)
        if level is not Level.PRIORITY and self.policy.quiet_now(now):
            self.held.append(message)
            return Decision(Action.HOLD, level)
        if caught_up:
            self.cards.pop(message.thread, None)
        card = self.cards.get(message.thread)
        if card is not None and (now - card.at).total_seconds() < self.policy.fold_window_s:
            card.more += 1
            return Decision(Action.FOLD, level, card.more)
        return Decision(Action.CARD, level)

    def card_shown(self, thread: str, note: str) -> None:
        self.cards[thread] = _Card(self.now(), note)

    def fold_text(self, thread: str) -> str:
        card = self.cards[thread]
        return f"{card.more} more from {thread} · {card.note}"

    def take_summary(self, still_unread: Callable[[Message], bool] | None = None) -> HeldSummary | None:
        """Once quiet hours are over: what they held (and the wearer has not read since), as one summary, given
        once; None during quiet hours or when nothing is waiting."""
        if not self.held or self.policy.quiet_now(self.now()):
            return None
        held, self.held = self.held, []
        if still_unread is not None:
            held = [m for m in held if still_unread(m)]
        if not held:
            return None
        chats = tuple(dict.fromkeys(m.thread for m in reversed(held)))
        return HeldSummary(len(held), chats, held[-1])
