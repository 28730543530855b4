"""WhatsApp's `.txt` export (Android and iOS layouts, English and German dates)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path

from device.messages.exports.common import (
    BIDI,
    LRM,
    ChatExport,
    Skip,
    check_wearer,
    clean_name,
    finish,
    read_text,
    split_lines,
    zone,
)
from device.messages.inbox import WEARER, FeedError, Message

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
    for lineno, line in enumerate(split_lines(text), start=1):
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
    sender, text = clean_name(m["sender"]), m["text"]
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
    path, me = Path(path), clean_name(me) if me else None
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
    check_wearer(path, me, senders, notes)
    return finish("whatsapp", path, [name], messages, skipped, notes, entries[0].line)
