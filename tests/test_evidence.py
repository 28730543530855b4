"""The words an unsure answer is heard with: the sentence of its message that carries it, cut around it."""

from __future__ import annotations

from datetime import UTC, datetime

from device.ask.evidence import evidence_clause, spoken_as_guess
from device.messages.inbox import WEARER, Message


def test_the_sentence_that_carries_the_answer_is_quoted():
    text = "Offsite is on! The coach leaves the office at 8:15 sharp. Bring a packed lunch, it's a long day."
    assert evidence_clause(text, "8:15") == "The coach leaves the office at 8:15 sharp."
    assert evidence_clause(text, "a packed lunch") == "Bring a packed lunch, it's a long day."
    # nothing of the answer in any sentence (a composed answer): the first sentence, not nothing
    assert evidence_clause(text, "tomorrow") == "Offsite is on!"
    assert evidence_clause("", "8:15") == ""


def test_a_long_sentence_is_cut_around_the_answer():
    words = [f"w{i}" for i in range(40)]
    words[25] = "£46"
    quote = evidence_clause(" ".join(words), "£46", max_words=10)
    assert quote.startswith("… ") and quote.endswith(" …")
    kept = quote.strip("… ").split()
    assert len(kept) == 10 and "£46" in kept and kept == words[20:30]
    # the answer near the start: no cut before it
    assert evidence_clause(" ".join(["£46", *words[1:]]), "£46", max_words=10) == " ".join(["£46", *words[1:10]]) + " …"


def test_a_guess_says_who_wrote_the_words():
    ts = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    dana = Message("Offsite", "Dana", "Coach leaves at 8:15. Back by six.", ts)
    spoken, quote = spoken_as_guess("8:15", "8:15", dana)
    assert quote == "Coach leaves at 8:15."
    assert spoken == "Maybe 8:15. Dana wrote: \u201cCoach leaves at 8:15.\u201d"
    mine = Message("Offsite", WEARER, "I'll drive on Friday.", ts)
    assert spoken_as_guess("Friday", "Friday 20 November", mine)[0] == \
        "Maybe Friday 20 November. You wrote: \u201cI'll drive on Friday.\u201d"
