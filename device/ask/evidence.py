"""The words of a message an answer came from: what the wearer hears when the assistant is not sure of its answer,
so that a value the message gives for something else ("the coach leaves at 8:15" for "when does the coach get
back?") is heard as what it is."""
from __future__ import annotations

import re

from device.ask.message_index import tokens
from device.messages.inbox import Message

# a spoken quote longer than this is cut around the answer: the wearer listens, and a whole message is too long
MAX_QUOTE_WORDS = 16

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\s*\n+\s*")


def evidence_clause(text: str, answer: str, max_words: int = MAX_QUOTE_WORDS) -> str:
    """The sentence of `text` that shares most words with `answer` (the first one on a tie, or when none shares
    any), cut to `max_words` words around the first shared word, with "…" where it was cut."""
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    if not sentences:
        return ""
    wanted = set(tokens(answer))
    best = max(sentences, key=lambda s: len(wanted & set(tokens(s))))  # max keeps the first of equals
    words = best.split()
    if len(words) <= max_words:
        return best
    at = next((i for i, w in enumerate(words) if wanted & set(tokens(w))), 0)
    start = min(max(0, at - max_words // 2), len(words) - max_words)
    end = start + max_words
    return ("… " if start > 0 else "") + " ".join(words[start:end]) + (" …" if end < len(words) else "")


def spoken_as_guess(answer: str, spoken: str, message: Message, max_words: int = MAX_QUOTE_WORDS) -> tuple[str, str]:
    """(what the wearer hears for an answer the assistant is not sure of, the quoted words): the answer as spoken
    (`spoken`: its day words dated) as a guess, then who wrote what it came from, in their words."""
    quote = evidence_clause(message.text, answer, max_words)
    who = "You wrote" if message.from_wearer else f"{message.sender} wrote"
    return f"Maybe {spoken}. {who}: \u201c{quote}\u201d", quote
