"""Task adapters: the training loop, the GGUF LoRA export (checked against PyTorch), per-task switching in the
engine and the assistant, the registry, and the split that keeps an adapter's training rows out of its eval."""

from __future__ import annotations

import json

import numpy as np
import pytest

from device.assistant.core import Assistant
from device.catalog import CatalogError
from device.engines import load_engine
from device.engines.adapters import AdapterSpec, adapters_for, register_adapter, verified
from device.engines.base import ChatMessage, EngineError
from device.messages.inbox import FeedError, group_threads, read_feed
from device.tasks import Task
from lab.evaluation import eval_summaries
from tests.conftest import TEST_MODEL, glassmate_home

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def smollm2_torch(model_spec):
    from federated.base_model import load_gguf

    return load_gguf(TEST_MODEL, model_spec.path)


def _example_ids(bm) -> list[int]:
    from device.assistant import prompts
    from federated.train import Example, encode

    msgs = prompts.summary_messages("Chat: Dinner (with Marco)", ["[Fri 20:40] Marco: Luigi's at 8pm, table for 6"])
    ids, _ = encode(bm.tokenizer, Example(tuple(msgs), "Marco booked Luigi's for 8pm."))
    return ids


def _torch_logprobs(model, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    return np.array([float(lp[i, ids[i + 1]]) for i in range(len(ids) - 1)])


def test_gguf_lora_adapter_runs_in_llama_cpp_as_in_pytorch(smollm2_torch, model_spec, tmp_path):
    """Random LoRA weights, exported and loaded by llama.cpp over the Q4_1 file: llama.cpp's log-probabilities
    follow PyTorch's adapted model (within the Q4/Q8 arithmetic noise that the bare models also show), and an
    export without llama.cpp's Q/K row permutation is measurably wrong."""
    import torch

    import federated.gguf_lora as gguf_lora
    from federated.lora import ALL_LINEAR, LoraSpec, adapter_state, attach

    lm = attach(smollm2_torch.model, LoraSpec(r=8, alpha=16, targets=ALL_LINEAR))
    try:
        with torch.no_grad():
            for name, p in lm.model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.15, generator=torch.Generator().manual_seed(1))
        ids = _example_ids(smollm2_torch)
        adapted = _torch_logprobs(lm.model, ids)
        with lm.model.disable_adapter():
            bare = _torch_logprobs(lm.model, ids)
        state = adapter_state(lm)
        good = gguf_lora.write_gguf_adapter(tmp_path / "a.gguf", state, smollm2_torch.model.config, "llama", 16)
        original = gguf_lora.llama_permute
        gguf_lora.llama_permute = lambda w, n: w
        try:
            bad = gguf_lora.write_gguf_adapter(tmp_path / "b.gguf", state, smollm2_torch.model.config, "llama", 16)
        finally:
            gguf_lora.llama_permute = original
    finally:
        smollm2_torch.model = lm.model.unload()

    e = load_engine(TEST_MODEL, n_ctx=512, n_threads=2)
    e.load_adapter("good", good)
    e.load_adapter("bad", bad)
    base_cpp = np.array(e.token_logprobs(ids))
    e.use_adapter("good")
    good_cpp = np.array(e.token_logprobs(ids))
    e.use_adapter("bad")
    bad_cpp = np.array(e.token_logprobs(ids))
    e.use_adapter(None)
    assert np.array_equal(np.array(e.token_logprobs(ids)), base_cpp)  # switching back is exact

    noise = np.abs(base_cpp - bare).mean()  # Q4_1 under llama.cpp vs its dequantized weights in PyTorch
    shift = np.abs(adapted - bare).mean()  # what the adapter changes
    assert shift > 3 * noise
    assert np.abs(good_cpp - adapted).mean() < noise + 0.25 * shift
    assert np.abs(bad_cpp - adapted).mean() > np.abs(good_cpp - adapted).mean() + 0.1 * shift


def test_engine_refuses_a_file_that_is_not_an_adapter(tmp_path, engine):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(EngineError, match="LoRA adapter"):
        engine.load_adapter("junk", junk)
    with pytest.raises(EngineError, match="not loaded"):
        engine.use_adapter("never-loaded")
    with pytest.raises(EngineError, match="does not exist"):
        engine.load_adapter("missing", tmp_path / "missing.gguf")


def test_onnx_engine_says_adapters_run_under_llama_cpp(onnx_engine):
    with pytest.raises(EngineError, match="llama.cpp"):
        onnx_engine.load_adapter("x", "x.gguf")
    onnx_engine.use_adapter(None)


def _train_tiny(model_spec, tmp_path, steps_before_crash: int | None = None):
    from device.assistant import prompts
    from federated.base_model import tiny_model
    from federated.lora import LoraSpec, adapter_arrays, attach
    from federated.train import Example, TrainConfig, train

    bm = tiny_model(model_spec.path, seed=0)
    lm = attach(bm.model, LoraSpec(r=4, alpha=8, dropout=0.0), seed=0)
    examples = [Example(tuple(prompts.summary_messages("Chat: t", [f"[Mon 09:0{i}] Ann: meet at {i} pm?"])),
                        f"Ann asks to meet at {i} pm.") for i in range(8)]
    config = TrainConfig(epochs=3, lr=5e-3, batch_size=2, seed=0, save_every=2)
    ckpt = tmp_path / "ckpt.pt"

    class Crash(Exception):
        pass

    def stop_at(step, total, loss):
        if steps_before_crash is not None and step == steps_before_crash:
            raise Crash
    if steps_before_crash is not None:
        with pytest.raises(Crash):
            train(lm, bm.tokenizer, examples, config, checkpoint=ckpt, progress=stop_at, recipe="r")
        bm = tiny_model(model_spec.path, seed=0)
        lm = attach(bm.model, LoraSpec(r=4, alpha=8, dropout=0.0), seed=0)
    report = train(lm, bm.tokenizer, examples, config, checkpoint=ckpt, recipe="r")
    return report, adapter_arrays(lm)


def test_training_lowers_the_loss_and_resumes_to_the_same_weights(model_spec, tmp_path):
    straight, weights = _train_tiny(model_spec, tmp_path / "a")
    assert straight.steps == 12 and straight.examples == 8
    assert straight.last_loss < straight.first_loss
    resumed, weights2 = _train_tiny(model_spec, tmp_path / "b", steps_before_crash=5)
    assert resumed.resumed_from == 4  # the last checkpoint before the crash
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(weights, weights2, strict=True))
    assert resumed.losses == straight.losses


def test_registry_checks_sha256_and_the_eval_refuses_training_rows(tmp_path, model_spec, engine, smollm2_torch):
    from federated.gguf_lora import write_gguf_adapter
    from federated.lora import LoraSpec, adapter_state, attach

    lm = attach(smollm2_torch.model, LoraSpec(r=2, alpha=4, top_layers=1))
    state = adapter_state(lm)
    smollm2_torch.model = lm.model.unload()
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / model_spec.file).symlink_to(model_spec.path)
    with glassmate_home(home):
        rel = "built/adapters/smollm2-135m.catch_up.gguf"
        write_gguf_adapter(home / "models" / rel, state, smollm2_torch.model.config, "llama", 4)
        spec = register_adapter(AdapterSpec("smollm2-135m.catch_up", TEST_MODEL, "catch_up", rel, "", 0,
                                            trained_on={"data": "x.jsonl", "ids": ["b"]}))
        assert adapters_for("smollm2-135m@Q8_0") == {"catch_up": spec}
        assert verified(spec) == spec

        e = load_engine(TEST_MODEL, n_ctx=1024, n_threads=2)
        from device.engines.adapters import attach as attach_adapters
        tasks = attach_adapters(e, TEST_MODEL)
        assert tasks == {"catch_up": "smollm2-135m.catch_up"}
        data = tmp_path / "d.jsonl"
        data.write_text("".join(json.dumps({"fname": f, "dialogue": "#Person1#: Lunch at 1?\n#Person2#: Sure.",
                                            "summary": "They agree on lunch at 1."}) + "\n" for f in "ab"))
        with pytest.raises(FeedError, match="trained the adapter"):
            eval_summaries(Assistant(e, adapters=tasks), data, n=2, exclude_ids=spec.training_ids())
        result = eval_summaries(Assistant(e, adapters=tasks), data, n=1, exclude_ids=spec.training_ids())
        assert result.adapter == "smollm2-135m.catch_up" and result.n == 1

        (home / "models" / rel).write_bytes(b"tampered")
        with pytest.raises(CatalogError, match="sha256"):
            verified(spec)


def test_assistant_puts_each_tasks_adapter_in_effect(tmp_path, dinner_feed, smollm2_torch):
    from federated.gguf_lora import write_gguf_adapter
    from federated.lora import LoraSpec, adapter_state, attach

    lm = attach(smollm2_torch.model, LoraSpec(r=2, alpha=4, top_layers=1))
    state = adapter_state(lm)
    smollm2_torch.model = lm.model.unload()
    path = write_gguf_adapter(tmp_path / "s.gguf", state, smollm2_torch.model.config, "llama", 4)
    e = load_engine(TEST_MODEL, n_ctx=2048, n_threads=2)
    from device.engines.adapters import attach as attach_adapters

    tasks = attach_adapters(e, TEST_MODEL, files={Task.CATCH_UP: path}, registered=False)
    a = Assistant(e, adapters=tasks, verbatim_words=0)
    thread = group_threads(read_feed(dinner_feed))["Dinner Friday"]
    a.catch_up(thread)
    assert e.adapter == "file:s.gguf" and e.identity == f"{TEST_MODEL}+file:s.gguf"
    state_under_adapter = e.save_prefix(e.format_chat([ChatMessage("user", "hi")]))
    a.notify(thread.messages[-1])
    assert e.adapter is None
    with pytest.raises(EngineError, match="belongs to"):
        e.restore_prefix(state_under_adapter)
    a.draft_replies(thread)
    assert e.adapter is None  # no replies adapter given: the bare model


def test_reply_json_reports_the_adapter_given_on_the_command_line(tmp_path, dinner_feed, smollm2_torch):
    """`glassmate reply --adapter FILE --json` names the adapter the drafts ran under (and none for a polish)."""
    from typer.testing import CliRunner

    from device.cli import app
    from federated.gguf_lora import write_gguf_adapter
    from federated.lora import LoraSpec, adapter_state, attach

    lm = attach(smollm2_torch.model, LoraSpec(r=2, alpha=4, top_layers=1))
    state = adapter_state(lm)
    smollm2_torch.model = lm.model.unload()
    path = write_gguf_adapter(tmp_path / "mine.gguf", state, smollm2_torch.model.config, "llama", 4)
    runner = CliRunner()
    args = ["reply", str(dinner_feed), "--json", "--model", TEST_MODEL, "--threads", "2", "--no-adapters",
            "--adapter", str(path)]
    drafts = runner.invoke(app, args)
    assert drafts.exit_code == 0, drafts.output
    out = json.loads(drafts.stdout)
    assert out["adapter"] == "file:mine.gguf" and len(out["replies"]) == 3
    polished = runner.invoke(app, [*args, "--dictate", "sure see you then"])
    assert polished.exit_code == 0, polished.output
    assert json.loads(polished.stdout)["adapter"] is None  # the adapter is for drafts; polishing runs bare
    missing = runner.invoke(app, [*args[:-1], str(tmp_path / "nope.gguf")])
    assert missing.exit_code == 2 and "--adapter" in missing.stderr


def test_a_wearers_federated_adapter_runs_in_llama_cpp_and_changes_their_drafts(tmp_path, smollm2_torch):
    """`glassmate fl drafts`: the personalized GGUF LoRA a run left on the device, in the glasses' engine."""
    import torch

    from federated.gguf_lora import write_gguf_adapter
    from federated.lora import LoraSpec, adapter_state, attach
    from federated.personal_drafts import compare
    from lab.irc import client_id, reply_pairs
    from tests.test_reply_evaluation import LINKS, RAW

    data = tmp_path / "irc"
    data.mkdir()
    (data / "2026-01-05_10.raw.txt").write_text(RAW)
    (data / "2026-01-05_10.annotation.txt").write_text(LINKS)
    counts: dict[str, int] = {}
    for p in reply_pairs(data):
        counts[p.user.lower()] = counts.get(p.user.lower(), 0) + 1
    top = sorted(counts, key=lambda u: (-counts[u], u))[0]

    lm = attach(smollm2_torch.model, LoraSpec(r=4, alpha=8, top_layers=2))
    state = adapter_state(lm)
    smollm2_torch.model = lm.model.unload()
    gen = torch.Generator().manual_seed(0)
    state = {k: (v + 0.05 * torch.randn(v.shape, generator=gen) if "lora_B" in k else v) for k, v in state.items()}
    run = tmp_path / "run"
    gguf = run / "devices" / "state" / "fl" / client_id(top) / "personal_adapter.gguf"
    write_gguf_adapter(gguf, state, smollm2_torch.model.config, "llama", 8)
    (run / "fl.json").write_text(json.dumps({"config": {"model": TEST_MODEL, "data-train": str(data),
                                                        "data-dev": str(data), "min-messages": 1,
                                                        "num-clients": 3}}))
    doc = compare(run, 0, n=1, threads=2)
    assert doc["client_id"] == client_id(top) and doc["n"] >= 1
    assert doc["ppl_true_reply_personal"] != pytest.approx(doc["ppl_true_reply_bare"], rel=1e-3)
    for row in doc["rows"]:
        assert len(row["drafts_bare"]) == 3 and len(row["drafts_personal"]) == 3
    assert doc["drafts_changed"] >= 1
    with pytest.raises(ValueError, match="clients 0..2"):
        compare(run, 7)
