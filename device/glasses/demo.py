"""The demo loop: replay an inbox through the assistant as the glasses would meet it, burst by burst.

Each burst of arriving messages is stored, then the glasses show a notification for its last message, a catch-up
of the thread's unread messages and three reply drafts; what was shown is kept (sealed) in the store, and only
latency numbers leave the device, through the egress gate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from device.assistant.core import Assistant, Result
from device.messages.inbox import Message, replay
from device.messages.store import MessageStore
from device.privacy.egress import EgressGate


@dataclass(frozen=True)
class Card:
    """What the glasses showed for one burst."""

    thread: str
    new_messages: int
    notification: Result
    catch_up: Result
    replies: Result
    telemetry_sent: int  # latency reports the egress gate let through for this burst

    def to_json(self) -> dict:
        return {"thread": self.thread, "new_messages": self.new_messages,
                "notification": self.notification.to_json(), "catch_up": self.catch_up.to_json(),
                "replies": self.replies.to_json()}


def latency_report(result: Result) -> dict[str, float]:
    """The only thing about a task that leaves the device: numbers, no text."""
    return {"ttft_s": result.ttft_s, "total_s": result.total_s, "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens}


def replay_inbox(assistant: Assistant, messages: list[Message], store: MessageStore, gate: EgressGate,
                 realtime: bool = False, on_step: Callable[[str], None] = lambda step: None) -> Iterator[Card]:
    """Yield one Card per arriving burst; `on_step` hears what is being worked on (for a spinner)."""
    for burst in replay(messages, realtime=realtime):
        store.add(burst)
        thread = store.thread(burst[-1].thread)
        on_step(f"{thread.name}: notification…")
        note = assistant.notify(burst[-1])
        on_step(f"{thread.name}: catch-up of {len(thread.unread)} unread…")
        summary = assistant.catch_up(thread)
        on_step(f"{thread.name}: reply drafts…")
        replies = assistant.draft_replies(thread)
        store.mark_read(thread.name)
        now = datetime.now(UTC)
        store.save_derived(thread.name, "notification", note.text, now)
        store.save_derived(thread.name, "summary", summary.text, now)
        for draft in replies.replies:
            store.save_derived(thread.name, "draft", draft, now)
        sent = sum(gate.send("metrics", latency_report(r), "telemetry").allowed for r in (note, summary, replies))
        yield Card(thread.name, len(burst), note, summary, replies, sent)
