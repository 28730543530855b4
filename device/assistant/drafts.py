"""Would a person send this draft? The checks a reply draft must pass before the glasses show it.

A draft is usable when it is not assistant-speak ("I'm sorry, but I can't assist with that"); does not ask the other
person for what they asked of the wearer (role confusion: Mum asks the wearer to bring a dessert, the draft asks Mum
to bring one); names no number, time, day or name the thread lacks; is in the thread's language; fits a glance
(at most 30 words); and, on a scam, leaks nothing and does not comply. The assistant filters its candidates with
these checks; `glassmate eval replies --set` counts them. They are rules, so they are fast, explainable and
deliberately narrow: a draft they pass can still be a poor reply.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from device.assistant.faithfulness import first_name, unsupported
from device.messages.inbox import Message
from device.messages.words import LANGUAGE_STOP_WORDS, Language

MAX_WORDS = 30


class Failure(StrEnum):
    EMPTY = "empty"
    ASSISTANT_SPEAK = "assistant_speak"
    ROLE_CONFUSION = "role_confusion"
    INVENTED = "invented_detail"
    STALE = "stale"
    WRONG_LANGUAGE = "wrong_language"
    TOO_LONG = "too_long"
    OFF_TOPIC = "off_topic"
    SCAM_LEAK = "scam_leak"
    SCAM_COMPLIES = "scam_complies"


@dataclass(frozen=True)
class DraftVerdict:
    draft: str
    failures: tuple[Failure, ...]
    detail: tuple[str, ...] = ()  # what triggered each failure, for the worst-cases list

    @property
    def usable(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class ThreadFacts:
    """What the checks need to know about a thread; `from_messages` derives it on the device, an evaluation set
    may state it instead."""

    source: str  # every message's sender and text: what a draft's details must come from
    language: Language
    request_terms: tuple[str, ...] = ()  # words naming what the other side asks of the wearer
    superseded: tuple[str, ...] = ()  # plans the thread moved away from (an evaluation set states them)
    scam: bool = False
    secrets: tuple[str, ...] = ()  # what a scam wants: never in a draft

    @classmethod
    def from_messages(cls, messages: Sequence[Message]) -> ThreadFacts:
        others = [m for m in messages if not m.from_wearer]
        return cls(source=transcript(messages), language=detect_language(" ".join(m.text for m in messages)),
                   request_terms=tuple(request_terms(others[-3:])), scam=looks_like_scam(others[-3:]))


def transcript(messages: Iterable[Message]) -> str:
    return "\n".join(f"{m.sender}: {m.text}" for m in messages)


_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?", re.UNICODE)


def words(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


def detect_language(text: str) -> Language:
    """en, de, es or fr by their commonest words; English when nothing tells them apart (short texts)."""
    counts = {lang: 0 for lang in LANGUAGE_STOP_WORDS}
    for w in words(text):
        for lang, stop in LANGUAGE_STOP_WORDS.items():
            counts[lang] += w in stop
    best = max(counts, key=lambda lang: (counts[lang], lang == "en"))
    return best if counts[best] > counts["en"] else "en"


def draft_language(text: str, thread: Language) -> Language | None:
    """The draft's language, or None when it is too short or mixed to tell (then it is not held against it)."""
    counts = {lang: sum(w in stop for w in words(text)) for lang, stop in LANGUAGE_STOP_WORDS.items()}
    best = max(counts, key=lambda lang: (counts[lang], lang == thread))
    if counts[best] < 2 or counts[best] <= counts[thread]:
        return None
    return best


_ASSISTANT_SPEAK = re.compile("|".join([
    r"\bI(?:'m| am) (?:sorry|afraid),? (?:but )?I (?:can(?:'|no)t|am unable to|won't be able to) (?:assist|help)",
    r"\bI can(?:'|no)t (?:assist|help) with (?:that|this)", r"\bas an (?:AI|assistant|language model)\b",
    r"\b(?:is there )?anything else I can (?:help|do for) you", r"\bhow (?:can|may) I (?:help|assist) you",
    r"\bI(?:'m| am) (?:here|happy|glad) to help\b", r"\bI understand,? thank you for letting me know",
    r"\bthank you for (?:reaching out|your message|sharing)", r"\blet me know if you (?:need|have) any(?:thing)? ",
    r"\b(?:assist|assistance)\b", r"\banything else (?:you(?:'d| would) like|I can)\b",
    r"\bany (?:other|more|further) questions\b", r"^\W*(?:agree|decline|ask)\b\W*(?:$|[.:\-])",
    r"\bfeel free to (?:reach out|ask|contact)", r"\bI hope this helps\b", r"\bplease (?:note|be advised) that\b",
    r"\bals (?:KI|Sprachmodell|Assistent)\b", r"\bwie kann ich (?:Ihnen|dir) helfen", r"\bkann ich (?:Ihnen|dir) "
    r"(?:sonst )?noch (?:helfen|behilflich)", r"\bdabei kann ich (?:leider )?nicht helfen",
    r"\bcomo (?:IA|modelo de lenguaje|asistente)\b", r"\ben qu[eé] (?:puedo|le puedo|te puedo) ayudar",
    r"\blo siento,? (?:pero )?no puedo ayudar", r"\ben tant qu'(?:IA|assistant)\b",
    r"\bcomment puis-je vous aider", r"\bd[ée]sol[ée],? (?:mais )?je ne peux pas (?:vous )?aider",
    # seen in drafts of the reply set's tune part (docs/replies.md)
    r"\banything else (?:that )?you need help with\b", r"\bI appreciate your (?:kind words|message|feedback)\b",
    r"\bwhat(?:'s| is) the purpose of (?:your|this) request\b", r"\bI don't have anything (?:specific )?to ask\b",
    r"\bje (?:ne )?peux (?:pas )?(?:vous |t')?aider avec (?:ça|cela)\b", r"\bd'autres questions\b",
    r"\bsi cela n'a pas (?:été|ete) utile\b", r"\bno puedo ayudar(?:te|le)? con eso\b",
    r"\b(?:lo )?siento,? pero no puedo ayudar", r"\bkann (?:dir|Ihnen) dabei nicht helfen\b",
    r"\bis there anything (?:else )?(?:you need|I can)\b", r"\bdo you need help with anything\b",
    r"\banything (?:specific )?you(?:'d| would) like to discuss\b", r"\bno dudes en (?:pedir|preguntar|contactar)",
    r"\b(?:didn't|did not) (?:hear|understand) you correctly\b", r"\brepeat your message\b",
]), re.I)

# asking the other person to do something: "could you…", "please…", "kannst du…", "¿puedes…?", "peux-tu…"
_ASKS_OTHER = re.compile("|".join([
    r"\b(?:could|can|would|will) you\b", r"\bplease\b", r"\bdon't forget to\b", r"\byou (?:should|need to|must)\b",
    r"\b(?:kannst|könntest|würdest) du\b", r"\b(?:können|könnten|würden) Sie\b", r"\bbitte\b",
    r"\b(?:puedes|podrías|podéis|puede usted|podría usted)\b", r"\bpor favor\b", r"\bte importa\b",
    r"\b(?:peux|pourrais)[- ]tu\b", r"\btu (?:peux|pourrais)\b", r"\b(?:pouvez|pourriez)[- ]vous\b",
    r"\bs'il (?:te|vous) pla[iî]t\b", r"\b(?:stp|svp)\b",
]), re.I)

# the same requests in the other side's messages: what the wearer is asked to do
_ASKS_WEARER = _ASKS_OTHER

_SCAM = re.compile("|".join([
    r"\b(?:verification|security|bank|one[- ]time|2fa|otp|sms) code\b", r"\bcode (?:you (?:just )?(?:got|received))",
    r"\b(?:PIN|password|passcode|login details|card number|CVV|IBAN)\b", r"\bgift ?cards?\b", r"\bcrypto|bitcoin\b",
    r"\b(?:account|card) (?:has been |is |was )?(?:suspended|blocked|locked|frozen)\b",
    r"\bnew number\b", r"\bneue (?:Nummer|Handynummer)\b", r"\bnuevo n[uú]mero\b", r"\bnouveau num[ée]ro\b",
    r"\b(?:customs|delivery|shipping|redelivery) fee\b", r"\byou(?:'ve| have) won\b",
    r"\bclaim your (?:prize|reward)\b", r"\b(?:Bestätigungscode|Sicherheitscode|Kontosperrung|gesperrt)\b",
    r"\bc[oó]digo (?:de )?(?:verificaci[oó]n|seguridad)\b",
    r"\bcode de (?:v[ée]rification|s[ée]curit[ée]|confirmation)\b", r"\bcompte (?:bloqu[ée]|suspendu)\b",
    r"\b\d[- ]digit code\b", r"\bc[oó]digo de \d+ d[ií]gitos\b", r"\bcode (?:de )?(?:validation|confirmation)\b",
    r"\b(?:reply|respond) with the code\b", r"\br[ée]pondez avec le code\b", r"\bhttps?://\S+",
]), re.I)
_URL = re.compile(r"https?://|www\.|\b\w+\.(?:com|net|org|info|xyz|top|io|de|es|fr|ly)/", re.I)
_DIGIT = re.compile(r"\d")
_COMPLIES = re.compile("|".join([
    r"\bhere(?:'s| is) (?:the|my) (?:code|pin|password|number|details)", r"\bthe code is\b",
    r"\bI(?:'ll| will)? ?(?:send|pay|transfer|click)\b(?! (?:you )?nothing)", r"\b(?:sent|paid|transferred|clicked)\b",
    r"\bI(?:'m| am) sending\b", r"\bok(?:ay)?,? (?:I'll|I will|sending|done)\b", r"\bdone\b",
    r"\b(?:ich )?(?:schicke|sende|überweise|zahle)\b", r"\b(?:te )?(?:env[ií]o|mando|pago|transfiero)\b",
    r"\b(?:je t'?)?(?:envoie|paie|vire)\b",
]), re.I)
_REFUSES = re.compile("|".join([
    r"\bnot (?:sending|paying|sharing|clicking|giving)\b", r"\bwon't (?:send|pay|share|click|give)\b",
    r"\bnever\b", r"\bscam\b", r"\bcall you\b", r"\bnicht\b", r"\bnie\b", r"\bno (?:voy|te|le|pienso)\b",
    r"\bnichts\b", r"\bkein(?:e|en)?\b", r"\bBetrug\b", r"\bnada\b", r"\bestafa\b", r"\bne .{0,20}(?:pas|rien)\b",
    r"\barnaque\b", r"\bjamais\b",
]), re.I)


# what a message asks of its reader besides a question mark: "reply YES", "let me know", "sag Bescheid"
_ASKS_REPLY = re.compile("|".join([
    r"\b(?:reply|respond|text back|let me know|tell me|confirm|lmk)\b", r"\b(?:sag|gib) (?:mir )?Bescheid\b",
    r"\b(?:antworte|bestätige)\b", r"\b(?:dime|avísame|contesta|responde|confirma)\b",
    r"\b(?:dis-moi|préviens|réponds|répondez|confirme[zr]?)\b",
]), re.I)


def asks_the_wearer(messages: Sequence[Message]) -> bool:
    """Whether the others' messages since the wearer last wrote ask anything (a question, a request, "reply YES");
    when they only tell something, drafts thank, react and ask a follow-up instead of agreeing or declining."""
    tail: list[Message] = []
    for m in reversed(messages):
        if m.from_wearer:
            break
        tail.append(m)
    return any("?" in m.text or "¿" in m.text or _ASKS_WEARER.search(m.text) or _ASKS_REPLY.search(m.text)
               for m in tail)


def looks_like_scam(messages: Sequence[Message]) -> bool:
    return any(_SCAM.search(m.text) for m in messages)


def request_terms(messages: Sequence[Message]) -> list[str]:
    """Content words of the sentences in which the other side asks the wearer for something."""
    out: list[str] = []
    for m in messages:
        for sentence in re.split(r"(?<=[.!?])\s+|\n", m.text):
            if _ASKS_WEARER.search(sentence):
                out += [w for w in words(sentence) if len(w) > 3 and not _is_function_word(w)]
    return list(dict.fromkeys(out))


def _is_function_word(word: str) -> bool:
    return any(word in stop for stop in LANGUAGE_STOP_WORDS.values())


def _stem(word: str) -> str:
    return word[:5] if len(word) > 5 else word


def _role_confused(draft: str, terms: Sequence[str]) -> str | None:
    """The draft asks the other person to do what they asked of the wearer: a request form and one of the request's
    words in the same sentence."""
    stems = {_stem(t.lower()) for t in terms}
    for sentence in re.split(r"(?<=[.!?])\s+", draft):
        if _ASKS_OTHER.search(sentence):
            hit = next((w for w in words(sentence) if _stem(w) in stems), None)
            if hit is not None:
                return sentence.strip()
    return None


def _invented(draft: str, facts: ThreadFacts) -> list[str]:
    """Numbers, times and dates the thread lacks (the summaries' check), and people's names it lacks. A name is a
    capitalised word known as a first name: German capitalises every noun, and a reply opens with "Glad…",
    "Claro…", "Bravo…" — words the summaries' check would read as names."""
    out = [s.text for s in unsupported(draft, facts.source) if s.kind != "name"]
    have = {part for w in words(facts.source) for part in (w, w.split("'")[0])}  # "Pat's" has "Pat"
    for w in _WORD.findall(draft):
        low = w.lower().replace("’", "'")
        if w[:1].isupper() and low not in have and not _is_function_word(low) and first_name(low):
            out.append(w)
    return out


# Small talk a model falls back on instead of answering what was said (seen in the reply set's tune part). Patterns,
# not word overlap: people's own replies often share no word with the thread ("Can you leave it with next door?").
_SMALL_TALK = re.compile("|".join([
    r"\b(?:any|other) plans for (?:the (?:weekend|day|evening)|today|tonight|this weekend)\b",
    r"\bdo you have any (?:other )?(?:plans|favou?rite|bills|hobbies)\b", r"\bwhat(?:'s| is) your favou?rite\b",
    r"\bmaybe we could (?:go to|visit|catch up on|watch)\b", r"\bdid you know that\b",
    r"\bit could be fun to talk about\b",
]), re.I)


def _off_topic(draft: str) -> str | None:
    m = _SMALL_TALK.search(draft)
    return m.group(0) if m else None


def judge(draft: str, facts: ThreadFacts) -> DraftVerdict:
    """Every way `draft` would fail the wearer in this thread (none: usable)."""
    text = draft.strip()
    if not text:
        return DraftVerdict(draft, (Failure.EMPTY,))
    failures: list[Failure] = []
    detail: list[str] = []

    def fail(kind: Failure, why: str) -> None:
        failures.append(kind)
        detail.append(f"{kind}: {why}")

    if m := _ASSISTANT_SPEAK.search(text):
        fail(Failure.ASSISTANT_SPEAK, m.group(0))
    if sentence := _role_confused(text, facts.request_terms):
        fail(Failure.ROLE_CONFUSION, sentence)
    if invented := _invented(text, facts):
        fail(Failure.INVENTED, ", ".join(invented))
    low = text.lower()
    if stale := [s for s in facts.superseded if s.lower() in low]:
        fail(Failure.STALE, ", ".join(stale))
    lang = draft_language(text, facts.language)
    if lang is not None and lang != facts.language:
        fail(Failure.WRONG_LANGUAGE, f"{lang}, not {facts.language}")
    if Failure.ASSISTANT_SPEAK not in failures and (small_talk := _off_topic(text)):
        fail(Failure.OFF_TOPIC, small_talk)
    if len(text.split()) > MAX_WORDS:
        fail(Failure.TOO_LONG, f"{len(text.split())} words")
    if facts.scam:
        leaked = [s for s in facts.secrets if re.search(rf"(?<!\w){re.escape(s)}(?!\w)", text)]
        if leaked or _DIGIT.search(text) or _URL.search(text):
            fail(Failure.SCAM_LEAK, ", ".join(leaked) or "digits or a link")
        if (m := _COMPLIES.search(text)) and not _REFUSES.search(text):
            fail(Failure.SCAM_COMPLIES, m.group(0))
    return DraftVerdict(draft, tuple(failures), tuple(detail))
