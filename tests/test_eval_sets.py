"""The project's evaluation sets and their judges agree with the written examples: a correct summary states no
misreading and says what it must, each misread summary is caught, and the human-written good replies are usable."""

from __future__ import annotations

import json
from pathlib import Path

from device.assistant.drafts import judge
from lab.meaning import misreadings
from lab.meaning import read_set as read_meaning
from lab.reply_set import read_set as read_replies

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_the_meaning_judge_passes_good_summaries_and_catches_every_written_misreading():
    rows = {json.loads(line)["id"]: json.loads(line)
            for line in (FIXTURES / "meaning" / "chats.jsonl").read_text().splitlines() if line.strip()}
    cases = read_meaning(FIXTURES / "meaning" / "chats.jsonl")
    assert len(cases) >= 80 and sum(c.part == "untouched" for c in cases) >= 25
    assert any(len(c.messages) >= 100 for c in cases)
    for case in cases:
        row = rows[case.id]
        assert misreadings(row["example_good"], case, summary=True) == [], case.id
        assert all(p.search(row["example_good"]) for p in case.must), case.id
        for bad, expected in zip(row["example_bad"], case.must_not, strict=True):
            assert expected.kind in misreadings(bad, case, summary=True), (case.id, bad)


def test_the_draft_checks_pass_the_replies_people_wrote_for_the_reply_set():
    cases = read_replies(FIXTURES / "replies" / "threads.jsonl")
    assert len(cases) >= 60 and sum(c.part == "untouched" for c in cases) >= 20
    assert all(sum(c.lang == lang for c in cases) >= 4 for lang in ("de", "es", "fr"))
    rows = {json.loads(line)["id"]: json.loads(line)
            for line in (FIXTURES / "replies" / "threads.jsonl").read_text().splitlines() if line.strip()}
    verdicts = [judge(reply, case.facts) for case in cases for reply in rows[case.id]["good_reply_examples"]]
    refused = [v for v in verdicts if not v.usable]
    # the only refusals: a number of the wearer's own ("back in 5 minutes") — the rule allows no new number at all
    assert all(f == "invented_detail" for v in refused for f in v.failures), [v.detail for v in refused]
    assert len(refused) <= 0.05 * len(verdicts)


def test_a_malformed_set_line_is_reported_with_its_file_and_line(tmp_path):
    import pytest

    from device.messages.inbox import FeedError

    bad = tmp_path / "set.jsonl"
    bad.write_text('{"id": "x", "messages": [{"thread": "t", "sender": "a", "text": "hi", "ts": 1}]}\n\nnot json\n')
    with pytest.raises(FeedError, match=rf"{bad}:1: KeyError"):
        read_replies(bad)
    bad.write_text('\n\nnot json\n')
    with pytest.raises(FeedError, match=rf"{bad}:3: not JSON"):
        read_meaning(bad)


def test_the_act_check_flags_no_correct_summary_written_for_the_tune_part():
    """A check that dropped correct sentences would trade misreadings for missing points: on the summaries written
    as correct for the meaning set's tune part it must flag nothing (the untouched part is not read here)."""
    from device.assistant.meaning_check import sentences
    from device.assistant.speech_acts import unbacked_acts

    rows = [json.loads(line) for line in (FIXTURES / "meaning" / "chats.jsonl").read_text().splitlines()
            if line.strip()]
    flagged = []
    for row in (r for r in rows if r["part"] == "tune"):
        said: dict[str, list[str]] = {}
        for m in row["messages"]:
            if m["sender"].lower() != "me":
                said.setdefault(m["sender"], []).append(m["text"])
        flagged += [(row["id"], s) for s in sentences(row["example_good"]) if unbacked_acts(s, said)]
    assert flagged == []


def test_a_quoted_summary_is_judged_only_on_its_choice_of_messages():
    (climb,) = [c for c in read_meaning(FIXTURES / "meaning" / "chats.jsonl") if c.id == "inbox-climb"]
    quote = "Jonas: Change of plan: Boulderwelt is closed Saturday for a competition 😞 · Priya: Ugh. Sunday then?"
    assert misreadings(quote, climb, summary=True) == ["invented"]  # the pattern is for paraphrases
    assert misreadings(quote, climb, summary=True, quoted=True) == []
    stale = "Priya: Anyone up for bouldering on Saturday? Boulderwelt Ost opens at 10:30"
    assert misreadings(stale, climb, summary=True, quoted=True) == ["stale_plan"]  # quoting the old plan only
