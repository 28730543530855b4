"""What every export parser shares: the result, why a line was skipped, reading a file, time zones."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from device.messages.inbox import FeedError, Message

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


def split_lines(text: str) -> list[str]:
    # split on newlines only: str.splitlines would also break on U+2028 and form feeds inside a message
    return [line.removesuffix("\r") for line in text.split("\n")]


def clean_name(name: str) -> str:
    return name.strip(BIDI + " \t").strip()


def check_wearer(path: Path, me: str | None, senders: set[str], notes: list[str]) -> None:
    if me is None:
        notes.append("no wearer named (--me): none of these messages is marked as yours")
    elif me not in senders:
        raise FeedError(f"{path}: the wearer's name {me!r} sends no message in this export; its senders are: "
                        f"{', '.join(sorted(senders)) or 'none'}")


def finish(source: Source, path: Path, chats: list[str], messages: list[Message], skipped: Counter[Skip],
            notes: list[str], first_line: int) -> ChatExport:
    if not messages:
        what = ", ".join(f"{n} {kind}" for kind, n in sorted(skipped.items())) or "nothing"
        raise FeedError(f"{path}:{first_line}: no chat messages in this export (only {what})")
    return ChatExport(source, chats, messages, {str(k): n for k, n in sorted(skipped.items())}, notes)
