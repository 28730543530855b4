"""The scripted engine behaves like the real ones where the assistant depends on it (tests/fakes.py)."""

from __future__ import annotations

import pytest

from device.engines.base import ChatMessage, Engine, EngineError, GenerationParams
from tests.fakes import FakeEngine, ScriptExhausted, chat_parts


def test_it_is_an_engine_and_formats_chatml():
    engine = FakeEngine()
    assert isinstance(engine, Engine)
    prompt = engine.format_chat([ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")])
    assert chat_parts(prompt) == {"system": "Be brief.", "user": "Hi"}
    text = "Booked Luigi's, 8pm — £25 each  \n ok"
    assert engine.detokenize(engine.tokenize(text)) == text and engine.count_tokens("8pm") == 2


def test_outputs_come_in_order_are_cut_at_stops_and_max_tokens_and_stream_as_they_add_up():
    engine = FakeEngine(["one two\nthree", lambda prompt, params: prompt.upper(), "a b c d e f"])
    assert engine.generate("p", GenerationParams(stop=("\n",))).text == "one two"
    stream = engine.stream("shout", GenerationParams())
    assert "".join(stream) == "SHOUT" and stream.result.text == "SHOUT"
    cut = engine.generate("p", GenerationParams(max_tokens=3))
    assert (cut.text, cut.finish_reason, cut.completion_tokens) == ("a b c", "length", 3)
    assert [c.prompt for c in engine.generations] == ["p", "shout", "p"]
    with pytest.raises(ScriptExhausted, match=r"generate call #4, but the script has 3 scripted answers"):
        engine.generate("more", GenerationParams())


def test_a_prompt_that_does_not_fit_the_context_is_refused_before_the_script_is_read():
    engine = FakeEngine(["never"], n_ctx=16)
    with pytest.raises(EngineError, match="exceeds the context of 16"):
        engine.generate("word " * 10, GenerationParams(max_tokens=8))
    assert engine.script_left()["generate"] == 1 and engine.generations == []


def test_scores_are_scripted_and_an_unscripted_method_says_so():
    engine = FakeEngine(next_logprobs=[[-0.1, -2.0]], continuations=lambda prefix, conts: [-1.5 for _ in conts],
                        top_tokens=lambda text, n: [(" yes", -0.2), (" no", -1.9)])
    yes, no = engine.tokenize(" yes") + engine.tokenize(" no")
    assert engine.next_token_logprobs(engine.tokenize("Q?"), [yes, no]) == [-0.1, -2.0]
    assert engine.top_next_tokens(engine.tokenize("Q?"), 1) == [(yes, -0.2)]
    assert engine.continuation_logprobs(engine.tokenize("Q?"), [engine.tokenize(" yes it is")]) == \
        [[-1.5, 0.0, 0.0]]  # a total, spread over the continuation's tokens
    assert engine.called("next_token_logprobs")[0].extra == (" yes", " no")
    with pytest.raises(ScriptExhausted, match="token_logprobs call #1, but it was given no script"):
        engine.token_logprobs(engine.tokenize("Q?"))


def test_adapters_must_be_loaded_and_prefix_states_belong_to_one():
    engine = FakeEngine()
    with pytest.raises(EngineError, match="not loaded"):
        engine.use_adapter("replies")
    state = engine.save_prefix("<|im_start|>system\nBe brief.")
    engine.load_adapter("replies", "replies.gguf")
    engine.use_adapter("replies")
    with pytest.raises(EngineError, match="belongs to fake-model"):
        engine.restore_prefix(state)
