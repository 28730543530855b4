"""The shared word lists (device/messages/words.py): one definition each, read-only, and the differences between
the lists of one kind are the ones their rules rely on."""

from __future__ import annotations

from datetime import datetime

import pytest

from device.assistant.faithfulness import unsupported
from device.glasses.commands import parse_duration
from device.glasses.contacts import name_tokens
from device.messages import words
from device.messages.day_words import resolve_day_words


def test_the_two_number_lists_differ_only_where_their_rules_need_it():
    amounts, spoken = dict(words.AMOUNT_WORDS), dict(words.SPOKEN_NUMBERS)
    assert set(amounts) - set(spoken) == {"hundred", "thousand", "half", "noon", "midnight"}
    assert set(spoken) - set(amounts) == {"ninety"}
    assert all(amounts[w] == spoken[w] for w in set(amounts) & set(spoken))
    # a summary's "12" is supported by "noon" in the chat ...
    assert unsupported("Lunch at 12.", "Lunch at noon") == []
    # ... but a spoken name keeps "half" and "noon" as words, while "four b" is flat 4b
    assert name_tokens("flat four b") == ["flat", "4b"] and name_tokens("half noon") == ["half", "noon"]
    assert parse_duration("mute it for twenty five minutes") == (25, "mute it")
    assert parse_duration("mute it for ninety minutes")[0] == 90


def test_calendar_lists_are_in_calendar_order_with_their_abbreviations():
    assert words.WEEKDAYS[datetime(2026, 11, 20).weekday()] == "friday"
    assert words.MONTHS[11 - 1] == "november"
    assert words.WEEKDAY_ABBREVIATIONS == ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    assert words.MONTH_ABBREVIATIONS[8] == "sep" and len(words.CALENDAR) == 19
    assert [resolve_day_words(w, datetime(2026, 11, 26)) for w in words.RELATIVE_DAYS] == [
        "today (Thursday 26 November)", "tonight (Thursday 26 November)", "tomorrow (Friday 27 November)",
        "yesterday (Wednesday 25 November)"]


def test_the_lists_cannot_be_changed_by_a_caller():
    with pytest.raises(TypeError):
        words.SPOKEN_NUMBERS["hundred"] = 100  # type: ignore[index]
    with pytest.raises(AttributeError):
        words.INDEX_STOP_WORDS.add("dinner")  # type: ignore[attr-defined]
    assert isinstance(words.WEEKDAYS, tuple) and isinstance(words.NOT_A_NAME, frozenset)


def test_each_stop_list_keeps_its_own_words():
    # the search drops "what" and "the"; a spoken name also cannot hold "message" or "latest"; a summary's
    # capitalised "Thanks" or "Mum" is no name — three lists, three jobs
    assert {"what", "the"} <= words.INDEX_STOP_WORDS & words.NOT_IN_A_NAME
    assert "message" in words.NOT_IN_A_NAME - words.INDEX_STOP_WORDS
    assert {"thanks", "mum"} <= words.NOT_A_NAME - words.NOT_IN_A_NAME
