"""Reading the project's JSONL evaluation sets: one object a line, each chat's messages in the feed format, and a
malformed line reported as `file:line: what is wrong`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from device.messages.inbox import FeedError, Message, parse_line


def rows(path: Path) -> Iterator[tuple[str, dict]]:
    """(`file:line`, object) for every non-blank line."""
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise FeedError(f"{where}: not JSON ({exc})") from None
        if not isinstance(row, dict):
            raise FeedError(f"{where}: expected a JSON object")
        yield where, row


def messages(row: dict, where: str) -> list[Message]:
    """The row's chat, each message checked as a feed line is."""
    out = [parse_line(json.dumps(m).encode(), where) for m in row.get("messages") or []]
    if not out or None in out:
        raise FeedError(f"{where}: a chat needs messages")
    return out  # type: ignore[return-value]
