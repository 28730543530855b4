"""The Ubuntu IRC corpus (Kummerfeld et al. 2019, CC BY 4.0) as chat threads and (message → reply) pairs.

`*.raw.txt` holds `[HH:MM] <nick> text` lines; `*.annotation.txt` holds `i j -` links (line j replies to line i,
0-based; i == j starts a conversation). Bot nicks and `===`/`*` system lines are dropped. Nicks are real: they
appear in prompts as sender names (as any chat shows them), but results only ever keep aggregates or hashed ids.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from device.messages.inbox import WEARER, FeedError, Message

BOTS = frozenset({"ubotu", "ubottu", "ubot5", "ubot2", "ubuntu", "chanserv", "nickserv"})
_LINE = re.compile(r"^\[(\d\d):(\d\d)\] <([^>]{1,40})> (.*)$")
_ADDRESS = re.compile(r"^[\w\-\[\]\\`^{}|]{1,30}[:,]\s+")


@dataclass(frozen=True)
class Line:
    index: int
    nick: str
    text: str
    minute: int  # minutes since the file's midnight


@dataclass(frozen=True)
class ReplyPair:
    file: str
    context: tuple[Line, ...]  # earlier lines of the conversation, oldest first; the last is replied to
    reply: Line

    @property
    def user(self) -> str:
        return self.reply.nick

    @property
    def id(self) -> str:
        """`file:line` of the reply: what an adapter's training record lists and evaluation checks against."""
        return f"{self.file}:{self.reply.index}"


def client_id(nick: str) -> str:
    """A stable pseudonym for a nick (results and partitions never carry the nick itself)."""
    return "u" + hashlib.sha256(nick.lower().encode()).hexdigest()[:10]


def read_lines(path: Path) -> dict[int, Line]:
    """Human lines by index; system lines, bots and unparsable lines are left out."""
    try:
        raw = Path(path).read_bytes().decode("utf-8", errors="replace").splitlines()
    except FileNotFoundError as exc:
        raise FeedError(f"{path}: no such file") from exc
    out = {}
    for i, text in enumerate(raw):
        m = _LINE.match(text)
        if not m or m.group(3).lower() in BOTS:
            continue
        body = m.group(4).strip()
        if not body:
            continue
        out[i] = Line(i, m.group(3), body, int(m.group(1)) * 60 + int(m.group(2)))
    return out


def read_links(path: Path) -> list[tuple[int, int]]:
    links = []
    for n, row in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        parts = row.split()
        if not parts:
            continue
        try:
            links.append((int(parts[0]), int(parts[1])))
        except (ValueError, IndexError) as exc:
            raise FeedError(f"{path}:{n}: expected `i j -`, got {row!r}") from exc
    return links


def files(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FeedError(f"{folder}: not a folder of IRC *.raw.txt / *.annotation.txt files")
    raws = sorted(folder.glob("*.raw.txt"))
    if not raws:
        raise FeedError(f"{folder}: no *.raw.txt files")
    return raws


def reply_pairs(folder: Path, context: int = 2) -> list[ReplyPair]:
    """Every annotated human reply to another person's line, with up to `context` earlier lines of its chain."""
    out = []
    for raw in files(folder):
        lines = read_lines(raw)
        ann = raw.with_name(raw.name.replace(".raw.txt", ".annotation.txt"))
        if not ann.exists():
            continue
        parent: dict[int, int] = {}
        for i, j in read_links(ann):
            if i < j:
                parent.setdefault(j, i)  # the earliest line it answers
        for j, i in sorted(parent.items()):
            if j not in lines or i not in lines or lines[i].nick == lines[j].nick:
                continue
            chain = [lines[i]]
            k = i
            while len(chain) < context and k in parent and parent[k] in lines:
                k = parent[k]
                chain.insert(0, lines[k])
            out.append(ReplyPair(raw.name, tuple(chain), lines[j]))
    return out


def strip_address(text: str) -> str:
    """`nick: text` → `text` (IRC's addressing prefix; chat apps show the reply under the message instead)."""
    return _ADDRESS.sub("", text, count=1)


def pair_messages(pair: ReplyPair, thread: str = "IRC") -> list[Message]:
    """The context lines as the replier's glasses show them: their own earlier lines as the wearer ("Me"), the
    others under their nicks (a minute apart when the log's minutes collide)."""
    base = datetime(2026, 1, 5, tzinfo=UTC)
    out = []
    last = None
    for line in pair.context:
        ts = base + timedelta(minutes=line.minute)
        if last is not None and ts <= last:
            ts = last + timedelta(seconds=30)
        sender = WEARER if line.nick == pair.user else line.nick
        out.append(Message(thread, sender, line.text, ts))
        last = ts
    return out
