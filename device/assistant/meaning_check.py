"""Does a summary sentence say what the chat says? A check of meaning, not only of names and numbers.

The entity guard (`faithfulness`) cannot see a sentence built from the chat's own words with the meaning turned
round: "Mum asks Dad to pick up a cake" when Dad asked the wearer; "Lena can't be home" turned into "Lena can".
This module builds the sentence's *contrasts* — the same sentence with its negation flipped, two of its people
swapped, or the asker and the asked exchanged — and lets the model, reading the chat, say which of them it would
rather write. A sentence whose contrast the model prefers by more than a margin is flagged: the model can tell
who did what when it reads a sentence far better than it keeps it straight while writing one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from device.engines.base import Engine

ContrastKind = Literal["negation", "participants", "roles"]
# Chosen on the tuning half of the planted set (lab/factcc.py, docs/experiments/meaning.md): the lowest margin whose
# false alarms on references as written stay under 10 %; taking off the model's preference with no chat to read
# (weight 1) raised the false alarms instead of lowering them.
DEFAULT_MARGIN = 2.0  # nats
DEFAULT_PRIOR_WEIGHT = 0.0
MOST_CONTRASTS = 12  # each costs the sentence's tokens once more; a big group chat could otherwise cost seconds

# Auxiliaries whose negation is a word away: "can" <-> "can't". Longer forms first, so "cannot" wins over "can".
_NEGATE = {
    "cannot": "can", "can't": "can", "can’t": "can", "can not": "can",
    "won't": "will", "won’t": "will", "will not": "will",
    "isn't": "is", "isn’t": "is", "is not": "is",
    "aren't": "are", "aren’t": "are", "are not": "are",
    "wasn't": "was", "wasn’t": "was", "was not": "was",
    "weren't": "were", "weren’t": "were", "were not": "were",
    "doesn't": "does", "doesn’t": "does", "does not": "does",
    "don't": "do", "don’t": "do", "do not": "do",
    "didn't": "did", "didn’t": "did", "did not": "did",
    "couldn't": "could", "couldn’t": "could", "could not": "could",
    "wouldn't": "would", "wouldn’t": "would", "would not": "would",
    "shouldn't": "should", "shouldn’t": "should", "should not": "should",
    "hasn't": "has", "hasn’t": "has", "has not": "has",
    "haven't": "have", "haven’t": "have", "have not": "have",
}
_AFFIRM = {"can": "can't", "will": "won't", "is": "isn't", "are": "aren't", "was": "wasn't", "were": "weren't",
           "could": "couldn't", "would": "wouldn't", "should": "shouldn't", "does": "doesn't", "did": "didn't"}
_NEG_RE = re.compile(r"\b(" + "|".join(sorted((re.escape(k) for k in _NEGATE), key=len, reverse=True)) + r")(?![\w'’])",
                     re.I)
_AFF_RE = re.compile(r"\b(" + "|".join(_AFFIRM) + r")\b(?!\s+not\b|n?['’]t\b)", re.I)
# A person's asking, telling, inviting, … verb: "Mum asks you to" <-> "You ask Mum to".
_ROLE_VERBS = ("ask", "tell", "invite", "remind", "want", "need", "offer", "owe", "pay", "give", "send", "lend",
               "help", "thank", "call", "text", "meet")
_THIRD = {v: (v + "es" if v.endswith(("s", "sh", "ch")) else v + "s") for v in _ROLE_VERBS}
_THIRD_BACK = {t: v for v, t in _THIRD.items()}


@dataclass(frozen=True)
class Contrast:
    text: str
    kind: ContrastKind


def _case_like(word: str, model: str) -> str:
    return word[:1].upper() + word[1:] if model[:1].isupper() else word


def negations(sentence: str) -> list[str]:
    """The sentence with each auxiliary's negation flipped, one at a time."""
    out = []
    for m in _NEG_RE.finditer(sentence):
        out.append(sentence[:m.start()] + _case_like(_NEGATE[m.group(1).lower()], m.group(1)) + sentence[m.end():])
    for m in _AFF_RE.finditer(sentence):
        out.append(sentence[:m.start()] + _case_like(_AFFIRM[m.group(1).lower()], m.group(1)) + sentence[m.end():])
    return out


def _name_pattern(name: str) -> re.Pattern:
    return re.compile(rf"(?<![\w#]){re.escape(name)}(?![\w#])")


def _joined(sentence: str, a: str, b: str) -> bool:
    """"A and B talk", "B, A": swapping them says the same thing, so it is no contrast."""
    join = r"\s*(?:,|&|\band\b|\bor\b|\bwith\b|\bnor\b)\s*"
    return any(re.search(re.escape(x) + join + re.escape(y), sentence) for x, y in ((a, b), (b, a)))


def participant_swaps(sentence: str, people: list[str]) -> list[str]:
    """Every pair of the chat's people that both occur in the sentence, swapped throughout it."""
    present = [p for p in dict.fromkeys(people) if p and _name_pattern(p).search(sentence)]
    out = []
    for i, a in enumerate(present):
        for b in present[i + 1:]:
            if a in b or b in a or _joined(sentence, a, b):
                continue
            marker = "\x00"
            text = _name_pattern(a).sub(marker, sentence)
            text = _name_pattern(b).sub(a, text).replace(marker, b)
            if text != sentence:
                out.append(text)
    return out


_YOU_ROLE = re.compile(r"\b(?P<name>[A-Z][\w'’#-]*(?: [A-Z][\w'’#-]*)?) (?P<verb>" + "|".join(_THIRD.values())
                       + r") you\b")
_ROLE_YOU = re.compile(r"\b(?P<you>[Yy]ou) (?P<verb>" + "|".join(_ROLE_VERBS) + r") (?P<name>[A-Z][\w'’#-]*"
                       r"(?: [A-Z][\w'’#-]*)?)")


def participant_replacements(sentence: str, people: list[str]) -> list[str]:
    """One of the chat's people in the sentence replaced throughout by another who is not in it."""
    present = [p for p in dict.fromkeys(people) if p and _name_pattern(p).search(sentence)]
    absent = [p for p in dict.fromkeys(people) if p and p not in present]
    return [_name_pattern(a).sub(b, sentence) for a in present for b in absent if a not in b and b not in a]


def role_swaps(sentence: str, people: list[str]) -> list[str]:
    """The asker and the asked exchanged between a person and the reader: "Mum asks you" <-> "You ask Mum"."""
    known = set(people)
    out = []
    for m in _YOU_ROLE.finditer(sentence):
        if m.group("name") in known:
            you = "You" if m.start() == 0 else "you"
            out.append(sentence[:m.start()] + f"{you} {_THIRD_BACK[m.group('verb')]} {m.group('name')}"
                       + sentence[m.end():])
    for m in _ROLE_YOU.finditer(sentence):
        if m.group("name") in known:
            out.append(sentence[:m.start()] + f"{m.group('name')} {_THIRD[m.group('verb')]} you"
                       + sentence[m.end():])
    return out


def contrasts(sentence: str, people: list[str], most: int = MOST_CONTRASTS) -> list[Contrast]:
    """The sentence's negation flips, its people replaced by others of the chat, and its people's roles exchanged
    (with each other, or with the reader), at most `most` of them (the closest first: flips, then exchanges)."""
    out: list[Contrast] = []
    seen = {sentence}
    for kind, texts in (("negation", negations(sentence)),
                        ("roles", participant_swaps(sentence, people) + role_swaps(sentence, people)),
                        ("participants", participant_replacements(sentence, people))):
        for text in texts:
            if text not in seen:
                seen.add(text)
                out.append(Contrast(text, kind))
    return out[:most]


_TELLING = (r"(?:asks?|asked|asking|tells?|told|telling|offers?|offered|offering|wants?|wanted|reminds?|reminded|"
            r"reminding|invites?|invited|inviting|informs?|informed|informing|needs?|needed|lets?|checks? with|"
            r"requests?|requested|requesting)")
_CONTACT = (r"texts?|texting|calls?|calling|messages?|messaging|emails?|emailing|rings?|ringing|phones?|lets?|"
            r"updates?|remind(?:s|ing)?|tells?|telling|get back to|gets back to|pay(?:s|ing)?|owes?")
_YOU_AGREE = {"was": "were", "is": "are", "has": "have", "does": "do", "doesn't": "don't", "wasn't": "weren't",
              "isn't": "aren't", "hasn't": "haven't"}


def to_the_reader(sentence: str, people: list[str]) -> str:
    """"Sofia asks if Sofia could …" -> "Sofia asks if you could …": in a summary written to the wearer, a person
    asking, telling or offering something to themselves is always a person doing so to the reader (the model
    copies the name the reported form put where the message said "I")."""
    for name in sorted({p for p in people if p and p.lower() != "you"}, key=len, reverse=True):
        n = re.escape(name)
        pattern = re.compile(rf"(?<![\w#])({n}(?:(?!(?<![\w#]){n}(?![\w#]))[^.?!;]){{0,80}}?\b{_TELLING}\b"
                             rf"(?:\s+(?:if|whether|that|to \w+))?\s+)(?<![\w#]){n}(?![\w#'’])")
        sentence = pattern.sub(lambda m: m.group(1) + "you", sentence)
        # "Juno asks you …; she will text Juno by 7": the sentence's subject getting in touch with themselves
        contact = re.compile(rf"(?<![\w#]){n}(?![\w#])(?P<mid>[^.?!]*?\b(?:{_CONTACT}))\s+{n}(?![\w#'’])")
        sentence = contact.sub(lambda m, who=name: who + m.group("mid") + " you", sentence)
    return re.sub(r"\byou (" + "|".join(map(re.escape, _YOU_AGREE)) + r")\b",
                  lambda m: "you " + _YOU_AGREE[m.group(1)], sentence)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"“‘'#])")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


@dataclass(frozen=True)
class SentenceCheck:
    sentence: str
    gap: float  # nats by which the likeliest contrast beats the sentence (negative: the sentence wins)
    preferred: Contrast | None  # that contrast
    flagged: bool


class MeaningCheck:
    """Scores each sentence and its contrasts as the model's answer to the prompt `prefix` (the summary prompt with
    the chat: its KV state is the one the summary was just generated from, so only the short continuations are
    read), and again under `prior` (the same prompt with no messages): what the model prefers with no chat to read
    — "#Person1# asks" over "#Person2# asks", a shorter wording over a longer one — is taken off, weighted by
    `prior_weight`, so that what is left is what the chat itself says."""

    def __init__(self, engine: Engine, margin: float = DEFAULT_MARGIN, prior_weight: float = DEFAULT_PRIOR_WEIGHT):
        self.engine, self.margin, self.prior_weight = engine, margin, prior_weight

    def _deltas(self, prefix: list[int], sentence: str, options: list[Contrast]) -> list[float]:
        """log P(contrast) - log P(sentence), for each contrast, after `prefix`."""
        scored = self.engine.continuation_logprobs(
            prefix, [self.engine.tokenize(sentence)] + [self.engine.tokenize(c.text) for c in options])
        own, *others = (sum(lps) for lps in scored)
        return [o - own for o in others]

    def deltas(self, prefix: list[int], prior: list[int] | None, sentences: list[str],
               people: list[str]) -> list[tuple[list[Contrast], list[float], list[float]]]:
        """Each sentence's contrasts, their deltas after the chat and after the prior prompt (empty without one).
        All sentences are read after the chat first, then after the prior prompt: the engine holds one prompt's
        KV state at a time, and the chat's is the long one."""
        options = [contrasts(s, people) for s in sentences]
        with_chat = [self._deltas(prefix, s, o) if o else [] for s, o in zip(sentences, options, strict=True)]
        without = [self._deltas(prior, s, o) if o and prior is not None and self.prior_weight else [0.0] * len(o)
                   for s, o in zip(sentences, options, strict=True)]
        return list(zip(options, with_chat, without, strict=True))

    def verdict(self, sentence: str, options: list[Contrast], with_chat: list[float],
                without: list[float]) -> SentenceCheck:
        if not options:
            return SentenceCheck(sentence, float("-inf"), None, False)
        gaps = [d - self.prior_weight * p for d, p in zip(with_chat, without, strict=True)]
        best = max(range(len(gaps)), key=gaps.__getitem__)
        return SentenceCheck(sentence, gaps[best], options[best], gaps[best] > self.margin)

    def check(self, prefix: list[int], prior: list[int] | None, sentences: list[str],
              people: list[str]) -> list[SentenceCheck]:
        return [self.verdict(s, *scored) for s, scored in
                zip(sentences, self.deltas(prefix, prior, sentences, people), strict=True)]
