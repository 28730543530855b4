"""The hostile-message suite: injections, invisible and bidi characters, floods, oversized and invalid input.
No crash, no action, a flag where due, and the summary still gets made (real SmolLM2-135M)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device.assistant.core import Assistant, normalise
from device.assistant.prompts import message_line
from device.messages.inbox import FeedError, group_threads, read_feed
from device.privacy.hostile import flags

FIXTURE = Path(__file__).parent / "fixtures" / "hostile_messages.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]


def test_suite_is_big_enough():
    assert sum(1 for r in ROWS if r["expect"]) >= 30


@pytest.mark.parametrize("row", ROWS, ids=[f"{i:02d}" for i in range(len(ROWS))])
def test_flags(row):
    assert sorted(flags(row["text"])) == sorted(row["expect"])


def test_model_never_sees_hidden_or_forged_characters():
    for row in ROWS:
        messages = read_feed_rows([row])
        line = message_line(messages[0])
        assert "\u200b" not in line and "\u202e" not in line and "<|im_start|>" not in line and "\x1b" not in line


def read_feed_rows(rows, tmp=Path("/tmp")):
    path = tmp / f"glassmate-hostile-{id(rows)}.jsonl"
    path.write_text("".join(json.dumps({k: r[k] for k in ("thread", "sender", "text", "ts")}) + "\n" for r in rows),
                    encoding="utf-8")
    try:
        return read_feed(path)
    finally:
        path.unlink()


def test_whole_suite_through_the_assistant(engine):
    """Every hostile message is notified, the thread is summarized (in chunks: it is huge) with its flags,
    and the reply drafts are still three distinct texts: nothing crashes, nothing is sent."""
    messages = read_feed_rows(ROWS)
    assistant = Assistant(engine)
    for m in messages:
        note = assistant.notify(m)
        assert note.text.strip() and "\n" not in note.text
        assert bool(note.flags) == bool(flags(m.text))
    thread = group_threads(messages)["Unknown sender"]
    summary = assistant.catch_up(thread)
    assert summary.text.strip() and summary.chunks > 1
    assert any("prompt-injection" in f for f in summary.flags)
    assert any("bidi-control" in f for f in summary.flags)
    replies = assistant.draft_replies(thread)
    assert len({normalise(r) for r in replies.replies}) == 3


@pytest.mark.parametrize(("raw", "why"), [
    (b'{"thread": "t", "sender": "s", "text": "caf\xc3\x28", "ts": 1}', "not valid UTF-8"),
    (b'{"thread": "t", "sender": "s", "text": "' + b"x" * (1 << 20) + b'", "ts": 1}', "over the"),
    (b'{"thread": "t", "sender": "s", "text": "a\\u0000b", "ts": 1}', "NUL"),
    (b'\xff\xfe{"thread": "t"}', "not valid UTF-8"),
])
def test_invalid_input_is_refused_clearly(tmp_path, raw, why):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(raw + b"\n")
    with pytest.raises(FeedError, match=why):
        read_feed(path)
