"""signal-export's `chat.md` (https://github.com/carderne/signal-export)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from device.messages.exports.common import (
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
    path, me = Path(path), clean_name(me) if me else None
    if path.is_dir():
        if not (path / "chat.md").is_file():
            raise FeedError(f"{path}: no chat.md in this folder (signal-export writes one per chat folder)")
        path = path / "chat.md"
    text = read_text(path, "a signal-export chat folder or its chat.md")
    zone_ = zone(tz)
    name = chat or path.resolve().parent.name
    entries: list[_SigEntry] = []
    for lineno, line in enumerate(split_lines(text), start=1):
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
        sender = clean_name(m["sender"])
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
        check_wearer(path, me, senders, notes)
    elif SIGNAL_WEARER not in senders:
        notes.append(f"no message from {SIGNAL_WEARER!r} (the wearer, in signal-export's chat.md): none is marked "
                     f"as yours; name yourself with --me if the export uses your profile name")
    return finish("signal", path, [name], messages, skipped, notes, entries[0].line if entries else 1)
