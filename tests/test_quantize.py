"""quantize/: the GGUF round trip, the ONNX export (a tiny model, then the real one), the variant registry."""

from __future__ import annotations

import json
import math
from importlib.resources import files

import numpy as np
import pytest

from device import catalog
from device.catalog import CatalogError
from device.engines import EngineError, load_engine
from device.engines.base import ChatMessage, GenerationParams
from device.engines.llama import LlamaEngine
from device.messages.inbox import read_feed
from quantize.gguf_variants import QuantizeError, parse_types
from tests.conftest import SHARED, TEST_MODEL, glassmate_home

CHAT = ("Priya: Anyone up for bouldering on Saturday? Boulderwelt Ost opens at 10:30\n"
        "Tomasz: I'm in! Can only stay until 2pm though, I have my sister's thing after\n"
        "Jonas: Same, count me in. Who's driving? My car is in the garage until Monday\n"
        "Priya: I can take three people. Meet at Ostbahnhof at 10?\n") * 6


def _ppl(engine, text: str, n: int = 400) -> float:
    ids = engine.tokenize(text)[:n]
    lp = engine.token_logprobs(ids)
    return math.exp(-sum(lp) / len(lp))


# -- GGUF ---------------------------------------------------------------------------------------------------
def test_gguf_round_trip_dequantize_is_exact_and_q8_is_within_one_percent(gguf_built, model_spec):
    f32, q8 = gguf_built[f"{TEST_MODEL}@F32"], gguf_built[f"{TEST_MODEL}@Q8_0"]
    assert f32.stat().st_size > 3 * model_spec.path.stat().st_size  # 32 bits per weight, not 4.5
    original = LlamaEngine("orig", model_spec.path, n_ctx=1024, n_threads=2)
    full = LlamaEngine("f32", f32, n_ctx=1024, n_threads=2)
    eight = LlamaEngine("q8", q8, n_ctx=1024, n_threads=2)
    # Natural chat text (the shipped sample inbox), as the report measures it; not the repeated CHAT above.
    inbox = "\n".join(f"{m.sender}: {m.text}" for m in read_feed(files("device") / "data" / "sample_inbox.jsonl"))
    p_orig, p_f32, p_q8 = _ppl(original, inbox, 1024), _ppl(full, inbox, 1024), _ppl(eight, inbox, 1024)
    # Not equal: llama.cpp multiplies Q4_1 weights with activations quantized to 8 bits, F32 weights in float.
    assert abs(p_f32 - p_orig) / p_orig < 0.01
    assert abs(p_q8 - p_f32) / p_f32 < 0.01  # acceptance: Q8_0 within 1 % of the F32 GGUF
    gen = eight.generate(eight.format_chat([ChatMessage("user", "Say hello.")]),
                         GenerationParams(max_tokens=12, temperature=0))
    assert gen.completion_tokens > 0 and gen.text.strip()


def test_dequantized_weights_are_bit_exact(gguf_built, model_spec):
    import gguf

    src, dst = gguf.GGUFReader(model_spec.path), gguf.GGUFReader(gguf_built[f"{TEST_MODEL}@F32"])
    assert [t.name for t in src.tensors] == [t.name for t in dst.tensors]
    for a, b in zip(src.tensors, dst.tensors, strict=True):
        assert b.tensor_type == gguf.GGMLQuantizationType.F32
        assert np.array_equal(gguf.quants.dequantize(a.data, a.tensor_type), b.data), a.name
    assert dst.fields["tokenizer.chat_template"].contents() == src.fields["tokenizer.chat_template"].contents()


def test_built_variants_are_registered_with_sha256_and_load_by_name(gguf_built, built_home):
    with glassmate_home(built_home):
        spec = catalog.get_model(f"{TEST_MODEL}@Q8_0")
        assert spec.base == TEST_MODEL and spec.runtime == "llama" and spec.quant == "Q8_0"
        assert catalog.verify(spec).ok
        engine = load_engine(f"{TEST_MODEL}@Q8_0", n_ctx=256, n_threads=1)
        assert engine.name == f"{TEST_MODEL}@Q8_0"


def test_unbuilt_variant_says_how_to_build_it(built_home):
    with glassmate_home(built_home), pytest.raises(CatalogError, match="glassmate quantize gguf --model "
                                                                       f"{TEST_MODEL} --types Q3_K_S"):
        catalog.get_model(f"{TEST_MODEL}@Q3_K_S")
    with glassmate_home(built_home), pytest.raises(CatalogError, match="quantize onnx"):
        catalog.get_model(f"{TEST_MODEL}@onnx-int2")


def test_unknown_gguf_type_is_refused():
    with pytest.raises(QuantizeError, match="Q9_Z"):
        parse_types("Q8_0,Q9_Z")


def test_a_corrupted_variant_fails_verification(gguf_built, built_home, tmp_path):
    with glassmate_home(built_home):
        spec = catalog.get_model(f"{TEST_MODEL}@Q8_0")
        copy = tmp_path / "models" / spec.file
        copy.parent.mkdir(parents=True)
        data = bytearray(spec.path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        copy.write_bytes(bytes(data))
    (tmp_path / "models" / "built" / "variants.json").write_text(
        (built_home / "models" / "built" / "variants.json").read_text())
    with glassmate_home(tmp_path):
        result = catalog.verify(catalog.get_model(f"{TEST_MODEL}@Q8_0"))
    assert not result.ok and "mismatch" in result.message and "quantize gguf" in result.message


# -- ONNX: a tiny model through the export and both quantizers ------------------------------------------
@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from quantize.onnx_variants import export_fp32, quantize_int4, quantize_int8

    root = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg).eval()
    model.save_pretrained(root / "pt")
    fp32 = export_fp32(root / "pt", root / "fp32")
    return model, fp32, quantize_int8(fp32, root / "int8"), quantize_int4(fp32, root / "int4")


def _ort_logits(folder, ids: list[int]) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    feed = {"input_ids": np.array([ids], dtype=np.int64), "attention_mask": np.ones((1, len(ids)), dtype=np.int64),
            "position_ids": np.arange(len(ids), dtype=np.int64)[None]}
    for i in sess.get_inputs():
        if i.name.startswith("past_key_values."):
            feed[i.name] = np.zeros((1, i.shape[1], 0, i.shape[3]), dtype=np.float32)
    return sess.run(["logits"], feed)[0][0]


def test_tiny_model_exports_with_a_kv_cache_and_matches_torch(tiny_export):
    import torch

    model, fp32, int8, int4 = tiny_export
    ids = [5, 17, 300, 42, 7, 99, 1]
    with torch.no_grad():
        want = model(torch.tensor([ids])).logits[0].numpy()
    got = _ort_logits(fp32, ids)
    assert np.abs(got - want).max() < 1e-3
    for folder in (int8, int4):  # quantized: close, not equal; the same argmax for most positions
        q = _ort_logits(folder, ids)
        assert q.shape == want.shape and np.isfinite(q).all()


def test_tiny_int8_weights_are_at_least_twice_smaller_and_the_tied_head_is_quantized(tiny_export):
    import onnx

    _, fp32, int8, int4 = tiny_export
    # Weights only: in a model this small the graph itself weighs as much as the weights.
    weights = lambda f: sum(len(i.raw_data) for i in onnx.load(str(f / "model.onnx")).graph.initializer)  # noqa: E731
    assert weights(fp32) >= 2 * weights(int8)
    graph = onnx.load(str(int8 / "model.onnx")).graph
    consts = {i.name for i in graph.initializer}
    # every MatMul with a weight, lm_head included, became MatMulInteger (attention's MatMuls have none)
    assert not [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in consts]
    assert [n for n in graph.node if n.op_type == "MatMulInteger" and "lm_head" in n.name]
    ops4 = [n.op_type for n in onnx.load(str(int4 / "model.onnx")).graph.node]
    assert "MatMulNBits" in ops4


# -- ONNX: the real model, through the engine -----------------------------------------------------------
def test_onnx_int8_is_at_least_twice_smaller_than_fp32(onnx_built):
    fp32 = catalog.path_size(onnx_built[f"{TEST_MODEL}@onnx-fp32"])
    int8 = catalog.path_size(onnx_built[f"{TEST_MODEL}@onnx-int8"])
    assert fp32 >= 2 * int8
    assert (onnx_built[f"{TEST_MODEL}@onnx-int8"] / "tokenizer.json").is_file()  # the tokenizer travels along


def test_onnx_fp32_scores_text_like_the_f32_gguf(onnx_engine, gguf_built):
    """Same weights, two runtimes: the per-token log-likelihood of a chat agrees to 0.1 %."""
    gguf = LlamaEngine("f32", gguf_built[f"{TEST_MODEL}@F32"], n_ctx=1024, n_threads=2)
    assert onnx_engine.tokenize(CHAT) == gguf.tokenize(CHAT)
    p_onnx, p_gguf = _ppl(onnx_engine, CHAT), _ppl(gguf, CHAT)
    assert abs(p_onnx - p_gguf) / p_gguf < 0.001


def test_onnx_quantized_variants_run_through_the_engine(onnx_built, built_home):
    with glassmate_home(built_home):
        for kind in ("onnx-int8", "onnx-int4"):
            engine = load_engine(f"{TEST_MODEL}@{kind}", n_ctx=512, n_threads=2)
            assert type(engine).__name__ == "OnnxEngine"
            gen = engine.generate(engine.format_chat([ChatMessage("user", "Say hello to Ana.")]),
                                  GenerationParams(max_tokens=16, temperature=0))
            assert gen.completion_tokens > 0 and gen.text.strip()
            assert _ppl(engine, CHAT, 200) < 50  # broken quantization reads as thousands


def test_a_corrupt_onnx_model_is_a_clear_error(onnx_built, tmp_path):
    import shutil

    from device.engines.onnx import OnnxEngine

    folder = tmp_path / "broken"
    shutil.copytree(onnx_built[f"{TEST_MODEL}@onnx-int8"], folder)
    with (folder / "model.onnx").open("r+b") as fh:
        fh.truncate(4096)
    with pytest.raises(EngineError, match="could not load .*rebuild it"):
        OnnxEngine("broken", folder)


def test_runtime_mismatch_is_refused(onnx_built, built_home):
    with glassmate_home(built_home), pytest.raises(EngineError, match="onnx model, not llama"):
        load_engine(f"{TEST_MODEL}@onnx-int8", runtime="llama")


# -- the report's measurements ---------------------------------------------------------------------------
@pytest.mark.skipif(not (SHARED / "dialogsum" / "dialogsum.dev.jsonl").is_file(), reason="needs ../shared data")
def test_report_measures_a_variant_end_to_end(gguf_built, built_home, tmp_path):
    from quantize.report import run_report

    with glassmate_home(built_home):
        report = run_report([TEST_MODEL], SHARED / "dialogsum" / "dialogsum.dev.jsonl", 2, 1, tmp_path / "r",
                            only=[f"{TEST_MODEL}@Q8_0"])
    row = report["variants"][0]
    for key in ("size_bytes", "peak_rss_mb", "prefill_tok_s", "decode_tok_s", "prefill_tok_s_1t",
                "decode_tok_s_1t", "perplexity", "decode_ceiling_tok_s"):
        assert row[key] > 0, key
    assert 0 <= row["rouge_l"] <= 1 and 0 <= row["json_valid_rate"] <= 1
    assert row["peak_rss_mb"] > row["size_bytes"] / 2**20  # the weights are resident
    assert json.loads((tmp_path / "r" / "report.json").read_text())["variants"][0]["name"] == f"{TEST_MODEL}@Q8_0"
    for f in ("report.md", "quality_vs_size.png", "quality_vs_speed.png"):
        assert (tmp_path / "r" / f).stat().st_size > 0


def test_summarize_through_onnx_int8_never_imports_llama_cpp(onnx_built, built_home, dinner_feed):
    import os
    import subprocess
    import sys

    script = ("import sys, json; from typer.testing import CliRunner; from device.cli import app; "
              f"r = CliRunner().invoke(app, ['summarize', {str(dinner_feed)!r}, '--model', "
              f"'{TEST_MODEL}@onnx-int8', '--threads', '2', '--json']); "
              "print(json.dumps({'code': r.exit_code, 'out': r.output, 'llama': 'llama_cpp' in sys.modules}))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=os.environ | {"GLASSMATE_HOME": str(built_home)}, timeout=600)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, result["out"]
    assert result["llama"] is False
    out = json.loads(result["out"])
    assert out["model"] == f"{TEST_MODEL}@onnx-int8" and out["summary"].strip() and len(out["replies"]) == 3
