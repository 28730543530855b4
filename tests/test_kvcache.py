"""Incremental summaries: a thread's KV state is kept, so one more message costs only its own tokens."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from device.assistant.core import Assistant
from device.assistant.kvcache import ThreadKVCache
from device.engines.base import ChatMessage, GenerationParams
from device.messages.inbox import Message, group_threads
from device.messages.retention import forget_thread
from device.messages.store import MessageStore
from device.privacy.crypto import Cipher

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
PEOPLE = ["Priya", "Tomasz", "Jonas", "Lena"]


def _thread(n: int, edit: int | None = None) -> list[Message]:
    return [Message("Trip", PEOPLE[i % 4], ("EDITED " if i == edit else "") + f"Message {i}: I bring item {i} to "
                    f"the cabin on Saturday, train at {8 + i % 4}:15.", T0 + timedelta(minutes=i)) for i in range(n)]


NEW = Message("Trip", "Priya", "Change: we leave at 9:45 from the south station instead.", T0 + timedelta(hours=1))


# The faithfulness guard is off here: its retry is a second prompt, whose tokens are (rightly) not cached, and
# these tests measure what the thread cache itself saves.


def _evict(engine) -> None:
    engine.generate(engine.format_chat([ChatMessage("user", "an unrelated prompt")]), GenerationParams(max_tokens=2))


@pytest.fixture
def key():
    return os.urandom(32)


def test_one_more_message_reuses_the_thread_prefix(engine, tmp_path, key):
    cold = Assistant(engine, temperature=0.0, guard=False).catch_up(group_threads(_thread(20) + [NEW])["Trip"])
    kv = ThreadKVCache(engine, Cipher(key), tmp_path)
    warm = Assistant(engine, temperature=0.0, kv=kv, guard=False)
    warm.catch_up(group_threads(_thread(20))["Trip"])
    _evict(engine)  # another thread used the context in between
    inc = warm.catch_up(group_threads(_thread(20) + [NEW])["Trip"])
    assert inc.cached_prompt_tokens >= 0.9 * inc.prompt_tokens
    assert inc.prompt_tokens == cold.prompt_tokens and inc.text == cold.text  # same prompt, same summary
    assert kv.hits == 1


def test_edited_earlier_message_drops_the_cache(engine, tmp_path, key):
    kv = ThreadKVCache(engine, Cipher(key), tmp_path)
    a = Assistant(engine, temperature=0.0, kv=kv, guard=False)
    a.catch_up(group_threads(_thread(20))["Trip"])
    _evict(engine)
    edited = a.catch_up(group_threads(_thread(20, edit=3) + [NEW])["Trip"])
    assert kv.misses >= 1 and kv.hits == 0
    assert edited.cached_prompt_tokens < 0.5 * edited.prompt_tokens
    cold = Assistant(engine, temperature=0.0, guard=False).catch_up(group_threads(_thread(20, edit=3) + [NEW])["Trip"])
    assert edited.text == cold.text


def test_state_survives_on_disk_sealed_and_is_forgotten(engine, tmp_path, key):
    Assistant(engine, kv=ThreadKVCache(engine, Cipher(key), tmp_path / "kv"), guard=False).catch_up(
        group_threads(_thread(20))["Trip"])
    files = list((tmp_path / "kv").glob("*.kv"))
    assert len(files) == 1
    _evict(engine)
    fresh = ThreadKVCache(engine, Cipher(key), tmp_path / "kv")  # a restart: nothing in memory
    prompt_reuse = Assistant(engine, kv=fresh, guard=False).catch_up(group_threads(_thread(20) + [NEW])["Trip"])
    assert fresh.hits == 1 and prompt_reuse.cached_prompt_tokens > 0.9 * prompt_reuse.prompt_tokens
    _evict(engine)
    other_key = ThreadKVCache(engine, Cipher(os.urandom(32)), tmp_path / "kv")
    assert other_key.restore("Trip", "anything") == 0  # sealed: another key cannot use it
    with MessageStore(tmp_path / "store.db", key=key) as store:
        store.add(_thread(2))
        report = forget_thread(store, "Trip", tmp_path)
    assert report["kv_files"] >= 1 and not list((tmp_path / "kv").glob(f"{store.thread_id('Trip')}*"))


def test_disk_cache_is_bounded(engine, tmp_path, key):
    kv = ThreadKVCache(engine, Cipher(key), tmp_path, max_memory=1, max_disk=2)
    a = Assistant(engine, kv=kv)
    for name in ("A", "B", "C"):
        msgs = [Message(name, "Ann", f"hello from {name}, see you at 5", T0)]
        a.catch_up(group_threads(msgs)[name])
    assert len(list(tmp_path.glob("*.kv"))) == 2
