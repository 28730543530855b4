"""What the wearer did with each set of drafts: the signal personalization learns from, sealed in the store.

A set of drafts shown on the display ends one of four ways: a draft was sent as shown (picked), a draft was
changed before it was sent (edited: both texts kept), the wearer said their own reply instead (dictated), or
the drafts were left without a reply (dismissed). Each outcome is one sealed `derived` row of its thread, so
`privacy forget` and retention erase it with the thread's messages; counts are all that leaves this module's
callers for display (`glassmate learn status`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum

from device.messages.store import MessageStore, StoreError

KIND = "draft-feedback"


class Outcome(StrEnum):
    PICKED = "picked"
    EDITED = "edited"
    DICTATED = "dictated"
    DISMISSED = "dismissed"


@dataclass(frozen=True)
class Feedback:
    thread: str
    shown: tuple[str, ...]  # the drafts, in their order on the display
    outcome: Outcome
    context_upto: str  # ISO time of the chat's last message when the drafts were made: what they answered
    at: str  # ISO time of the outcome
    index: int | None = None  # the draft picked or edited (0-based)
    sent: str | None = None  # what was sent (picked: the draft; edited: the changed text; dictated: the words)

    def to_json(self) -> str:
        return json.dumps(asdict(self) | {"shown": list(self.shown)}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Feedback:
        raw = json.loads(text)
        return cls(**raw | {"shown": tuple(raw["shown"]), "outcome": Outcome(raw["outcome"])})


class FeedbackLog:
    """The wearer's draft outcomes in their encrypted store."""

    def __init__(self, store: MessageStore):
        self.store = store

    def record(self, feedback: Feedback) -> None:
        self.store.save_derived(feedback.thread, KIND, feedback.to_json(), datetime.fromisoformat(feedback.at))

    def all(self) -> list[Feedback]:
        try:
            return [Feedback.from_json(text) for text in self.store.derived_of_kind(KIND)]
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"a draft-feedback row in {self.store.path} is malformed ({exc}); nothing was "
                             f"changed") from exc

    def counts(self) -> dict[str, int]:
        """Outcomes by kind, and how many chats they come from: numbers only, never a text or a name."""
        items = self.all()
        by = Counter(f.outcome.value for f in items)
        return {o.value: by.get(o.value, 0) for o in Outcome} | {"total": len(items),
                                                                  "chats": len({f.thread for f in items})}
