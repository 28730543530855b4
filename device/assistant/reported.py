"""Chat messages in reported form, so the model reads who is who instead of guessing it from "I" and "you".

A small model summarizing "Sofia: Could you take in my parcel?" writes "Sofia will take in your parcel"; given
"Sofia: Could you take in Sofia's parcel?" it has no "my" to resolve. Each English message from another person has
its first person replaced by the sender's name ("I'm at work" -> "Sofia is at work", "with me" -> "with Dev"), and
each of the wearer's own messages is put in the second person ("I can't" -> "you can't"), since the summary speaks
to the wearer as "you". The rewrite is mechanical: it adds no word that is not a name of the chat or a form of
"be"/"have"/"do", so it cannot invent a fact, and text in other languages is left as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Contractions and "be"/"have"/"do" after I, for the sender (third person) and for the wearer (second person).
_FORMS: dict[str, tuple[str, str]] = {
    "i'm": ("is", "are"), "i am": ("is", "are"), "i've": ("has", "have"), "i have": ("has", "have"),
    "i'll": ("will", "will"), "i'd": ("would", "would"), "i was": ("was", "were"), "i do": ("does", "do"),
    "i don't": ("doesn't", "don't"), "i haven't": ("hasn't", "haven't"), "i'm not": ("is not", "are not"),
    "i am not": ("is not", "are not"), "i go": ("goes", "go"), "i wasn't": ("wasn't", "weren't"),
}
_MODALS = {"can", "can't", "cannot", "could", "couldn't", "will", "won't", "would", "wouldn't", "should",
           "shouldn't", "must", "might", "may", "did", "didn't", "had", "hadn't"}
_ADVERBS = {"just", "also", "only", "still", "already", "never", "always", "really", "actually", "probably",
            "definitely", "honestly", "even", "totally", "usually", "sometimes", "often"}
_FORM_RE = re.compile(r"\b(" + "|".join(sorted((re.escape(k) for k in _FORMS), key=len, reverse=True))
                      + r")\b", re.I)
_I_VERB = re.compile(r"\b[Ii]((?:\s+(?:" + "|".join(_ADVERBS) + r"))*)\s+([a-z]+)\b")
_OBJECT = re.compile(r"\b(me|myself)\b", re.I)
_POSSESSIVE = re.compile(r"\b(my|mine)\b", re.I)
_BARE_I = re.compile(r"\b[Ii]\b(?![.'])")


def _third_person(verb: str) -> str:
    if verb.endswith(("s", "sh", "ch", "x", "o", "z")):
        return verb + "es"
    if len(verb) > 2 and verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _verb(verb: str, third: bool) -> str:
    """The verb after I, as it reads after a name (third) or after "you"."""
    if not third or verb in _MODALS or (verb.endswith("ed") and not verb.endswith("eed")):
        return verb
    return {"have": "has", "do": "does", "go": "goes", "am": "is"}.get(verb, _third_person(verb))


def _normalise_quotes(text: str) -> str:
    return text.replace("’", "'")


def as_sender(text: str, name: str) -> str:
    """Another person's message with its first person replaced by their name."""
    text = _normalise_quotes(text)
    text = _FORM_RE.sub(lambda m: f"{name} {_FORMS[m.group(1).lower()][0]}", text)
    text = _I_VERB.sub(lambda m: f"{name}{m.group(1)} {_verb(m.group(2), True)}", text)
    text = _BARE_I.sub(name, text)
    text = _OBJECT.sub(name, text)
    return _POSSESSIVE.sub(f"{name}'s", text)


def as_wearer(text: str, other: str | None) -> str:
    """The wearer's own message in the second person; "you" in it is the other person of a one-to-one chat."""
    text = _normalise_quotes(text)
    if other:
        text = re.sub(r"\byour\b", f"{other}'s", text, flags=re.I)
        text = re.sub(r"\byou\b", other, text, flags=re.I)
    text = _FORM_RE.sub(lambda m: f"you {_FORMS[m.group(1).lower()][1]}", text)
    text = _BARE_I.sub("you", text)
    text = re.sub(r"\bmyself\b", "yourself", text, flags=re.I)
    text = re.sub(r"\bme\b", "you", text, flags=re.I)
    text = re.sub(r"\bmine\b", "yours", text, flags=re.I)
    return re.sub(r"\bmy\b", "your", text, flags=re.I)


_SENTENCE = re.compile(r"(?<=[.!?])\s+")
# "Mum: …" in a summary: the model quoting a message under its sender's name
_LABEL = re.compile(r"(?:^|(?<=[\s·(\"“]))([A-Z][\w'’.-]*(?: [A-Z][\w'’.-]*)?):\s")


@dataclass(frozen=True)
class Quoted:
    """One sentence of a message as the model read it (`reported`) and as it was written (`original`)."""

    speaker: str  # the label the model read before it ("You" for the wearer)
    original: str
    reported: str


def quoted_sentences(speaker: str, original: str, reported_text: str) -> list[Quoted]:
    """The sentences the reported form changed, paired with what was written; a message whose rewrite changed
    its number of sentences pairs nothing (no sentence could be matched to its source)."""
    written, read = _SENTENCE.split(original.strip()), _SENTENCE.split(reported_text.strip())
    if len(written) != len(read):
        return []
    return [Quoted(speaker, w, r) for w, r in zip(written, read, strict=True) if w != r]


def restore_quotes(summary: str, quoted: list[Quoted]) -> str:
    """A sentence the model copied from the reported form, under its speaker's label ("Mum: Can you call Mum
    when you land?"), goes back to the words the speaker wrote ("Mum: Can you call me when you land?"): a quote
    shows what was said, and the reported form is only how the model was helped to read it."""
    for q in sorted(quoted, key=lambda q: len(q.reported), reverse=True):
        body = q.reported.rstrip(".!?")
        if len(body.split()) < 2:
            continue
        start = 0
        while (at := summary.find(body, start)) >= 0:
            labels = list(_LABEL.finditer(summary, 0, at))
            if labels and labels[-1].group(1) == q.speaker:
                written = q.original.rstrip(".!?")
                summary = summary[:at] + written + summary[at + len(body):]
                start = at + len(written)
            else:
                start = at + len(body)
    return summary
