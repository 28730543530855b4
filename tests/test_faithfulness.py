"""The faithfulness check (names, numbers, times, dates must occur in the chat) and the assistant's guard."""

from __future__ import annotations

import json

import pytest

from device.assistant.core import Assistant, extractive_summary
from device.assistant.faithfulness import claimed_spans, unsupported
from device.messages.inbox import group_threads, read_feed
from tests.conftest import SHARED

CHAT = ("Marco: Booked Luigi's on Carver Street for Friday at 8pm, table for 6!\n"
        "Alice: Amazing. Is it the one near the station?\n"
        "Marco: Yes. £25 deposit per person by Wednesday please\n"
        "#Person1#: Two tickets for the 3rd of May, leaving at 20:15.")


@pytest.mark.parametrize("summary, bad", [
    ("Marco booked Luigi's for Friday at 9pm.", ["9pm"]),
    ("Marco booked a table for 7 on Carver Street.", ["7"]),
    ("Marco wants a £30 deposit by Wednesday.", ["£30"]),
    ("Marco and Priya are going to Luigi's.", ["Priya"]),
    ("Dinner is on Saturday.", ["Saturday"]),
    ("They leave on the 5th.", ["5th"]),
])
def test_unsupported_claims_are_caught(summary, bad):
    assert [s.text for s in unsupported(summary, CHAT)] == bad


@pytest.mark.parametrize("summary", [
    "Marco booked Luigi's on Carver Street for Friday at 8 p.m., a table for six.",
    "Alice asks whether it's near the station; Marco wants £25 per person by Wed.",
    "Person1 buys two tickets for the 3rd, leaving at 8:15 pm.",
    "They're meeting Friday. Overall, everyone is in.",
])
def test_supported_paraphrases_pass(summary):
    assert unsupported(summary, CHAT) == []


def test_claims_are_typed():
    kinds = {s.text: s.kind for s in claimed_spans("Marco pays £25 on Friday at 8pm, the 3rd.")}
    assert kinds == {"Marco": "name?", "£25": "number", "Friday": "date", "8pm": "time", "3rd": "date"}


@pytest.mark.skipif(not (SHARED / "dialogsum" / "dialogsum.dev.jsonl").is_file(), reason="needs ../shared data")
def test_human_reference_summaries_are_rarely_flagged():
    """Calibration: the references are faithful, so what the check flags in them is its false-alarm rate
    (11 of 500 at the time of writing: misspelt names, numbers written as words in the dialogue)."""
    rows = [json.loads(line) for line in (SHARED / "dialogsum" / "dialogsum.dev.jsonl").read_text().splitlines()]
    flagged = sum(bool(unsupported(r["summary"], r["dialogue"])) for r in rows)
    assert flagged / len(rows) < 0.05


def test_the_extractive_fallback_is_always_supported(dinner_feed):
    messages = read_feed(dinner_feed)
    text = extractive_summary(messages)
    assert "£25 deposit" in text and "Marco" in text
    source = "\n".join(f"{m.sender}: {m.text}" for m in messages)
    assert unsupported(text, source) == []


def test_with_the_guard_no_shown_summary_has_an_unsupported_span(engine):
    """The real SmolLM2 hallucinates freely; whatever it writes, what the wearer is shown is supported."""
    from importlib.resources import files

    from device.assistant import prompts

    threads = group_threads(read_feed(files("device") / "data" / "sample_inbox.jsonl"))
    assistant = Assistant(engine, guard=True)
    actions = []
    for thread in threads.values():
        result = assistant.catch_up(thread, thread.messages)
        header = prompts.thread_header(thread.name, thread.participants)
        source = header + "\n" + "\n".join(prompts.message_line(m) for m in thread.messages)
        assert unsupported(result.text, source) == [], (thread.name, result.text)
        actions.append(result.guard)
        if result.guard:
            assert result.unsupported  # it says what the first summary got wrong
    assert len(actions) == len(threads)
