"""One client per real user: (the message they replied to, with a little context) → (their reply).

From the Ubuntu IRC corpus' human reply links (lab.irc): users with at least `min_messages` replies in the
training folder become clients, identified only by a hash of their nick. Each client's held-out examples are the
same user's replies in the dev folder (when they have any). In the prompt the user's own earlier lines are "Me",
as on their glasses. tiny_shakespeare (one client per speaker) is the fast smoke fixture.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from device.assistant import prompts
from device.messages.inbox import Message, group_threads
from federated.train import Example
from lab.irc import ReplyPair, client_id, pair_messages, reply_pairs, strip_address


@dataclass
class Client:
    id: str  # hashed nick or speaker
    train: list[Example] = field(default_factory=list)
    test: list[Example] = field(default_factory=list)


def reply_example(pair: ReplyPair) -> Example:
    msgs = pair_messages(pair)
    thread = group_threads(msgs)[msgs[0].thread]
    header = prompts.thread_header(thread.name, thread.participants)
    lines = [prompts.message_line(m) for m in thread.messages]
    return Example(tuple(prompts.next_message_messages(header, lines)), strip_address(pair.reply.text))


def irc_clients(train_dir: Path, dev_dir: Path | None = None, min_messages: int = 50,
                max_clients: int | None = None, skip: int = 0) -> list[Client]:
    """Clients ordered by how much they wrote (most first, the first `skip` left out), each with train and
    held-out examples."""
    by_user: dict[str, list[ReplyPair]] = defaultdict(list)
    for p in reply_pairs(train_dir):
        by_user[p.user.lower()].append(p)
    held: dict[str, list[ReplyPair]] = defaultdict(list)
    if dev_dir is not None:
        for p in reply_pairs(dev_dir):
            held[p.user.lower()].append(p)
    users = sorted((u for u, ps in by_user.items() if len(ps) >= min_messages), key=lambda u: (-len(by_user[u]), u))
    clients = [Client(client_id(u), [reply_example(p) for p in by_user[u]], [reply_example(p) for p in held[u]])
               for u in users[skip:][:max_clients]]
    return clients


_SPEAKER = re.compile(r"^([A-Z][A-Za-z ]{1,30}):$")


def speeches(path: Path) -> list[tuple[str, str]]:
    """(speaker, speech) in order; a speech is the lines after `Name:` up to the next blank line."""
    out: list[tuple[str, str]] = []
    speaker: str | None = None
    lines: list[str] = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines() + [""]:
        line = raw.strip()
        m = _SPEAKER.match(line)
        if m or not line:
            if speaker and lines:
                out.append((speaker, " ".join(lines)[:300]))
            speaker, lines = (m.group(1).title() if m else None), []
        elif speaker:
            lines.append(line)
    return out


def shakespeare_clients(path: Path, min_lines: int = 20, max_clients: int | None = None) -> list[Client]:
    """One client per speaker: the previous speech → this speaker's speech, one in five held out."""
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    by: dict[str, list[Example]] = defaultdict(list)
    said = speeches(path)
    for (prev_speaker, prev), (who, text) in zip(said, said[1:], strict=False):
        if prev_speaker == who:
            continue
        message = Message("Play", prev_speaker, prev, t0)
        header = prompts.thread_header("Play", [prev_speaker])
        by[who].append(Example(tuple(prompts.next_message_messages(header, [prompts.message_line(message)])), text))
    speakers = sorted((s for s, ex in by.items() if len(ex) >= min_lines), key=lambda s: (-len(by[s]), s))
    return [Client(client_id(s), [e for i, e in enumerate(by[s]) if i % 5],
                   [e for i, e in enumerate(by[s]) if not i % 5]) for s in speakers[:max_clients]]
