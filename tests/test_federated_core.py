"""The federated clients' work without Flower around it: per-user partitions, local training of the shared LoRA,
the private personalization, held-out perplexity and reply ranking (tiny random model: CI speed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from federated.partitions import irc_clients, reply_example, shakespeare_clients, speeches
from tests.conftest import SHARED
from tests.test_reply_evaluation import LINKS, RAW

pytest.importorskip("peft")


@pytest.fixture
def irc_dirs(tmp_path):
    train, dev = tmp_path / "train", tmp_path / "dev"
    for d in (train, dev):
        d.mkdir()
        (d / "2026-01-05_10.raw.txt").write_text(RAW)
        (d / "2026-01-05_10.annotation.txt").write_text(LINKS)
    return train, dev


def test_clients_are_users_with_hashed_ids_and_their_own_lines_as_me(irc_dirs):
    train, dev = irc_dirs
    clients = irc_clients(train, dev, min_messages=2)
    assert len(clients) == 2  # only ann and bob reply twice; equal counts are ordered by name
    c = clients[0]
    assert c.id.startswith("u") and "ann" not in c.id and "bob" not in c.id
    assert c.train and c.test
    user_text = c.train[0].messages[1].content
    assert "Me:" in user_text  # the wearer's own earlier line


def test_the_top_users_can_be_kept_out_and_a_client_never_trains_on_its_held_out_replies(irc_dirs):
    from federated import task
    from federated.partitions import Client

    train, dev = irc_dirs
    everyone = irc_clients(train, dev, min_messages=1)
    assert [c.id for c in irc_clients(train, dev, min_messages=1, skip=1)] == [c.id for c in everyone[1:]]
    cfg = task.RunConfig(eval_examples=2)
    alone = Client("u1", everyone[0].train * 3)  # no held-out replies of its own: its last ones become them
    assert task.held_out(alone, cfg) == alone.train[-2:] and task.train_part(alone, cfg) == alone.train[:-2]
    with_dev = everyone[0]
    assert task.held_out(with_dev, cfg) == with_dev.test and task.train_part(with_dev, cfg) == with_dev.train


def test_run_config_settings_are_typed_like_their_defaults():
    import typer

    from federated.cli import _settings

    assert _settings(["eval-ranking=false", "lora-top-layers=8", "lr=0.005", "aggregation=median"]) == {
        "eval-ranking": False, "lora-top-layers": 8, "lr": 0.005, "aggregation": "median"}
    for bad in ("no-such-key=1", "lora-top-layers=eight", "eval-ranking=maybe", "lr"):
        with pytest.raises(typer.BadParameter):
            _settings([bad])


def test_reply_example_prompt_holds_context_and_target_is_the_reply(irc_dirs):
    from lab.irc import reply_pairs

    pair = reply_pairs(irc_dirs[0])[2]  # bob answers ann, after bob's own question
    ex = reply_example(pair)
    assert ex.target == "try turning off power saving for the card, that fixed mine"
    assert "[Mon 10:01] Me: ann: which chipset?" in ex.messages[1].content
    assert "[Mon 10:02] ann: bob: it says Intel AX210" in ex.messages[1].content


@pytest.mark.skipif(not (SHARED / "tiny_shakespeare").is_dir(), reason="needs ../shared/data/tiny_shakespeare")
def test_shakespeare_speakers_are_clients():
    said = speeches(SHARED / "tiny_shakespeare" / "input.txt")
    assert said[0] == ("First Citizen", "Before we proceed any further, hear me speak.")
    clients = shakespeare_clients(SHARED / "tiny_shakespeare" / "input.txt", max_clients=5)
    assert len(clients) == 5 and all(len(c.train) >= 16 and c.test for c in clients)


def test_local_training_personalization_and_metrics_on_the_tiny_model(model_spec):
    from device.assistant import prompts
    from federated.lora import adapter_arrays, load_adapter_state
    from federated.task import RunConfig, initial_arrays, load, local_train, perplexity, personalized, ranking
    from federated.train import Example

    cfg = RunConfig(model="tiny", local_steps=6, personal_steps=6, lr=5e-3, batch_size=2, eval_examples=4)
    lm, tok = load(cfg)
    assert load(cfg)[0] is lm  # one model per process
    start = initial_arrays(cfg)
    load_adapter_state(lm, start)

    def ex(i: int) -> Example:
        return Example(tuple(prompts.next_message_messages("Chat: c (with Ann)", [f"[Mon 10:0{i}] Ann: ping {i}"])),
                       f"pong {i} from me")
    mine = [ex(i) for i in range(8)]
    before = perplexity(lm, tok, mine, cfg)
    loss = local_train(lm, tok, mine, cfg.local_steps, cfg, seed=0)
    after = perplexity(lm, tok, mine, cfg)
    assert math.isfinite(loss) and after < before
    shared = adapter_arrays(lm)
    assert any(not np.array_equal(a, b) for a, b in zip(start, shared, strict=True))

    private, chosen = personalized(lm, tok, shared, mine, cfg, seed=1)
    assert chosen in ("global", "private")
    assert any(not np.array_equal(a, b) for a, b in zip(shared, private, strict=True))
    assert perplexity(lm, tok, mine, cfg) < after  # the private part fits this wearer better still

    # a global adapter wrecked by noise: the wearer's validation replies pick the private adapter instead
    rng = np.random.default_rng(0)
    wrecked = [a + rng.normal(0.0, 1.0, a.shape).astype(np.float32) for a in shared]
    _, chosen = personalized(lm, tok, wrecked, mine, cfg, seed=1)
    assert chosen == "private"

    pool = [f"unrelated message number {i}" for i in range(20)]
    mrr, p1 = ranking(lm, tok, mine, pool, cfg)
    assert 0.1 <= mrr <= 1.0 and 0.0 <= p1 <= 1.0


def test_canary_exposure_detects_a_memorised_secret(model_spec):
    from federated.canaries import audit, canaries, exposure, planted
    from federated.lora import load_adapter_state
    from federated.task import RunConfig, initial_arrays, load, local_train

    cfg = RunConfig(model="tiny", lr=5e-3, batch_size=4, seed=0)
    lm, tok = load(cfg)
    load_adapter_state(lm, initial_arrays(cfg))
    canary = canaries(2, seed=0)[1]
    assert canary.secret != canaries(2, seed=0)[0].secret and canaries(2, seed=0) == canaries(2, seed=0)
    before = exposure(lm, tok, canary, candidates=100)
    local_train(lm, tok, planted(canary, 16), 30, cfg, seed=0)
    report = audit(lm, tok, [canary], candidates=100)
    assert report["exposure_mean"] > before + 2 and report["exposure_mean"] > report["base_exposure_mean"]
    assert 0 <= report["exposure_max"] <= report["max_possible"] == pytest.approx(math.log2(101))


def test_candidates_scored_in_one_batch_score_as_alone(model_spec):
    import torch

    from device.assistant import prompts
    from federated.task import RunConfig, load
    from federated.train import Example, collate, encode, row_mean_losses, target_loss

    lm, tok = load(RunConfig(model="tiny"))
    msgs = tuple(prompts.next_message_messages("Chat: c (with Ann)", ["[Mon 10:01] Ann: ping"]))
    enc = [encode(tok, Example(msgs, c)) for c in ["pong", "a much longer reply that pads the batch a lot", "ok"]]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    with torch.no_grad():
        alone = [float(target_loss(lm.model, *collate(enc, [i], pad))[0]) for i in range(3)]
        together = row_mean_losses(lm.model, *collate(enc, [0, 1, 2], pad))
    assert together == pytest.approx(alone, rel=1e-4) and len(set(together)) == 3


def test_round_zero_is_reused_only_from_a_run_with_the_same_model_data_and_evaluation(tmp_path):
    import json as _json

    from federated.server_app import _reused_round0

    earlier = {"config": {"model": "smollm2-135m", "seed": 0, "num-clients": 10, "eval-examples": 8,
                          "noise-multiplier": 0.0}, "rounds": [{"round": 0, "ppl_base": 41.2, "evaluated": 10}]}
    path = tmp_path / "fl.json"
    path.write_text(_json.dumps(earlier))
    same = {"model": "smollm2-135m", "seed": 0, "num-clients": 10, "eval-examples": 8, "noise-multiplier": 1.2}
    assert _reused_round0(str(path), same) == {"ppl_base": 41.2, "evaluated": 10, "reused_from": str(path)}
    with pytest.raises(ValueError, match="eval-examples"):
        _reused_round0(str(path), same | {"eval-examples": 16})


def test_the_scale_curve_reads_finished_runs_and_draws_the_prediction(tmp_path):
    import json

    from federated.plots import plot_scale, scale_rows

    def run(name: str, clients: int, noise: float, final: dict | None):
        d = tmp_path / name
        d.mkdir()
        doc = {"config": {"clients-per-round": clients, "noise-multiplier": noise, "num-rounds": 3},
               "rounds": [{"round": 0}, {"round": 3, "evaluated": 20}]}
        if final is not None:
            doc["final"] = final
        (d / "fl.json").write_text(json.dumps(doc))
        return d

    runs = [run("dp-200", 200, 1.2, {"ppl_base": 450.0, "ppl_global": 130.0, "epsilon": 7.25}),
            run("dp-20", 20, 1.2, {"ppl_base": 450.0, "ppl_global": 9e5, "epsilon": 7.25}),
            run("unfinished", 50, 1.2, None), run("free", 200, 0.0, {"ppl_base": 450.0, "ppl_global": 120.0}),
            tmp_path / "not-a-run.sh"]
    rows = scale_rows(runs)
    assert [(r["run"], r["clients"]) for r in rows] == [("free", 200), ("dp-20", 20), ("dp-200", 200)]
    assert rows[0]["epsilon"] is None and rows[2]["evaluated"] == 20
    budget = tmp_path / "noise_budget.json"
    budget.write_text(json.dumps({"noise_multiplier": 1.2, "rows": [
        {"clients_per_round": m, "ppl": 120.0 * (1 + 10 / m)} for m in (1, 10, 100, 1000)]}))
    out = plot_scale(runs, budget, tmp_path / "scale.png")
    assert out.stat().st_size > 10_000
