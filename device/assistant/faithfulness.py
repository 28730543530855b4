"""Is a summary supported by its chat? Names, numbers, times, dates and places in the summary must occur in it.

A span the messages do not contain is a hallucination the wearer could act on ("dinner at 9" when Marco said 8),
so the assistant checks every summary before showing it (see `Assistant.catch_up`), and the evaluation reports the
share of summaries with at least one unsupported span. The check is lexical and deliberately simple: it can miss a
wrong claim built from supported words, and it counts a correct paraphrase of a number ("a couple") as nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from device.messages.words import AMOUNT_WORDS, MONTHS, NOT_A_NAME, WEEKDAY_ABBREVIATIONS, WEEKDAYS

_WEEKDAY_ABBREVIATIONS = frozenset(WEEKDAY_ABBREVIATIONS)

_TIME = re.compile(r"\b(\d{1,2})(?:[:.](\d{2}))?\s*(a\.?m\.?|p\.?m\.?)(?![a-z])|\b(\d{1,2})[:.](\d{2})\b", re.I)
_NUMBER = re.compile(r"(?<![\w.])[£$€]?\d+(?:[.,]\d+)*%?")
_WORD = re.compile(r"[A-Za-z][A-Za-z'’\-]*")
_ORDINAL = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)\b", re.I)


@dataclass(frozen=True)
class Span:
    text: str
    kind: str  # "name" | "number" | "time" | "date"


def _times(text: str) -> set[tuple[int, int]]:
    """Clock times as (hour 0-23, minute); an hour with am/pm is exact, 20:00 too."""
    out = set()
    for m in _TIME.finditer(text):
        if m.group(3):
            h, mins = int(m.group(1)) % 12, int(m.group(2) or 0)
            out.add((h + (12 if m.group(3).lower().startswith("p") else 0), mins))
        else:
            out.add((int(m.group(4)), int(m.group(5))))
    return out


def _numbers(text: str) -> set[float]:
    out: set[float] = set()
    for m in _NUMBER.finditer(_TIME.sub(" ", text)):
        raw = m.group(0).strip("£$€%").replace(",", "")
        try:
            out.add(float(raw))
        except ValueError:
            continue
    low = text.lower()
    out |= {float(v) for w, v in AMOUNT_WORDS.items() if re.search(rf"\b{w}\b", low)}
    for m in _TIME.finditer(text):  # "at 8pm" also supports a bare "8"
        out.add(float(m.group(1) or m.group(4)))
    return out


def _words(text: str) -> set[str]:
    return {w.lower().rstrip("'’").removesuffix("'s").removesuffix("’s") for w in _WORD.findall(text.replace("#", " "))}


@lru_cache(maxsize=1)
def _name_lists():
    """First names, surnames and places from the PII gazetteers (the `pii` extra), or None without it."""
    try:
        from device.privacy.pii import gazetteers

        g = gazetteers()
    except RuntimeError:
        return None
    return g.first_names | g.last_names | g.places


@lru_cache(maxsize=1)
def _first_names() -> frozenset[str]:
    try:
        from device.privacy.pii import gazetteers

        return frozenset(gazetteers().first_names)
    except RuntimeError:
        return frozenset()


def first_name(low: str) -> bool:
    """Whether a word is a person's first name (the PII gazetteers'; without them, none is known)."""
    return low in _first_names()


def known_name(low: str) -> bool:
    """Whether a capitalised sentence-initial word is a person or place name. Without the gazetteers, no: the
    check then misses a made-up name that starts a sentence rather than flag every capitalised first word."""
    names = _name_lists()
    return names is not None and low in names


def claimed_spans(summary: str) -> list[Span]:
    """The checkable claims of a summary: clock times, numbers, weekdays/months/ordinal days, and names."""
    spans: list[Span] = []
    for m in _TIME.finditer(summary):
        spans.append(Span(m.group(0).rstrip("."), "time"))
    rest = _TIME.sub(" ", summary)
    for m in _ORDINAL.finditer(rest):
        spans.append(Span(m.group(0), "date"))
    rest = _ORDINAL.sub(" ", rest)
    for m in _NUMBER.finditer(rest):
        spans.append(Span(m.group(0), "number"))
    clean = summary.replace("#", " ")
    for sentence in re.split(r"(?<=[.!?:;])\s+|\n+", clean):
        for i, m in enumerate(_WORD.finditer(sentence)):
            word = m.group(0).rstrip("'’")
            base = re.sub(r"['’](s|re|ve|ll|d|m|t)$", "", word)
            low = base.lower()
            if not base[:1].isupper() or re.match(r"^[A-Za-z]-", base):  # "may", "T-shirt": no claim
                continue
            if low in WEEKDAYS or low in MONTHS or low[:3] in _WEEKDAY_ABBREVIATIONS and len(low) == 3:
                spans.append(Span(base, "date"))
            # a capitalised word in NOT_A_NAME is no claim; a sentence-initial one outside it counts as a name only if
            # the chat does not have it (in any case): see `unsupported`
            elif low not in NOT_A_NAME and (i > 0 or not low.endswith(("ing", "ed", "ly"))):
                spans.append(Span(base, "name" if i > 0 else "name?"))
    return spans


def unsupported(summary: str, source: str) -> list[Span]:
    """The claims in `summary` that `source` (the chat, with its header) does not contain."""
    words = _words(source)
    times = _times(source)
    numbers = _numbers(source)
    days = {int(m.group(1)) for m in _ORDINAL.finditer(source)} | {int(n) for n in numbers if n == int(n)}
    weekday_abbr = {w[:3] for w in words if w[:3] in _WEEKDAY_ABBREVIATIONS}
    out: list[Span] = []
    for span in claimed_spans(summary):
        if span.kind == "time":
            have = _times(span.text)
            # "8pm" is supported by "20:00" or by "8pm"; "8:00" (no am/pm) by either 8:00 or 20:00
            ok = have <= times or all((h % 12, m) in {(t % 12, n) for t, n in times} for h, m in have)
        elif span.kind == "number":
            ok = _numbers(span.text) <= numbers
        elif span.kind == "date":
            low = span.text.lower()
            if _ORDINAL.fullmatch(low):
                ok = int(_ORDINAL.fullmatch(low).group(1)) in days
            else:
                ok = low in words or low[:3] in weekday_abbr
        elif span.kind == "name?":  # sentence-initial: "Dinner is…" is no claim; "Priya is…" is
            low = span.text.lower()
            ok = low in words or not known_name(low)
        else:
            ok = span.text.lower() in words
        if not ok:
            out.append(Span(span.text, "name" if span.kind == "name?" else span.kind))
    return out
