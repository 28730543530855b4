"""Work done before it is asked for: when a card is shown, the chat's catch-up and reply drafts are made in the
background, so that opening the chat a few seconds later finds them ready instead of waiting for the model.

One worker thread, newest chat first. What it made is keyed by the messages it read: a message that arrives,
is edited or deleted, or a read mark that moves makes the key stale, and the chat is prepared again when asked.
The model is one engine with state (KV cache, adapter): every use of it, here and in the foreground, holds the
same lock, one task at a time, and the worker re-checks between tasks that its chat has not changed.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from device.assistant.core import AssistantError, Result
from device.engines.base import EngineError
from device.messages.inbox import Message, Thread

log = logging.getLogger(__name__)


class Part(StrEnum):
    SUMMARY = "summary"
    DRAFTS = "drafts"


def _digest(name: str, messages: list[Message]) -> str:
    h = hashlib.sha256(name.encode())
    for m in messages:
        h.update(b"\x00" + repr((m.sender, m.text, m.ts.isoformat())).encode())
    return h.hexdigest()


def part_key(thread: Thread, part: Part) -> str:
    """What a part depends on: the catch-up reads the unread messages, the drafts the whole recent chat."""
    return _digest(thread.name, thread.unread if part is Part.SUMMARY else thread.messages)


@dataclass(frozen=True)
class Prepared:
    key: str
    result: Result


@dataclass
class PrepareStats:
    """Counts only: how often a tap found its work done (read by tests and by whoever debugs a slow tap)."""

    requested: int = 0
    made: int = 0
    used: int = 0  # a part shown from what was prepared
    waited: int = 0  # a part the foreground waited for while the worker finished it
    missed: int = 0  # a part the foreground had to make itself
    failed: int = 0


class Preparer:
    """Makes catch-ups and drafts for chats the wearer is likely to open next, one at a time, newest first."""

    def __init__(self, assistant, model_lock: threading.RLock, snapshot: Callable[[str], Thread | None]):
        self.assistant = assistant
        self.model_lock = model_lock
        # a copy of the chat as it is now (None: gone); called from the worker, so it must not wait for the
        # session's lock (the foreground may hold it while it waits here for a part)
        self.snapshot = snapshot
        self.stats = PrepareStats()
        self._cond = threading.Condition()
        self._wanted: dict[str, None] = {}  # chats to prepare, the newest request last
        self._ready: dict[tuple[str, Part], Prepared] = {}
        self._working: tuple[str, Part, str] | None = None  # (chat, part, key) being made now
        self._stop = False
        self._worker = threading.Thread(target=self._run, name="prepare", daemon=True)
        self._worker.start()

    def request(self, name: str) -> None:
        with self._cond:
            self._wanted.pop(name, None)
            self._wanted[name] = None
            self.stats.requested += 1
            self._cond.notify_all()

    def take(self, thread: Thread, part: Part, wait_s: float = 60.0) -> Result | None:
        """The prepared part for the chat as it is now, waiting while the worker is making exactly that; None when
        nothing current is prepared (the caller makes it)."""
        key = part_key(thread, part)
        with self._cond:
            if self._working == (thread.name, part, key):
                self.stats.waited += 1
                self._cond.wait_for(lambda: self._working != (thread.name, part, key) or self._stop, wait_s)
            ready = self._ready.get((thread.name, part))
            if ready is not None and ready.key == key:
                self.stats.used += 1
                return ready.result
            self.stats.missed += 1
            return None

    def put(self, thread: Thread, part: Part, result: Result) -> None:
        """What the foreground made itself: the worker, about to make the same, finds it done."""
        with self._cond:
            self._ready[(thread.name, part)] = Prepared(part_key(thread, part), result)

    def has(self, thread: Thread, part: Part) -> bool:
        """Whether the part is prepared for the chat as it is now (no wait)."""
        with self._cond:
            ready = self._ready.get((thread.name, part))
            return ready is not None and ready.key == part_key(thread, part)

    def close(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._worker.join(timeout)

    def idle(self, timeout: float = 60.0) -> bool:
        """Wait until nothing is wanted or being made (for tests and the demo); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._wanted and self._working is None, timeout)

    # -- the worker ------------------------------------------------------------------------------------------
    def _next(self) -> str | None:
        with self._cond:
            self._cond.wait_for(lambda: self._wanted or self._stop)
            if self._stop:
                return None
            name = next(reversed(self._wanted))
            del self._wanted[name]
            return name

    def _run(self) -> None:
        while (name := self._next()) is not None:
            for part in Part:
                if not self._make(name, part):
                    break

    def _make(self, name: str, part: Part) -> bool:
        """Make one part of a chat; False when the chat changed or is gone (the rest is not worth making now)."""
        thread = self.snapshot(name)
        if thread is None or (part is Part.SUMMARY and not thread.unread):
            return thread is not None
        key = part_key(thread, part)
        with self._cond:
            ready = self._ready.get((name, part))
            if ready is not None and ready.key == key:
                return True
            self._working = (name, part, key)
        result: Result | None = None
        try:
            with self.model_lock:
                now = self.snapshot(name)  # the foreground may have held the model while the chat moved on
                if now is None or part_key(now, part) != key:
                    return False
                with self._cond:  # ... or made this very part itself
                    ready = self._ready.get((name, part))
                    if ready is not None and ready.key == key:
                        return True
                result = self.assistant.catch_up(thread) if part is Part.SUMMARY else \
                    self.assistant.draft_replies(thread)
        except Exception as exc:  # the worker outlives any one chat's failure; the foreground retries and says why
            log.warning("preparing %s for %s failed: %s", part, name, exc, exc_info=not isinstance(
                exc, AssistantError | EngineError))
            with self._cond:
                self.stats.failed += 1
            return False
        finally:
            with self._cond:  # the result is in place before a waiting tap wakes to look for it
                if result is not None:
                    self._ready[(name, part)] = Prepared(key, result)
                    self.stats.made += 1
                self._working = None
                self._cond.notify_all()
        return True


class Serialized:
    """The assistant as the foreground uses it: each call holds the model lock the worker holds too."""

    def __init__(self, assistant, model_lock: threading.RLock):
        self._assistant = assistant
        self._lock = model_lock

    def __getattr__(self, name: str):
        value = getattr(self._assistant, name)
        if not callable(value):
            return value

        def locked(*args, **kwargs):
            with self._lock:
                return value(*args, **kwargs)

        return locked


def serialized(fn: Callable | None, model_lock: threading.RLock) -> Callable | None:
    if fn is None:
        return None

    def locked(*args, **kwargs):
        with model_lock:
            return fn(*args, **kwargs)

    return locked
