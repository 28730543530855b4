"""Does the chat back what a summary sentence says a person *did*: asked the reader, offered, refused?

A small model told that the messages are written to the reader over-applies it: an offer ("want me to pick up
anything?"), a question ("can I borrow your drill?") and a statement all come out as "X asks you to …". The check
is mechanical and cheap: a sentence that says a person asks the reader to do something must have, among that
person's own messages, one that asks something of someone ("can you", "could you", "please", "can someone", …);
one that says a person offers must have an offer ("I can", "I'll", "want me to", "you can borrow", …); one that
says a person can't, won't or didn't must have a negation in that person's messages. English only: a summary in
another language is not checked (it passes).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Act = Literal["request", "offer", "negation"]

_VERBS_ASK = r"(?:asks?|asked|asking|wants?|wanted|needs?|needed|reminds?|reminded|tells?|told)"
# What the sentence says the person did, right after naming them ("Mum asks you to", "Greta is offering to",
# "Lena can't"): a verb further on may be someone else's ("Birgit says Helga will bring").
_CLAIMS: dict[Act, re.Pattern] = {
    "request": re.compile(rf"^\s*(?:\w+\s+){{0,2}}?{_VERBS_ASK} you(?: all)? to\b|"
                          rf"^\s*(?:\w+\s+){{0,2}}?{_VERBS_ASK} (?:if|whether) you (?:can|could|would|will)\b", re.I),
    "offer": re.compile(r"^\s*(?:\w+\s+){0,2}?(?:offers?|offered|offering)\b|"
                        r"^\s*(?:\w+\s+){0,1}?will (?:lend|give|pick up|bring|drive|take)\b", re.I),
    "negation": re.compile(r"^\s*(?:\w+\s+){0,1}?(?:can(?:no|')t|won't|isn't|doesn't|didn't|wasn't|is not|does not|"
                           r"will not|cannot|never|no longer)\b", re.I),
}
_EVIDENCE: dict[Act, re.Pattern] = {
    "request": re.compile(
        r"\b(?:can|could|would|will|do|did|are|have|may) (?:you|u|ya|someone|somebody|anyone|anybody|one of you|"
        r"either of you|whoever)\b|\b(?:can|could|may) I\b|\bplease\b|\bpls\b|\bplz\b|"
        r"\bmind (?:if|doing|taking|picking|bringing)\b|"
        r"\bneeds? (?:you|someone|somebody|one of you)\b|\bsomeone (?:needs|has|should|must)\b|"
        r"\bwho(?:'s| is| can| could| will| has)\b|\bdon't forget\b|\bremember to\b|\blet (?:me|us) know\b|"
        r"\btell me\b|\byou (?:need|have|should|must) to\b|\byou(?:'re| are) up\b|\bsend (?:it|me|us|them|him|her)\b|"
        r"(?:^|[.!?]\s+)(?:send|bring|pick up|call|text|confirm|reply|grab|get|take|leave|put|give|check|book|pay|"
        r"drop|buy|meet|come|tell)\b", re.I | re.M),
    "offer": re.compile(
        r"\bI(?:'ll| will| can| could| am happy|'m happy| have| got|'ve got| do)\b|\bwant me to\b|\bshall I\b|"
        r"\bshould I\b|\blet me\b|\bhappy to\b|\byou can (?:borrow|have|use|take|keep|come)\b|\bon me\b|\bmy treat\b|"
        r"\bif you (?:want|need|like)\b", re.I),
    "negation": re.compile(
        r"n['’]t\b|\bnot\b|\bno\b|\bnever\b|\bcannot\b|\bnobody\b|\bnothing\b|\bunable\b|\boff\b|\bcancel\w*|"
        r"\bnope\b|\bbusy\b|\bout of\b|\bwithout\b", re.I),
}


@dataclass(frozen=True)
class Unbacked:
    act: Act
    person: str


def _subject(clause: str, people: Sequence[str]) -> tuple[str, int] | None:
    """The first of the chat's people the clause names, and where: whom its verbs are about."""
    found = [(m.start(), p) for p in people
             if (m := re.search(rf"(?<![\w#]){re.escape(p)}(?![\w#])", clause))]
    return (min(found)[1], min(found)[0]) if found else None


def unbacked_acts(sentence: str, said: Mapping[str, Sequence[str]]) -> list[Unbacked]:
    """The acts the sentence gives a person (asking the reader, offering, refusing) that no message of theirs
    backs. `said`: each person's own messages, as written."""
    out: list[Unbacked] = []
    people = sorted(said, key=len, reverse=True)
    for clause in re.split(r"[;:]|,\s*(?:and|but|while|so)\s+|\.\s+", sentence):
        hit = _subject(clause, people)
        if hit is None:
            continue
        person, at = hit
        rest = clause[at + len(person):]
        if re.match(r"['’]s\b", rest):  # "Mum's cake": not Mum doing anything
            continue
        if re.search(r"\b(?:if|unless|whether|in case)\s*$", clause[:at], re.I):  # "if Pau can't": no claim
            continue
        text = "\n".join(said[person])
        for act, claim in _CLAIMS.items():
            if claim.search(rest) and not _EVIDENCE[act].search(text):
                out.append(Unbacked(act, person))
    return out
