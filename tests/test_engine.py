"""The llama.cpp engine on the real SmolLM2-135M."""

from __future__ import annotations

import json

import pytest

from device.assistant.prompts import REPLIES_SCHEMA
from device.engines import EngineError, load_engine
from device.engines.base import ChatMessage, GenerationParams
from device.engines.llama import LlamaEngine


def _prompt(engine, text):
    return engine.format_chat([ChatMessage("system", "You are a helpful assistant."), ChatMessage("user", text)])


def test_chat_template_comes_from_the_gguf(engine):
    prompt = _prompt(engine, "hello")
    assert "<|im_start|>user\nhello<|im_end|>" in prompt
    assert prompt.rstrip().endswith("<|im_start|>assistant")


def test_streaming_yields_pieces_and_timings(engine):
    stream = engine.stream(_prompt(engine, "Name three colours."), GenerationParams(max_tokens=24))
    pieces = list(stream)
    assert len(pieces) > 1
    result = stream.result
    assert result.text == "".join(pieces)
    assert 0 < result.ttft_s <= result.total_s
    assert result.completion_tokens >= len(pieces)
    assert result.prompt_tokens == len(engine.tokenize_prompt(_prompt(engine, "Name three colours.")))


def test_json_schema_output_is_valid_json_with_the_keys(engine):
    for seed, text in enumerate(["Are you coming to dinner on Friday?", "Can you fix the sink?"]):
        params = GenerationParams(max_tokens=160, temperature=0.7, seed=seed, json_schema=REPLIES_SCHEMA)
        gen = engine.generate(_prompt(engine, f"Reply options to: {text}"), params)
        obj = json.loads(gen.text)
        assert set(obj) == {"agree", "decline", "ask"}
        assert all(isinstance(v, str) and len(v) >= 2 for v in obj.values())


def test_token_count_and_round_trip(engine):
    text = "Plumber comes Thursday 27 November between 8 and 10am."
    tokens = engine.tokenize(text)
    assert engine.count_tokens(text) == len(tokens) > 5
    assert engine.detokenize(tokens) == text


def test_prefix_state_restores_and_is_reused(engine):
    prefix = _prompt(engine, "Summarize: Priya: bouldering Saturday at 10:30? Tomasz: in!")
    state = engine.save_prefix(prefix)
    assert state.nbytes > 0 and len(state.tokens) > 10
    params = GenerationParams(max_tokens=16, temperature=0.0)
    engine.generate(_prompt(engine, "Something else entirely, a different prompt."), params)
    engine.restore_prefix(state)
    gen = engine.generate(prefix, params)
    assert gen.cached_prompt_tokens >= len(state.tokens) - 1
    again = engine.generate(prefix, params)
    assert again.text == gen.text  # greedy decoding from restored state matches a fresh evaluation


def test_control_tokens_in_text_are_not_special(engine):
    assert engine.count_tokens("<|im_start|>") > 1  # message text never becomes a control token


def test_corrupt_model_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 4096)
    with pytest.raises(EngineError, match="could not load .*models verify"):
        LlamaEngine("broken", bad, n_ctx=256)


def test_missing_model_says_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSMATE_HOME", str(tmp_path))
    from device.catalog import CatalogError

    with pytest.raises(CatalogError, match="glassmate models fetch smollm2-135m"):
        load_engine("smollm2-135m")


def test_json_strings_cannot_hold_raw_control_characters():
    """llama-cpp-python's schema converter allowed them: on an AVX-512 machine SmolLM2 sampled a raw newline inside
    a reply and the output was not JSON (the test above failed there)."""
    from llama_cpp import LlamaGrammar

    from device.engines.llama import json_grammar

    gbnf = json_grammar(json.dumps(REPLIES_SCHEMA))
    chars = next(line for line in gbnf.splitlines() if line.startswith("char ::="))
    assert chars.startswith('char ::= [^"\\\\\\x7F\\x00-\\x1F]')
    assert LlamaGrammar.from_string(gbnf, verbose=False)
