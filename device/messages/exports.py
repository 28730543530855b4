"""Chat exports from WhatsApp, Telegram Desktop and Signal (signal-export), read into glassmate Messages.

Each parser reads the whole export and returns a `ChatExport` or raises `FeedError` saying `file:line: what is
wrong`; nothing is returned half-parsed, so an import either stores every message of a file or none.

WhatsApp's `.txt` export is parsed here rather than with the well-known `whatstk`: that library pulls pandas,
plotly and seaborn onto the glasses for what is a line-oriented format, and it reports a bad line without its
line number, which is the one thing a wearer needs to fix a damaged export.

Export times are local wall-clock times (WhatsApp, Signal, Telegram's `date`): they are read in a zone the caller
names (default: this machine's) so every stored message carries an aware time.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from device.messages.inbox import WEARER, FeedError, Message

Source = Literal["whatsapp", "telegram", "signal"]

BOM = b"\xef\xbb\xbf"
# Direction marks and embeddings exports wrap around names and system texts (iOS puts U+200E before generated
# lines, Android wraps phone numbers in U+202A…U+202C); they are formatting, never part of a name.
BIDI = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
LRM = "\u200e"


class Skip(StrEnum):
    """Why an export line did not become a message."""

    SYSTEM = "system"  # encryption notices, "X added Y", group changes, Telegram service messages
    MEDIA = "media"  # a photo, sticker, voice note… without a caption
    DELETED = "deleted"
    CALL = "call"
    EMPTY = "empty"  # a message with no text and no media
    OTHER = "other"  # a Telegram message type this parser does not know


@dataclass
class ChatExport:
    source: Source
    chats: list[str]
    messages: list[Message]
    skipped: dict[str, int]
    notes: list[str] = field(default_factory=list)  # assumptions the parser made (date order, no wearer named)


# -- shared ---------------------------------------------------------------------------------------------------------
def local_zone() -> tzinfo:
    """This machine's zone as a zoneinfo zone (so DST is right across a long chat), not a fixed offset."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    localtime = Path("/etc/localtime")
    resolved = str(localtime.resolve())
    if "zoneinfo/" in resolved:
        try:
            return ZoneInfo(resolved.split("zoneinfo/", 1)[1])
        except (ZoneInfoNotFoundError, ValueError):
            pass
    if localtime.is_file():
        with localtime.open("rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    return ZoneInfo("UTC")


def zone(name: str | None) -> tzinfo:
    if not name:
        return local_zone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise FeedError(f"unknown time zone {name!r}: give a zoneinfo name such as Europe/Berlin") from None


def read_text(path: Path, expected: str) -> str:
    """The file as text: UTF-8 (a BOM tolerated), not empty, no NUL; errors name file:line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise FeedError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise FeedError(f"{path}: is a directory, expected {expected}") from exc
    except OSError as exc:
        raise FeedError(f"{path}: cannot read it ({exc.strerror})") from exc
    skip = len(BOM) if data.startswith(BOM) else 0
    try:
        text = data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = skip + exc.start
        line = data.count(b"\n", 0, at) + 1
        raise FeedError(f"{path}:{line}: not valid UTF-8 (byte {at}: {data[at:at + 1]!r})") from exc
    if not text.strip():
        raise FeedError(f"{path}: the file is empty")
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise FeedError(f"{path}:{line}: contains a NUL character")
    return text


def _lines(text: str) -> list[str]:
    # split on newlines only: str.splitlines would also break on U+2028 and form feeds inside a message
    return [line.removesuffix("\r") for line in text.split("\n")]


def _clean_name(name: str) -> str:
    return name.strip(BIDI + " \t").strip()


def _check_wearer(path: Path, me: str | None, senders: set[str], notes: list[str]) -> None:
    if me is None:
        notes.append("no wearer named (--me): none of these messages is marked as yours")
    elif me not in senders:
        raise FeedError(f"{path}: the wearer's name {me!r} sends no message in this export; its senders are: "
                        f"{', '.join(sorted(senders)) or 'none'}")


def _finish(source: Source, path: Path, chats: list[str], messages: list[Message], skipped: Counter[Skip],
            notes: list[str], first_line: int) -> ChatExport:
    if not messages:
        what = ", ".join(f"{n} {kind}" for kind, n in sorted(skipped.items())) or "nothing"
        raise FeedError(f"{path}:{first_line}: no chat messages in this export (only {what})")
    return ChatExport(source, chats, messages, {str(k): n for k, n in sorted(skipped.items())}, notes)


# -- WhatsApp -------------------------------------------------------------------------------------------------------
_WA_DATE = r"(?P<a>\d{1,2})(?P<sep>[./])(?P<b>\d{1,2})(?P=sep)(?P<y>\d{4}|\d{2})"
_WA_TIME = r"(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?(?:[ \u202f\u00a0]?(?P<ampm>[AaPp]\.? ?[Mm]\.?))?"
_WA_ANDROID = re.compile(rf"{_WA_DATE},? {_WA_TIME} - (?P<rest>.*)")
_WA_IOS = re.compile(rf"\[{_WA_DATE},? {_WA_TIME}\] (?P<rest>.*)")
_WA_SENDER = re.compile(r"(?P<sender>[^:\n]+?): (?P<text>.*)", re.DOTALL)
_WA_CHAT_FILE = re.compile(r"WhatsApp[ -]Chat (?:with|mit|-) (?P<name>.+?)(?: \(\d+\))?")
_WA_DELETED = re.compile(r"(?:This message was deleted|You deleted this message|Diese Nachricht wurde gelöscht|"
                         r"Du hast diese Nachricht gelöscht)\.?", re.IGNORECASE)
_WA_MEDIA = re.compile(
    r"<(?:Media omitted|Medien ausgeschlossen|Medien weggelassen)>"
    r"|(?:.+ )?(?:image|video|audio|sticker|GIF|document|Contact card) omitted"
    r"|(?:.+ )?(?:Bild|Video|Audio|Sticker|GIF|Dokument|Kontaktkarte) (?:weggelassen|ausgelassen)"
    r"|<(?:attached|Anhang): [^>]+>"
    r"|.+ \((?:file attached|Datei angehängt)\)"
    r"|(?:location|Standort): https?://\S+", re.IGNORECASE)
# calls appear only in iOS exports, always as generated (U+200E-marked) lines
_WA_CALL = re.compile(r"(?:Missed )?(?:voice|video|group) call.*|(?:Verpasster )?(?:Sprach|Video|Gruppen)anruf.*",
                      re.IGNORECASE)
_WA_EDITED = re.compile(rf"\s*{LRM}?<(?:This message was edited|Diese Nachricht wurde bearbeitet)>$")


@dataclass
class _WaEntry:
    line: int
    a: int
    b: int
    year: int
    hour: int
    minute: int
    second: int
    ampm: str | None
    dotted: bool
    raw_date: str
    rest: list[str]


def whatsapp_chat_name(path: Path) -> str:
    """"WhatsApp Chat with Climbing crew.txt" → "Climbing crew"; an iOS `_chat.txt` is named by the folder it was
    unzipped into ("WhatsApp Chat - Oma")."""
    stem = path.resolve().parent.name if path.stem == "_chat" else path.stem
    m = _WA_CHAT_FILE.fullmatch(stem)
    return m["name"] if m else stem


def _wa_entries(path: Path, text: str) -> list[_WaEntry]:
    entries: list[_WaEntry] = []
    for lineno, line in enumerate(_lines(text), start=1):
        m = _WA_IOS.fullmatch(line.lstrip(BIDI)) or _WA_ANDROID.fullmatch(line.lstrip(BIDI))
        if m is None:
            if entries:
                entries[-1].rest.append(line)  # a line without a timestamp continues the message before it
                continue
            if not line.strip():
                continue
            raise FeedError(f"{path}:{lineno}: not a WhatsApp chat export: the line does not start with a date and "
                            f"time (expected e.g. '31/12/2024, 21:05 - Name: text' or "
                            f"'[31/12/2024, 21:05:33] Name: text')")
        ampm = re.sub(r"[^a-z]", "", m["ampm"].lower()) if m["ampm"] else None
        year = int(m["y"])
        entries.append(_WaEntry(lineno, int(m["a"]), int(m["b"]), year + 2000 if len(m["y"]) == 2 else year,
                                int(m["h"]), int(m["mi"]), int(m["s"] or 0), ampm, m["sep"] == ".",
                                f"{m['a']}{m['sep']}{m['b']}{m['sep']}{m['y']}", [m["rest"]]))
    return entries


def _wa_day_first(path: Path, entries: list[_WaEntry], notes: list[str]) -> bool:
    """Day/month order, decided once per file from its dates (a WhatsApp export uses one order throughout)."""
    day_first_at: _WaEntry | None = None
    month_first_at: _WaEntry | None = None
    for e in entries:
        if e.a > 12 and e.b > 12:
            raise FeedError(f"{path}:{e.line}: {e.raw_date} is not a date: neither {e.a} nor {e.b} can be the month")
        if not 1 <= e.a <= 31 or not 1 <= e.b <= 31:
            raise FeedError(f"{path}:{e.line}: {e.raw_date} is not a date")
        if e.a > 12 and day_first_at is None:
            day_first_at = e
        if e.b > 12 and month_first_at is None:
            month_first_at = e
    if day_first_at and month_first_at:
        first, later = sorted((day_first_at, month_first_at), key=lambda e: e.line)
        order = {id(day_first_at): "the day", id(month_first_at): "the month"}
        raise FeedError(f"{path}:{later.line}: {later.raw_date} puts {order[id(later)]} first, but line {first.line} "
                        f"({first.raw_date}) puts {order[id(first)]} first: the file mixes two date orders")
    if day_first_at or month_first_at:
        return day_first_at is not None
    # no date settles it: dotted dates are day-first in every locale that writes them; otherwise a 12-hour clock
    # means a US export (month first) and a 24-hour clock the rest of the world's (day first)
    if any(e.dotted for e in entries):
        day_first, why = True, "dotted dates like 31.12.24 are day-first"
    elif any(e.ampm for e in entries):
        day_first, why = False, "a 12-hour clock suggests a US export"
    else:
        day_first, why = True, "a 24-hour clock suggests a non-US export"
    notes.append(f"no date in {path.name} has a day or month over 12: read them {'day' if day_first else 'month'}"
                 f"-first ({why})")
    return day_first


def _wa_time(path: Path, e: _WaEntry, day_first: bool, tz: tzinfo) -> datetime:
    hour = e.hour
    if e.ampm:
        if not 1 <= hour <= 12 or e.ampm not in ("am", "pm"):
            raise FeedError(f"{path}:{e.line}: {e.hour}:{e.minute:02d} {e.ampm} is not a 12-hour time")
        hour = hour % 12 + (12 if e.ampm == "pm" else 0)
    day, month = (e.a, e.b) if day_first else (e.b, e.a)
    try:
        return datetime(e.year, month, day, hour, e.minute, e.second, tzinfo=tz)
    except ValueError as exc:
        raise FeedError(f"{path}:{e.line}: {e.raw_date} {e.hour}:{e.minute:02d} is not a valid date and time "
                        f"({exc})") from exc


def _wa_classify(rest: list[str]) -> tuple[str | None, str, Skip | None]:
    """(sender, text, why skipped): the entry's first line holds "Name: text" unless it is a system line."""
    body = "\n".join(rest)
    m = _WA_SENDER.match(body)
    if m is None:
        return None, body, Skip.SYSTEM
    sender, text = _clean_name(m["sender"]), m["text"]
    if sum(sender.count(q) for q in "\"“”„«»") % 2:
        # an open quote: a system line that quotes a colon ('X changed the subject to "Trip: Rome"'), not a name
        return None, body, Skip.SYSTEM
    generated = text.startswith(LRM)  # iOS marks what WhatsApp wrote itself (notices, media, calls) with U+200E
    text = _WA_EDITED.sub("", text.lstrip(LRM).rstrip()).rstrip()
    lines = text.split("\n")
    first = lines[0].strip(BIDI + " ")
    if _WA_DELETED.fullmatch(first) and len(lines) == 1:
        return sender, text, Skip.DELETED
    if _WA_MEDIA.fullmatch(first):
        caption = "\n".join(lines[1:]).strip()
        return sender, caption, None if caption else Skip.MEDIA
    if generated:
        return sender, text, Skip.CALL if _WA_CALL.fullmatch(first) else Skip.SYSTEM
    if not text.strip():
        return sender, text, Skip.EMPTY
    return sender, text, None


def parse_whatsapp(path: Path | str, chat: str | None = None, me: str | None = None,
                   tz: str | None = None) -> ChatExport:
    """A WhatsApp "Export chat" `.txt` (Android or iOS, English or German); `me` is the wearer's name in it."""
    path, me = Path(path), _clean_name(me) if me else None
    text = read_text(path, "a WhatsApp .txt export")
    zone_ = zone(tz)
    entries = _wa_entries(path, text)
    notes: list[str] = []
    day_first = _wa_day_first(path, entries, notes)
    name = chat or whatsapp_chat_name(path)
    skipped: Counter[Skip] = Counter()
    messages: list[Message] = []
    senders: set[str] = set()
    for e in entries:
        ts = _wa_time(path, e, day_first, zone_)
        sender, body, skip = _wa_classify(e.rest)
        if skip is not None:
            skipped[skip] += 1
            continue
        assert sender is not None
        if not sender:
            raise FeedError(f"{path}:{e.line}: the message has no sender name")
        senders.add(sender)
        messages.append(Message(name, WEARER if sender == me else sender, body, ts))
    _check_wearer(path, me, senders, notes)
    return _finish("whatsapp", path, [name], messages, skipped, notes, entries[0].line)


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
    sender = _clean_name(author or "") or "Deleted Account"
    from_id = msg.get("from_id")
    return sender, from_id if isinstance(from_id, str) else None, body, ts


def parse_telegram(path: Path | str, me: str | None = None, tz: str | None = None) -> ChatExport:
    """Telegram Desktop's `result.json`: one chat's export or the full export (every chat, plus the wearer's id)."""
    path, me = Path(path), _clean_name(me) if me else None
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
        _check_wearer(path, me, senders, notes)
    return _finish("telegram", path, names, messages, skipped, notes, 1)


# -- Signal (signal-export) -----------------------------------------------------------------------------------------
# signal-export writes `[2024-01-31 21:05:33] Name: text`; versions before 3 wrote `[2024-01-31, 21:05]`
_SIG_HEAD = re.compile(r"\[(?P<date>\d{4}-\d{2}-\d{2}),? (?P<time>\d{2}:\d{2}(?::\d{2})?)\] "
                       r"(?P<sender>[^:\n]+?):(?: (?P<text>.*))?")
SIGNAL_WEARER = "Me"  # how signal-export names the wearer's own (outgoing) messages
# attachments are markdown links into the chat's media/ folder, images with a leading "!"; stickers link
# ../exported_stickers/ or stand on their own line as "(( 👍 ))"
_SIG_MEDIA = re.compile(r"!?\[[^\]\n]*\]\((?:\./media/|\.\./exported_stickers/|media/)[^)\n]*\)")
_SIG_STICKER = re.compile(r"\(\( .* \)\)")
_SIG_REACTIONS = re.compile(r"\(- .+: .+ -\)")
_SIG_CALL = re.compile(r"(?:Incoming|Outgoing|Missed) (?:voice |video )?call(?: \(.*\))?")
_SIG_DELETED = "(This message was deleted)"


@dataclass
class _SigEntry:
    line: int
    ts: datetime
    sender: str
    lines: list[str]


def _sig_classify(lines: list[str]) -> tuple[str, Skip | None]:
    """The message text without signal-export's decorations (quote, reactions, attachments, sticker)."""
    if not lines[0].strip():
        # a reply starts with the quoted message: a blank line, "> quoted" lines, a blank line, then the reply
        rest = lines[1:]
        while rest and not rest[0].strip():
            rest = rest[1:]
        if rest and rest[0].startswith(">"):
            while rest and rest[0].startswith(">"):
                rest = rest[1:]
            lines = rest
    kept, media = [], False
    for line in lines:
        if _SIG_REACTIONS.fullmatch(line.strip()):
            continue
        if _SIG_STICKER.fullmatch(line.strip()):
            media = True
            continue
        stripped, n = _SIG_MEDIA.subn("", line)
        media |= n > 0
        kept.append(stripped.rstrip())  # the two trailing spaces are markdown line breaks, not text
    text = "\n".join(kept).strip("\n")
    if text == _SIG_DELETED:
        return text, Skip.DELETED
    if _SIG_CALL.fullmatch(text):
        return text, Skip.CALL
    if not text.strip():
        return text, Skip.MEDIA if media else Skip.EMPTY
    return text, None


def parse_signal(path: Path | str, chat: str | None = None, me: str | None = None,
                 tz: str | None = None) -> ChatExport:
    """A signal-export chat: its folder or the `chat.md` in it. The wearer is "Me" (and `me`, if given)."""
    path, me = Path(path), _clean_name(me) if me else None
    if path.is_dir():
        if not (path / "chat.md").is_file():
            raise FeedError(f"{path}: no chat.md in this folder (signal-export writes one per chat folder)")
        path = path / "chat.md"
    text = read_text(path, "a signal-export chat folder or its chat.md")
    zone_ = zone(tz)
    name = chat or path.resolve().parent.name
    entries: list[_SigEntry] = []
    for lineno, line in enumerate(_lines(text), start=1):
        m = _SIG_HEAD.fullmatch(line)
        if m is None:
            if entries:
                entries[-1].lines.append(line)  # a message's later lines, and the blank line after each message
                continue
            if not line.strip():
                continue
            raise FeedError(f"{path}:{lineno}: not a signal-export chat.md: the line does not start with "
                            f"'[YYYY-MM-DD HH:MM:SS] Name:'")
        stamp = f"{m['date']} {m['time']}"
        try:
            ts = datetime.fromisoformat(stamp).replace(tzinfo=zone_)
        except ValueError as exc:
            raise FeedError(f"{path}:{lineno}: {stamp} is not a valid date and time ({exc})") from exc
        sender = _clean_name(m["sender"])
        if not sender:
            raise FeedError(f"{path}:{lineno}: the message has no sender name")
        entries.append(_SigEntry(lineno, ts, sender, [m["text"] or ""]))
    skipped: Counter[Skip] = Counter()
    messages: list[Message] = []
    senders: set[str] = set()
    for e in entries:
        body, skip = _sig_classify(e.lines)
        if skip is not None:
            skipped[skip] += 1
            continue
        senders.add(e.sender)
        mine = e.sender == SIGNAL_WEARER or e.sender == me
        messages.append(Message(name, WEARER if mine else e.sender, body, e.ts))
    notes: list[str] = []
    if me is not None:
        _check_wearer(path, me, senders, notes)
    elif SIGNAL_WEARER not in senders:
        notes.append(f"no message from {SIGNAL_WEARER!r} (the wearer, in signal-export's chat.md): none is marked "
                     f"as yours; name yourself with --me if the export uses your profile name")
    return _finish("signal", path, [name], messages, skipped, notes, entries[0].line if entries else 1)

