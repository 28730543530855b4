from __future__ import annotations

from datetime import UTC, datetime

import pytest

from device.messages.inbox import FeedError, Message, bursts, group_threads, read_feed, replay
from tests.conftest import write_feed


def test_reads_valid_feed_and_groups_threads(dinner_feed):
    messages = read_feed(dinner_feed)
    assert [m.sender for m in messages] == ["Marco", "Alice", "Marco"]
    threads = group_threads(messages)
    assert list(threads) == ["Dinner Friday"]
    assert threads["Dinner Friday"].participants == ["Marco", "Alice"]
    assert messages[0].ts.utcoffset().total_seconds() == 3600


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"thread": "t", "sender": "a", "text": "hi"', "not valid JSON"),
        (b'["thread", "sender"]', "expected a JSON object"),
        (b'{"thread": "t", "sender": "a", "ts": 1}', "missing field(s) text"),
        (b'{"thread": "t", "sender": 5, "text": "x", "ts": 1}', "'sender' must be a string"),
        (b'{"thread": " ", "sender": "a", "text": "x", "ts": 1}', "'thread' is empty"),
        (b'{"thread": "t", "sender": "a", "text": "x", "ts": "yesterday"}', "not an ISO-8601 time"),
        (b'{"thread": "t", "sender": "a", "text": "caf\xe9", "ts": 1}', "not valid UTF-8"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, line, expected):
    good = b'{"thread": "t", "sender": "a", "text": "fine", "ts": "2026-01-01T10:00:00"}\n'
    path = tmp_path / "feed.jsonl"
    path.write_bytes(good + b"\n" + line + b"\n")
    with pytest.raises(FeedError) as info:
        read_feed(path)
    assert f"{path}:3:" in str(info.value)
    assert expected in str(info.value)


def test_missing_and_empty_feed(tmp_path):
    with pytest.raises(FeedError, match="no such file"):
        read_feed(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(FeedError, match="no messages"):
        read_feed(tmp_path / "empty.jsonl")


def test_oversized_line_is_refused(tmp_path):
    path = write_feed(tmp_path / "big.jsonl", [{"thread": "t", "sender": "a", "text": "x" * (1 << 20), "ts": 0}])
    with pytest.raises(FeedError, match=r"big.jsonl:1: line is \d+ bytes"):
        read_feed(path)


def _m(thread, sender, minute, text="x"):
    return Message(thread, sender, text, datetime(2026, 1, 1, 10, minute, tzinfo=UTC))


def test_bursts_and_unread_after_wearer_message():
    msgs = [_m("a", "p", 0), _m("a", "q", 1), _m("b", "r", 2), _m("a", "me", 3), _m("a", "p", 4)]
    assert [len(b) for b in bursts(msgs)] == [2, 1, 2]
    thread = group_threads(msgs)["a"]
    assert [m.minute for m in (x.ts for x in thread.unread)] == [4]
    thread.mark_read()
    assert thread.unread == []


def test_realtime_replay_waits_scaled_and_capped():
    waits: list[float] = []
    msgs = [_m("a", "p", 0), _m("b", "q", 1), _m("a", "p", 50)]
    list(replay(msgs, realtime=True, speed=60, sleep=waits.append))
    assert waits == [pytest.approx(1.0), pytest.approx(3.0)]
