"""Day words in an answer are dated against the message that said them, not against today."""

from __future__ import annotations

from datetime import datetime

from device.messages.day_words import resolve_day_words

SAT = datetime(2026, 11, 21, 9, 0)  # a Saturday
THU = datetime(2026, 11, 26, 18, 0)


def test_a_weekday_is_the_next_one_after_the_message():
    assert SAT.strftime("%A") == "Saturday"
    assert resolve_day_words("Friday at 8pm", SAT) == "Friday 27 November at 8pm"
    assert resolve_day_words("on Monday", THU) == "on Monday 30 November"
    assert resolve_day_words("Saturday", SAT) == "Saturday 28 November"  # said on the day: next week's
    assert resolve_day_words("this Saturday", SAT) == "this Saturday 21 November"


def test_relative_words_and_modifiers():
    assert resolve_day_words("tomorrow 8-10am", THU) == "tomorrow (Friday 27 November) 8-10am"
    assert resolve_day_words("tonight", THU) == "tonight (Thursday 26 November)"
    assert resolve_day_words("next Thursday", THU) == "next Thursday 3 December"
    assert resolve_day_words("last Friday", THU) == "last Friday 20 November"
    assert resolve_day_words("Sunday", datetime(2026, 12, 30)) == "Sunday 3 January 2027"


def test_dated_days_and_other_words_are_left_alone():
    assert resolve_day_words("Friday 28 November at 8pm", SAT) == "Friday 28 November at 8pm"
    assert resolve_day_words("Friday the 28th", SAT) == "Friday the 28th"
    assert resolve_day_words("Luigi's on Carver Street", SAT) == "Luigi's on Carver Street"
    assert resolve_day_words("Sundays are quiet", SAT) == "Sundays are quiet"
