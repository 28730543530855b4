"""System prompts' KV states on disk: a new process answers exactly as if it had read the system prompt itself,
and a bad file, another prompt or an unwritable disk costs only time."""

from __future__ import annotations

import shutil

import pytest

from device.assistant import prompts
from device.assistant.core import Assistant
from device.assistant.prefix_store import PrefixStore
from device.engines.base import GenerationParams

LINES = ["Chat: Dinner crew", "[1] Fri Marco: Booked Luigi's on Carver Street for Friday 8pm, table for 6"]
GREEDY = GenerationParams(max_tokens=12, temperature=0.0, stop=('"',), repeat_penalty=1.0)


@pytest.fixture(params=["llama", "onnx"])
def any_engine(request, engine, onnx_engine):
    e = engine if request.param == "llama" else onnx_engine
    e.reset()
    return e


def _answer(assistant: Assistant, question: str) -> str:
    prompt = assistant.prepare("ask", prompts.ask_messages(question, LINES, "Friday 27 November"))
    return assistant.engine.generate(prompt + prompts.ASK_OPEN, GREEDY).text


def test_a_new_process_restores_the_system_prompt_from_disk_and_answers_the_same(any_engine, tmp_path):
    cold = _answer(Assistant(any_engine), "What time is dinner?")

    first = PrefixStore(tmp_path)
    assert _answer(Assistant(any_engine, prefix_store=first), "What time is dinner?") == cold
    assert (first.saved, first.loaded) == (1, 0) and len(list(tmp_path.glob("prefix-*.npz"))) == 1

    any_engine.reset()  # what a new process has: an empty context
    second = PrefixStore(tmp_path)
    assert _answer(Assistant(any_engine, prefix_store=second), "What time is dinner?") == cold
    assert (second.saved, second.loaded, second.dropped) == (0, 1, 0)


def test_a_bad_or_foreign_file_is_dropped_and_the_prompt_read_again(any_engine, tmp_path):
    cold = _answer(Assistant(any_engine), "Where is dinner?")
    store = PrefixStore(tmp_path)
    _answer(Assistant(any_engine, prefix_store=store), "Where is dinner?")
    (saved,) = tmp_path.glob("prefix-*.npz")

    saved.write_bytes(saved.read_bytes()[:1000])  # torn by a crash
    any_engine.reset()
    torn = PrefixStore(tmp_path)
    assert _answer(Assistant(any_engine, prefix_store=torn), "Where is dinner?") == cold
    assert (torn.dropped, torn.saved) == (1, 1)

    # a state saved for another prompt, under this prompt's name: its tokens do not match
    other = "Answer in one word."
    shutil.copy(saved, store.path(any_engine, other))
    any_engine.reset()
    foreign = PrefixStore(tmp_path)
    assert foreign.restore(any_engine, other) is None and foreign.dropped == 1
    assert not store.path(any_engine, other).exists()


def test_an_unwritable_cache_only_costs_time(any_engine, tmp_path):
    blocked = tmp_path / "prefixes"
    blocked.write_text("a file where the folder would be")
    store = PrefixStore(blocked)
    cold = _answer(Assistant(any_engine), "How many people?")
    any_engine.reset()
    assert _answer(Assistant(any_engine, prefix_store=store), "How many people?") == cold
    assert (store.saved, store.loaded) == (0, 0)


def test_the_key_follows_the_model_file(engine, tmp_path):
    from device.engines.base import file_fingerprint

    store = PrefixStore(tmp_path)
    before = store.path(engine, "x")
    assert before == store.path(engine, "x") and before != store.path(engine, "y")
    assert str(engine.path.resolve()) in engine.fingerprint and engine.identity in engine.fingerprint
    weights = tmp_path / "adapter.gguf"
    weights.write_bytes(b"one")
    first = file_fingerprint(weights)
    weights.write_bytes(b"rebuilt")  # the same name, other weights: their saved states must not be used
    assert file_fingerprint(weights) != first


def test_only_the_newest_states_are_kept(engine, tmp_path):
    from device.engines.base import PrefixState

    store = PrefixStore(tmp_path, max_files=2)
    for prompt in ("a", "b", "c"):
        store.save(engine, prompt, PrefixState(engine.identity, (1, 2), b"state", 5))
    assert sorted(tmp_path.glob("prefix-*.npz")) == sorted([store.path(engine, "b"), store.path(engine, "c")])
