"""Telegram Desktop's JSON export (one chat, or the full export)."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime, tzinfo
from pathlib import Path

from device.messages.exports.common import (
    ChatExport,
    Skip,
    check_wearer,
    clean_name,
    finish,
    read_text,
    zone,
)
from device.messages.inbox import WEARER, FeedError, Message

# -- Telegram Desktop -----------------------------------------------------------------------------------------------
# keys Telegram Desktop writes on a message that carries a file, a sticker, a place, a contact or a poll
_TG_MEDIA_KEYS = ("photo", "file", "media_type", "sticker_emoji", "location_information", "contact_information",
                  "poll", "game_title", "invoice_information", "live_location_period_seconds")
_TG_MESSAGES = re.compile(r'(?<!\\)"messages"\s*:\s*\[')


def _tg_line(text: str, chat_index: int, message_id: object) -> int | None:
    """The line of a message's `"id": N` in the file: the n-th `"messages": [` array opens chat n's messages, and
    ids are unique within a chat. None when it cannot be found (hand-edited or minified JSON)."""
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        return None
    starts = [m.end() for m in _TG_MESSAGES.finditer(text)]
    if chat_index >= len(starts):
        return None
    m = re.compile(rf'"id"\s*:\s*{message_id}\s*[,}}\n]').search(text, starts[chat_index])
    return text.count("\n", 0, m.start()) + 1 if m else None


def _encodable(text: str) -> bool:
    """JSON escapes can spell a lone surrogate, which no UTF-8 store can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _tg_text(value: object) -> str | None:
    """`text` is a string or a list of strings and entity objects ({"type": "bold", "text": "…"}); None if neither."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        return None
    parts = []
    for part in value:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append(part["text"])
        else:
            return None
    return "".join(parts)


def _tg_time(msg: dict, zone_: tzinfo) -> datetime | str:
    """The message time, or what is wrong with it."""
    unix = msg.get("date_unixtime")
    if unix is not None:
        try:
            return datetime.fromtimestamp(int(unix), tz=zone_)  # shown in the wearer's zone; the instant is exact
        except (TypeError, ValueError, OverflowError, OSError):
            return f"'date_unixtime' {unix!r} is not epoch seconds"
    if "date" not in msg:
        return "missing 'date'"
    try:
        ts = datetime.fromisoformat(msg["date"])
    except (TypeError, ValueError):
        return f"'date' {msg['date']!r} is not an ISO-8601 time"
    return ts if ts.tzinfo else ts.replace(tzinfo=zone_)


class _Bad(ValueError):
    """What is wrong with one Telegram message; the caller adds where it is."""


def _tg_message(msg: object, zone_: tzinfo) -> tuple[str, str | None, str, datetime] | Skip:
    """(sender, from_id, text, time) of a Telegram message, or why it is skipped."""
    if not isinstance(msg, dict):
        raise _Bad("not a JSON object")
    kind = msg.get("type")
    if kind is None:
        raise _Bad("missing 'type'")
    if kind == "service":
        return Skip.SYSTEM
    if kind != "message":
        return Skip.OTHER
    ts = _tg_time(msg, zone_)
    if isinstance(ts, str):
        raise _Bad(ts)
    body = _tg_text(msg.get("text", ""))
    if body is None:
        raise _Bad("'text' must be a string or a list of strings and entities")
    if "\x00" in body:
        raise _Bad("'text' contains a NUL character")
    if not _encodable(body):
        raise _Bad("'text' is not valid Unicode (it holds a lone surrogate)")
    if not body.strip():
        return Skip.MEDIA if any(k in msg for k in _TG_MEDIA_KEYS) else Skip.EMPTY
    if "from" not in msg and "from_id" not in msg:
        raise _Bad("missing 'from'")
    author = msg.get("from")
    if author is not None and (not isinstance(author, str) or not _encodable(author)):
        raise _Bad("'from' must be a name")
    # a deleted account keeps its messages but loses its name (from: null)
    sender = clean_name(author or "") or "Deleted Account"
    from_id = msg.get("from_id")
    return sender, from_id if isinstance(from_id, str) else None, body, ts


def parse_telegram(path: Path | str, me: str | None = None, tz: str | None = None) -> ChatExport:
    """Telegram Desktop's `result.json`: one chat's export or the full export (every chat, plus the wearer's id)."""
    path, me = Path(path), clean_name(me) if me else None
    text = read_text(path, "a Telegram result.json")
    zone_ = zone(tz)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FeedError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
    user_id: object = None
    if isinstance(doc, dict) and isinstance(doc.get("chats"), dict):
        chats = doc["chats"].get("list")
        if not isinstance(chats, list):
            raise FeedError(f"{path}: 'chats' has no 'list' of chats")
        info = doc.get("personal_information")
        user_id = info.get("user_id") if isinstance(info, dict) else None
    elif isinstance(doc, dict) and "messages" in doc:
        chats = [doc]
    else:
        raise FeedError(f"{path}: not a Telegram Desktop export: expected the 'messages' of one chat or the "
                        f"'chats' of a full export")
    wearer_id = f"user{user_id}" if user_id is not None else None
    skipped: Counter[Skip] = Counter()
    messages: list[Message] = []
    names: list[str] = []
    senders: set[str] = set()
    for ci, chat in enumerate(chats):
        if not isinstance(chat, dict) or not isinstance(chat.get("messages"), list):
            raise FeedError(f"{path}: chat #{ci + 1} has no 'messages' list")
        name = chat.get("name")
        if not isinstance(name, str) or not name.strip() or not _encodable(name):
            saved = chat.get("type") == "saved_messages"
            name = "Saved Messages" if saved else f"Telegram chat {chat.get('id', ci + 1)}"
        for mi, msg in enumerate(chat["messages"]):
            try:
                parsed = _tg_message(msg, zone_)
            except _Bad as exc:
                mid = msg.get("id") if isinstance(msg, dict) else None
                line = _tg_line(text, ci, mid)
                where = f"{path}:{line}" if line else str(path)
                which = f"message id {mid}" if mid is not None else f"message #{mi + 1}"
                raise FeedError(f"{where}: chat {name!r}, {which}: {exc}") from None
            if isinstance(parsed, Skip):
                skipped[parsed] += 1
                continue
            sender, from_id, body, ts = parsed
            senders.add(sender)
            mine = (wearer_id is not None and from_id == wearer_id) or (me is not None and sender == me)
            messages.append(Message(name, WEARER if mine else sender, body, ts))
            if name not in names:
                names.append(name)
    notes: list[str] = []
    if wearer_id is None or me is not None:  # a full export names the wearer by id; a given name must still exist
        check_wearer(path, me, senders, notes)
    return finish("telegram", path, names, messages, skipped, notes, 1)
