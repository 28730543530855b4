"""Messages, threads and the JSONL feed they arrive on.

A feed is one JSON object per line: `{"thread": str, "sender": str, "text": str, "ts": ISO-8601 | epoch seconds}`.
Parsing is strict and says `file:line: what is wrong`; nothing in a bad feed is half-applied, because
`read_feed` validates the whole file before returning any message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

WEARER = "me"  # the sender name a feed uses for the wearer's own messages
MAX_LINE_BYTES = 1 << 20  # a single message over 1 MiB is not a chat message; refuse it clearly
REQUIRED = ("thread", "sender", "text", "ts")


class FeedError(ValueError):
    """A malformed feed; the message names the file and line."""


@dataclass(frozen=True)
class Message:
    thread: str
    sender: str
    text: str
    ts: datetime

    @property
    def from_wearer(self) -> bool:
        return self.sender == WEARER

    def to_json(self) -> dict:
        return {"thread": self.thread, "sender": self.sender, "text": self.text, "ts": self.ts.isoformat()}


@dataclass
class Thread:
    """One conversation; messages in time order, with the wearer's read position."""

    name: str
    messages: list[Message] = field(default_factory=list)
    read_upto: int = 0  # messages[:read_upto] have been seen by the wearer

    @property
    def unread(self) -> list[Message]:
        """Messages the wearer has not seen: after the read mark and after the wearer's own last message."""
        start = self.read_upto
        for i in range(len(self.messages) - 1, start - 1, -1):
            if self.messages[i].from_wearer:
                start = i + 1
                break
        return self.messages[start:]

    @property
    def participants(self) -> list[str]:
        seen: dict[str, None] = {}
        for m in self.messages:
            if not m.from_wearer:
                seen.setdefault(m.sender, None)
        return list(seen)

    @property
    def is_group(self) -> bool:
        return len(self.participants) > 1

    def add(self, message: Message) -> None:
        self.messages.append(message)

    def mark_read(self) -> None:
        self.read_upto = len(self.messages)


def parse_ts(value: object, where: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise FeedError(f"{where}: 'ts' must be an ISO-8601 string or epoch seconds, got {type(value).__name__}")
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise FeedError(f"{where}: 'ts' {value} is not a valid epoch time") from exc
    try:
        ts = datetime.fromisoformat(value)
    except ValueError as exc:
        raise FeedError(f"{where}: 'ts' {value!r} is not an ISO-8601 time") from exc
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def parse_line(raw: bytes, where: str) -> Message | None:
    """One feed line to a Message; None for a blank line."""
    if len(raw) > MAX_LINE_BYTES:
        raise FeedError(f"{where}: line is {len(raw)} bytes, over the {MAX_LINE_BYTES}-byte limit for one message")
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FeedError(f"{where}: not valid UTF-8 (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})") from exc
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise FeedError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(obj, dict):
        raise FeedError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in REQUIRED if k not in obj]
    if missing:
        raise FeedError(f"{where}: missing field(s) {', '.join(missing)}")
    for key in ("thread", "sender", "text"):
        if not isinstance(obj[key], str):
            raise FeedError(f"{where}: '{key}' must be a string, got {type(obj[key]).__name__}")
    for key in ("thread", "sender"):
        if not obj[key].strip():
            raise FeedError(f"{where}: '{key}' is empty")
    if "\x00" in obj["text"]:
        raise FeedError(f"{where}: 'text' contains a NUL character")
    return Message(obj["thread"].strip(), obj["sender"].strip(), obj["text"], parse_ts(obj["ts"], where))


def read_feed(path: Path | str) -> list[Message]:
    """Every message of a JSONL feed, validated; raises FeedError naming file:line on the first problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise FeedError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise FeedError(f"{path}: is a directory, expected a JSONL file") from exc
    messages = []
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        msg = parse_line(raw.rstrip(b"\r"), f"{path}:{lineno}")
        if msg is not None:
            messages.append(msg)
    if not messages:
        raise FeedError(f"{path}: the feed has no messages")
    return messages


def group_threads(messages: Iterable[Message]) -> dict[str, Thread]:
    threads: dict[str, Thread] = {}
    for m in messages:
        threads.setdefault(m.thread, Thread(m.thread)).add(m)
    for t in threads.values():
        t.messages.sort(key=lambda m: m.ts)
    return threads


def bursts(messages: list[Message]) -> Iterator[list[Message]]:
    """Consecutive runs of messages to the same thread: what arrives together and triggers one notification."""
    run: list[Message] = []
    for m in messages:
        if run and m.thread != run[-1].thread:
            yield run
            run = []
        run.append(m)
    if run:
        yield run


def replay(messages: list[Message], realtime: bool = False, speed: float = 1.0,
           max_gap_s: float = 3.0, sleep: Callable[[float], None] = time.sleep) -> Iterator[list[Message]]:
    """Yield bursts in feed order; with `realtime`, wait out the gaps between them (scaled, capped)."""
    previous: datetime | None = None
    for run in bursts(messages):
        if realtime and previous is not None:
            gap = (run[0].ts - previous).total_seconds() / max(speed, 1e-6)
            sleep(min(max(gap, 0.0), max_gap_s))
        previous = run[-1].ts
        yield run
