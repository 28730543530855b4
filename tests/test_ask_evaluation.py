"""The ask question set and its metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device.messages.inbox import FeedError, read_feed
from lab.ask_evaluation import average_precision, read_questions, token_f1

QUESTIONS = Path(__file__).resolve().parent / "fixtures" / "ask" / "questions.jsonl"


def test_the_question_set_is_whole():
    qs = read_questions(QUESTIONS)
    assert len(qs) >= 100 and sum(not q.answerable for q in qs) >= 20
    assert len({q.id for q in qs}) == len(qs)
    for q in qs:  # every answerable question names messages that exist in its inbox
        if q.answerable:
            assert any(s in m.text for m in read_feed(q.feed) for s in q.support), q.id


@pytest.mark.parametrize("name", ["heldout.jsonl", "heldout2.jsonl", "heldout3.jsonl", "heldout4.jsonl"])
def test_the_held_out_sets_are_whole(name):
    qs = read_questions(QUESTIONS.parent / name)
    assert len({q.id for q in qs}) == len(qs) and sum(not q.answerable for q in qs) >= 10
    asked = {q.question for q in read_questions(QUESTIONS)}
    for q in qs:  # new questions, each answerable one naming a message of its inbox
        assert q.question not in asked, q.id
        if q.answerable:
            assert any(s in m.text for m in read_feed(q.feed) for s in q.support), q.id


def test_metrics():
    assert token_f1("Friday at 8pm", "8pm") == pytest.approx(2 / 3)
    assert token_f1("the 16:10 train", "16:10") == pytest.approx(2 / 3)
    assert token_f1("£54.50", "£54.50") == 1.0 and token_f1("9pm", "8pm") == 0.0
    assert average_precision([5, 1, 7], {1}, 5) == 0.5
    assert average_precision([1, 2, 3], {1, 3}, 5) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([4, 5], {1}, 5) == 0.0


def test_bad_question_rows_are_clear_errors(tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_text(json.dumps({"id": "x", "feed": "f.jsonl", "now": "2026-11-21T09:00:00+00:00",
                               "question": "when?", "answers": ["8pm"]}) + "\n")
    with pytest.raises(FeedError, match="needs the supporting message"):
        read_questions(bad)
    bad.write_text('{"id": "x"}\n')
    with pytest.raises(FeedError, match="q.jsonl:1"):
        read_questions(bad)
