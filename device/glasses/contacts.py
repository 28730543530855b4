"""Who the wearer means: spoken names resolved against the inbox's threads and senders.

Speech gets names wrong in predictable ways ("Tomas" for Tomasz, "Marko", "flat four b", "mister Okafor", "mom"),
so a spoken name is matched token by token with a similarity threshold rather than exactly. When a name fits more
than one contact equally well ("Alice" — Chen or Park?) the resolution says so and the caller asks which; it never
picks one silently. Nicknames the wearer set ("landlord" → Mr Okafor) come from an alias table.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

from device.messages.inbox import WEARER
from device.messages.words import DETERMINERS, GROUP_WORDS, SPOKEN_NUMBERS

TOKEN_MATCH = 0.78  # a spoken token counts as a name token from this similarity on
TIE = 0.04  # candidates this close to the best are "equally good": ask, don't guess
# spoken forms of honorifics and family names that every English speaker uses interchangeably
SPOKEN = {"mister": "mr", "missus": "mrs", "doctor": "dr", "mom": "mum", "mommy": "mum", "mummy": "mum",
          "mother": "mum", "ma": "mum", "father": "dad", "daddy": "dad"}


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9+]+(?:'[a-z]+)?", text.lower())


def name_tokens(text: str) -> list[str]:
    """Tokens of a name as speech would give them: number words as digits, "4 b" as "4b", "mom" as "mum"."""
    out: list[str] = []
    for w in words(text.replace("'s ", " ").removesuffix("'s")):
        w = w.removesuffix("'s")
        w = SPOKEN.get(w, w)
        w = str(SPOKEN_NUMBERS[w]) if w in SPOKEN_NUMBERS else w
        if out and len(w) == 1 and w.isalpha() and out[-1].isdigit():
            out[-1] += w  # "four b" -> "4b"
        else:
            out.append(w)
    return out


def _similar(a: str, b: str) -> float:
    if a == b:
        return 1.0
    if len(a) < 4 or len(b) < 4 or a[0] != b[0]:  # short names ("dev", "mum") must be exact
        return 0.0
    return SequenceMatcher(None, a, b).ratio()


@dataclass(frozen=True)
class Resolution:
    spoken: str
    matches: tuple[str, ...]  # one: resolved; several: ask which; none: unknown
    score: float

    @property
    def name(self) -> str | None:
        return self.matches[0] if len(self.matches) == 1 else None

    @property
    def ambiguous(self) -> bool:
        return len(self.matches) > 1

    def question(self) -> str:
        if not self.matches:
            return f"I don't know who '{self.spoken}' is."
        return " or ".join(self.matches) + "?"

    def slot(self) -> str:
        """The slot value: the contact, or the candidates joined by '|' while it is ambiguous."""
        return "|".join(sorted(self.matches))


@dataclass
class ContactBook:
    threads: list[str]
    senders: list[str]
    aliases: dict[str, str] = field(default_factory=dict)  # spoken nickname -> contact
    last_thread: dict[str, str] = field(default_factory=dict)  # sender -> the thread they last wrote in

    @classmethod
    def from_threads(cls, threads: dict, aliases: dict[str, str] | None = None) -> ContactBook:
        book = cls([], [], dict(aliases or {}))
        for name in threads:
            book.note_sender(WEARER, name)
        for m, name in sorted(((m, t.name) for t in threads.values() for m in t.messages), key=lambda x: x[0].ts):
            book.note_sender(m.sender, name)
        return book

    @staticmethod
    def read_aliases(path: Path) -> dict[str, str]:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read the contact aliases: {exc}") from exc
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, list) for k, v in data.items()):
            raise ValueError(f"{path}: aliases must be {{contact: [nickname, ...]}}")
        return {" ".join(name_tokens(nick)): contact for contact, nicks in data.items() for nick in nicks}

    def names(self, threads_only: bool = False) -> list[str]:
        pool = dict.fromkeys(self.threads)
        if not threads_only:
            pool.update(dict.fromkeys(self.senders))
        return list(pool)

    def score(self, spoken: list[str], name: str) -> float:
        """Mean over the spoken tokens of their best similarity to a token of the name (0 if any fails)."""
        target = name_tokens(name)
        if not spoken or not target:
            return 0.0
        best = [max(_similar(s, t) for t in target) for s in spoken]
        if min(best) < TOKEN_MATCH:
            return 0.0
        return sum(best) / len(best)

    def resolve(self, spoken: str, threads_only: bool = False) -> Resolution:
        tokens = [t for t in name_tokens(spoken)]
        while tokens and tokens[0] in DETERMINERS:
            tokens = tokens[1:]
        key = " ".join(tokens)
        pool = self.names(threads_only)
        if key in self.aliases:
            contact = self.aliases[key]
            return Resolution(spoken, (self.thread_of(contact) if threads_only else contact,), 1.0)
        while tokens and tokens[-1] in GROUP_WORDS and len(tokens) > 1:
            tokens = tokens[:-1]
        scored = sorted(((self.score(tokens, n), n) for n in pool), reverse=True)
        if not scored or scored[0][0] == 0.0:
            return Resolution(spoken, (), 0.0)
        top = scored[0][0]
        matches = tuple(sorted(n for s, n in scored if s >= top - TIE))
        return Resolution(spoken, matches, top)

    def thread_of(self, contact: str) -> str:
        """The thread a reply to `contact` goes to: their own thread, else the last thread they wrote in."""
        if contact in self.threads:
            return contact
        return self.last_thread.get(contact, contact)

    def note_sender(self, sender: str, thread: str) -> None:
        if sender != WEARER:
            self.last_thread[sender] = thread
            if sender not in self.senders:
                self.senders.append(sender)
        if thread not in self.threads:
            self.threads.append(thread)
