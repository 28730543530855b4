"""A simulated wearer: one real IRC user's conversations as the store of their glasses.

Each of the user's annotated replies becomes a chat (the lines it answers, then the reply as the wearer's own
message, its addressing prefix dropped as a chat app would show it), timed by the log's date and minute, so
"the most recent sends" are the user's latest replies. Other people keep their nicks inside the store (it is
the wearer's own device); nothing from it is written to results.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from device.messages.inbox import WEARER
from device.messages.store import MessageStore
from lab.irc import ReplyPair, client_id, pair_messages, reply_pairs, strip_address


def users_by_replies(folder: Path, min_replies: int = 50) -> list[str]:
    """Users with at least `min_replies` annotated replies, most first (ties by name)."""
    counts: dict[str, int] = {}
    for p in reply_pairs(folder):
        counts[p.user.lower()] = counts.get(p.user.lower(), 0) + 1
    return sorted((u for u, n in counts.items() if n >= min_replies), key=lambda u: (-counts[u], u))


def _day(pair: ReplyPair) -> datetime:
    return datetime.strptime(pair.file[:10], "%Y-%m-%d").replace(tzinfo=UTC)


def fill_store(store: MessageStore, folder: Path, user: str, limit: int | None = None) -> int:
    """Write `user`'s replies (the most recent `limit`, all if None) with their context into `store`; returns
    how many replies. The chat names are the user's hashed id and a counter: no real nick names a chat."""
    pairs = sorted((p for p in reply_pairs(folder) if p.user.lower() == user.lower()),
                   key=lambda p: (_day(p), p.reply.minute, p.file, p.reply.index))
    if limit is not None:
        pairs = pairs[-limit:]
    cid = client_id(user)
    written = 0
    for i, pair in enumerate(pairs):
        text = strip_address(pair.reply.text).strip()
        if not text:
            continue
        thread = f"irc-{cid[:6]}-{i:04d}"
        shift = _day(pair) - datetime(2026, 1, 5, tzinfo=UTC)  # pair_messages times from a fixed day
        context = [replace(m, ts=m.ts + shift) for m in pair_messages(pair, thread)]
        reply_ts = _day(pair) + timedelta(minutes=pair.reply.minute)
        if context and reply_ts <= context[-1].ts:
            reply_ts = context[-1].ts + timedelta(seconds=30)
        store.add([*context, replace(context[-1], sender=WEARER, text=text, ts=reply_ts)] if context else [])
        written += 1
    return written
