"""One engine interface, two runtimes: the same signatures and the same behaviour from llama.cpp and ONNX Runtime."""

from __future__ import annotations

import inspect
import json

import pytest

from device.assistant.core import Assistant
from device.assistant.prompts import REPLIES_SCHEMA
from device.engines.base import ChatMessage, Engine, EngineError, GenerationParams
from device.engines.llama import LlamaEngine
from device.engines.onnx import OnnxEngine
from device.messages.inbox import group_threads, read_feed

PROTOCOL_METHODS = [name for name, member in inspect.getmembers(Engine) if inspect.isfunction(member)
                    and not name.startswith("_")]


def test_both_runtimes_have_the_protocols_methods_with_identical_signatures():
    assert {"stream", "generate", "save_prefix", "restore_prefix", "token_logprobs"} <= set(PROTOCOL_METHODS)
    for name in PROTOCOL_METHODS:
        want = inspect.signature(getattr(Engine, name))
        for cls in (LlamaEngine, OnnxEngine):
            got = inspect.signature(getattr(cls, name))
            assert list(got.parameters) == list(want.parameters), (cls.__name__, name)
            assert got.return_annotation == want.return_annotation, (cls.__name__, name)


@pytest.fixture(params=["llama", "onnx"])
def any_engine(request, engine, onnx_engine):
    e = engine if request.param == "llama" else onnx_engine
    e.reset()
    return e


def _prompt(e, text: str) -> str:
    return e.format_chat([ChatMessage("system", "You are a helpful assistant."), ChatMessage("user", text)])


def test_is_an_engine(any_engine):
    assert isinstance(any_engine, Engine)
    assert any_engine.n_ctx == 2048


def test_message_text_cannot_forge_control_tokens(any_engine):
    assert any_engine.tokenize("<|im_end|>") != any_engine.tokenize_prompt("<|im_end|>")
    assert len(any_engine.tokenize_prompt("<|im_end|>")) == 1
    assert any_engine.detokenize(any_engine.tokenize("Grüße, Ana 👋")) == "Grüße, Ana 👋"


def test_streams_pieces_that_add_up_to_the_result(any_engine):
    stream = any_engine.stream(_prompt(any_engine, "Name three colours."), GenerationParams(max_tokens=24))
    pieces = list(stream)
    assert len(pieces) > 1 and stream.result.text == "".join(pieces)
    assert 0 < stream.result.ttft_s <= stream.result.total_s


def test_stop_strings_are_never_streamed(any_engine):
    params = GenerationParams(max_tokens=60, temperature=0, stop=(",", "."))
    stream = any_engine.stream(_prompt(any_engine, "List five fruits, separated by commas."), params)
    text = "".join(stream)
    assert "," not in text and "." not in text and stream.result.finish_reason == "stop"


def test_json_schema_constrained_output_is_valid(any_engine):
    params = GenerationParams(max_tokens=160, temperature=0.7, seed=1, json_schema=REPLIES_SCHEMA)
    gen = any_engine.generate(_prompt(any_engine, "Reply options to: are you coming to dinner on Friday?"), params)
    obj = json.loads(gen.text)
    assert set(obj) == {"agree", "decline", "ask"}


def test_a_saved_prefix_is_reused(any_engine):
    prompt = _prompt(any_engine, "Summarize: the bus leaves at nine.")
    state = any_engine.save_prefix(prompt[:prompt.index("<|im_start|>user")])  # the system turn
    any_engine.reset()
    any_engine.restore_prefix(state)
    gen = any_engine.generate(prompt, GenerationParams(max_tokens=4, temperature=0))
    assert gen.cached_prompt_tokens == len(state.tokens) > 5


def test_a_prompt_longer_than_the_context_is_refused(any_engine):
    with pytest.raises(EngineError, match="exceeds the context"):
        any_engine.generate(_prompt(any_engine, "word " * 2100), GenerationParams(max_tokens=8))


def test_the_assistant_runs_on_either_runtime(any_engine, dinner_feed):
    thread = group_threads(read_feed(dinner_feed))["Dinner Friday"]
    assistant = Assistant(any_engine)
    summary = assistant.catch_up(thread)
    replies = assistant.draft_replies(thread)
    assert summary.text.strip() and len(set(replies.replies)) == 3


def test_candidates_after_a_shared_prompt_score_as_from_scratch(any_engine):
    from device.engines.base import continuation_logprobs_by_rescoring

    prefix = any_engine.tokenize_prompt(any_engine.format_chat([ChatMessage("user", "Lunch at 1 tomorrow?")]))
    conts = [any_engine.tokenize(t) for t in ("Sure, see you then!", "No", "Can we do 2 instead? I have a call")]
    shared = any_engine.continuation_logprobs(prefix, conts)
    plain = continuation_logprobs_by_rescoring(any_engine, prefix, conts)
    assert [len(x) for x in shared] == [len(c) for c in conts]
    for a, b in zip(shared, plain, strict=True):
        assert a == pytest.approx(b, abs=2e-3)


def test_continuations_scored_over_a_context_that_shares_part_of_the_prompt_score_as_from_scratch(any_engine):
    """Ask scores its answer under the question and under a question-less prompt right after generating it: what
    the context holds of each prompt is reused, what differs is read again, and the prefix stays cached."""
    from device.engines.base import continuation_logprobs_by_rescoring

    asked = any_engine.tokenize_prompt(_prompt(any_engine, "Messages: the bus is at nine. Question: when is the bus?"))
    blank = any_engine.tokenize_prompt(_prompt(any_engine, "Messages: the bus is at nine. Question: what?"))
    conts = [any_engine.tokenize(t) for t in ("at nine", "never, sorry")]
    any_engine.generate(_prompt(any_engine, "Messages: the bus is at nine. Question: when is the bus?"),
                        GenerationParams(max_tokens=4, temperature=0))
    after_generating = any_engine.continuation_logprobs(asked, conts)
    after_the_other = any_engine.continuation_logprobs(blank, conts)
    again = any_engine.continuation_logprobs(asked, conts)
    for scored, prefix in ((after_generating, asked), (after_the_other, blank), (again, asked)):
        plain = continuation_logprobs_by_rescoring(any_engine, prefix, conts)
        for a, b in zip(scored, plain, strict=True):
            # llama.cpp's kernels for one token and for a batch round differently: a prompt's last token re-read
            # alone scores up to ~0.05 nats off a whole-prompt read (smollm2 Q4_1); a stale or misplaced KV cell
            # is off by whole nats
            assert a == pytest.approx(b, abs=0.1)
    assert sum(after_generating[0]) != pytest.approx(sum(after_the_other[0]), abs=1e-3)
    any_engine.continuation_logprobs(asked, conts)
    gen = any_engine.generate(_prompt(any_engine, "Messages: the bus is at nine. Question: when is the bus?"),
                              GenerationParams(max_tokens=2, temperature=0))
    assert gen.cached_prompt_tokens >= len(asked) - 1  # the scored prompt stayed in the context


def test_next_token_scores_match_full_scoring_and_leave_the_prompt_in_the_context(any_engine):
    from device.engines.base import continuation_logprobs_by_rescoring

    prompt = _prompt(any_engine, "Is the bus at nine or ten?")
    tokens = any_engine.tokenize_prompt(prompt)
    candidates = [any_engine.tokenize(w)[0] for w in ("The", "It", "Nine")]
    scored = any_engine.next_token_logprobs(tokens, candidates)
    plain = continuation_logprobs_by_rescoring(any_engine, tokens, [[c] for c in candidates])
    assert scored == pytest.approx([x[0] for x in plain], abs=2e-3) and all(x < 0 for x in scored)
    # scored again after something else ran: the same numbers
    any_engine.generate(_prompt(any_engine, "Say hello."), GenerationParams(max_tokens=2, temperature=0))
    assert any_engine.next_token_logprobs(tokens, candidates) == pytest.approx(scored, abs=2e-3)
    gen = any_engine.generate(prompt, GenerationParams(max_tokens=2, temperature=0))
    assert gen.cached_prompt_tokens >= len(tokens) - 1  # the generation read only what scoring had not



def test_the_likeliest_next_tokens_are_the_greedy_one_first_then_in_order_of_probability(any_engine):
    prompt = _prompt(any_engine, "Is the bus at nine or ten?")
    tokens = any_engine.tokenize_prompt(prompt)
    any_engine.reset()
    top = any_engine.top_next_tokens(tokens, 5)
    assert len(top) == 5 and len({t for t, _ in top}) == 5
    lps = [lp for _, lp in top]
    assert lps == sorted(lps, reverse=True) and all(lp <= 0 for lp in lps)
    # the same numbers as scoring those tokens, and the first is what greedy decoding writes (each from an empty
    # context: a quantized model's logits after a prompt read in one batch differ slightly from those after
    # only its last token is read)
    any_engine.reset()
    assert any_engine.next_token_logprobs(tokens, [t for t, _ in top]) == pytest.approx(lps, abs=2e-3)
    any_engine.reset()
    gen = any_engine.generate(prompt, GenerationParams(max_tokens=1, temperature=0, repeat_penalty=1.0))
    assert gen.text == any_engine.detokenize([top[0][0]])
