"""What `make demo` shows as drafts, on the real test model: the sample inbox through the drafting pipeline, every
draft judged as a wearer would — no assistant-speak, no role confusion, no invented detail, nothing off-language."""

from __future__ import annotations

from importlib.resources import files

from device.assistant.core import Assistant
from device.assistant.drafts import ThreadFacts, judge
from device.messages.inbox import group_threads, read_feed


def test_every_draft_the_demo_shows_passes_the_checks(engine):
    threads = group_threads(read_feed(files("device") / "data" / "sample_inbox.jsonl"))
    assistant = Assistant(engine)
    shown = []
    for thread in threads.values():
        result = assistant.draft_replies(thread)
        facts = ThreadFacts.from_messages(thread.messages)
        assert len({r.lower() for r in result.replies}) == 3, result.replies
        shown += [(thread.name, judge(r, facts)) for r in result.replies]
    refused = [(name, v.draft, v.detail) for name, v in shown if not v.usable]
    assert refused == []
    assert len(shown) == 3 * len(threads)
