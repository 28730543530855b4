"""Day words → dates: "Friday" in a message means the Friday after it was written, not the Friday after today.

An answer copied from a message ("Friday at 8pm") is spoken with its date ("Friday 27 November at 8pm"), resolved
against the time that message was sent. Deterministic: the model is never asked to do calendar arithmetic.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from device.messages.words import MONTH_ABBREVIATIONS, RELATIVE_DAYS, WEEKDAYS

_DAY = re.compile(
    r"\b(?:(?P<mod>this|next|last|on)\s+)?(?P<day>" + "|".join(WEEKDAYS + tuple(RELATIVE_DAYS)) + r")\b"
    r"(?P<dated>,?\s+(?:the\s+)?\d{1,2}(?:st\b|nd\b|rd\b|th\b|/\d|\s+(?:" + "|".join(MONTH_ABBREVIATIONS)
    + r")[a-z]*\b))?",
    re.IGNORECASE)


def day_offset(word: str, modifier: str | None, said_at: datetime) -> int:
    """Days from the day `said_at` falls on to the day `modifier word` means."""
    word, modifier = word.lower(), (modifier or "").lower()
    if word in RELATIVE_DAYS:
        return RELATIVE_DAYS[word]
    ahead = (WEEKDAYS.index(word) - said_at.weekday()) % 7
    if modifier == "last":
        return ahead - 7 if ahead else -7
    if ahead == 0 and modifier != "this":
        return 7  # "Friday" written on a Friday is next week's: today would be "today" or "tonight"
    return ahead


def resolve_day_words(text: str, said_at: datetime) -> str:
    """Each day word that has no date after it gets one: "Friday at 8pm" said on Sat 21 Nov → "Friday 27 November
    at 8pm"; "tomorrow" said on Thu 26 Nov → "tomorrow (Friday 27 November)"."""

    def dated(m: re.Match) -> str:
        if m.group("dated"):
            return m.group(0)
        day = said_at + timedelta(days=day_offset(m.group("day"), m.group("mod"), said_at))
        date = f"{day.day} {day:%B}" + ("" if day.year == said_at.year else f" {day.year}")
        if m.group("day").lower() in RELATIVE_DAYS:
            return f"{m.group(0)} ({day:%A} {date})"
        return f"{m.group(0)} {date}"
    return _DAY.sub(dated, text)
