"""The Flower app end to end on the tiny model: the simulation engine (a SuperLink on loopback), DP with the RDP
accountant's ε, the update through the egress gate, fl.json with its final block."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("flwr")
pytest.importorskip("peft")

USERS = ["ana", "ben", "cyd", "dov"]
TOPICS = ["wifi drops on my laptop", "mount an iso file", "see free disk space", "bigger terminal font",
          "update grub after install", "sound stops after suspend"]


def synthetic_irc(folder, n_lines: int = 96) -> None:
    """A chat written for the tests: users take turns answering each other, every line linked to the one before."""
    folder.mkdir(parents=True, exist_ok=True)
    raw, links = [], []
    for i in range(n_lines):
        who = USERS[i % len(USERS)]
        prev = USERS[(i - 1) % len(USERS)]
        topic = TOPICS[(i // len(USERS)) % len(TOPICS)]
        text = f"{prev}: about {topic}, try step {i % 7} and tell me" if i else f"help with {topic}?"
        raw.append(f"[{10 + i // 60:02d}:{i % 60:02d}] <{who}> {text}")
        links.append(f"{i - 1 if i else 0} {i} -")
    (folder / "2026-01-05_10.raw.txt").write_text("\n".join(raw) + "\n")
    (folder / "2026-01-05_10.annotation.txt").write_text("\n".join(links) + "\n")


@pytest.fixture
def irc_data(tmp_path):
    synthetic_irc(tmp_path / "train")
    synthetic_irc(tmp_path / "dev", 48)
    return tmp_path / "train", tmp_path / "dev"


def test_simulation_with_dp_reports_epsilon_and_metrics(irc_data, tmp_path, model_spec):
    from federated.launch import simulation

    train, dev = irc_data
    out = tmp_path / "run"
    config = {"model": "tiny", "dataset": "irc", "data-train": str(train), "data-dev": str(dev),
              "min-messages": 10, "num-clients": 3, "clients-per-round": 3, "num-rounds": 2, "local-steps": 2,
              "personal-steps": 2, "batch-size": 2, "eval-examples": 4, "max-len": 192,
              "noise-multiplier": 1.0, "clipping-norm": 0.5, "canaries": 1, "eval-clients": 2,
              "out-dir": str(out)}
    env_home = os.environ.get("GLASSMATE_HOME")
    simulation(out, 3, config, timeout=900)
    doc = json.loads((out / "fl.json").read_text())
    rounds = doc["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert rounds[0]["evaluated"] == 2 and rounds[2]["evaluated"] == 2, "a fixed evaluation set of 2 of the 3"
    assert all(r["replied"] == 3 and r["dropped"] == 0 and r["aggregated"] for r in rounds[1:])
    assert rounds[1]["epsilon"] < rounds[2]["epsilon"]  # ε accumulates over releases
    final = doc["final"]
    assert final["delta"] == 1e-5 and final["epsilon"] == rounds[2]["epsilon"]
    for key in ("ppl_base", "ppl_global", "ppl_personalized", "mrr_base", "mrr_personalized"):
        assert final[key] is not None and final[key] > 0
    # the update crosses the gate as raw float32 behind a small header: the size of what the server sends back
    down = rounds[1]["bytes_down_per_client"]
    assert down < final["bytes_up_per_client_round"] < down + 16_384
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    audit = final["canary_audit"]  # client 0 held a planted secret; its exposure under the final model
    assert audit["canaries"] == 1 and 0 <= audit["exposure_max"] <= audit["max_possible"]
    assert os.environ.get("GLASSMATE_HOME") == env_home
    from federated.noise_budget import budget

    with pytest.raises(ValueError, match="trained with noise"):
        budget(out, noise=1.0)
    # every update left through the gate: per client, an allowed fl-update per round and per evaluation
    logs = sorted((out / "devices" / "state" / "fl").glob("*/audit.jsonl"))
    assert len(logs) == 3
    for log in logs:
        entries = [json.loads(line) for line in log.read_text().splitlines()]
        assert len(entries) == 2 + 3 and all(e["allowed"] and e["kind"] == "fl-update" for e in entries)


def _deploy_config(train, dev, out, rounds: int = 2, timeout: float = 60.0) -> dict:
    # Each message starts a fresh ClientApp process (imports, model, data): ~30 s a node on 2 shared cores.
    return {"model": "tiny", "dataset": "irc", "data-train": str(train), "data-dev": str(dev), "min-messages": 10,
            "num-clients": 3, "clients-per-round": 3, "min-clients": 2, "num-rounds": rounds, "local-steps": 2,
            "personal-steps": 2, "batch-size": 2, "eval-examples": 4, "max-len": 192, "round-timeout": timeout,
            "out-dir": str(out)}


def test_deployment_on_loopback_completes(irc_data, tmp_path, model_spec):
    from federated.launch import deployment

    out = tmp_path / "deploy"
    deployment(out, 3, _deploy_config(*irc_data, out, timeout=240.0), timeout=1200)
    doc = json.loads((out / "fl.json").read_text())
    rounds = doc["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2] and all(r["replied"] == 3 for r in rounds[1:])
    assert rounds[-1]["evaluated"] == 3 and doc["final"]["ppl_personalized"] > 0
    # a noise-free run prices DP noise: the noise shrinks as 1/m and so does its effect on perplexity (on the
    # random tiny model noise moves perplexity either way; the real model's table is in results/federated)
    from federated.noise_budget import budget

    priced = budget(out, noise=1.0)
    rows = priced["rows"]
    assert all(a["noise_std"] > b["noise_std"] for a, b in zip(rows, rows[1:], strict=False))
    assert abs(rows[0]["cost"]) > abs(rows[-1]["cost"]) and abs(rows[-1]["cost"]) < 0.005
    assert priced["clients_needed"] is not None and (out / "fl.json").exists()


def test_a_supernode_killed_in_round_two_is_dropped_and_the_run_completes(irc_data, tmp_path, model_spec):
    from federated.launch import deployment

    out = tmp_path / "deploy-kill"
    deployment(out, 3, _deploy_config(*irc_data, out, rounds=3), timeout=900, kill_node_in_round=(2, 2))
    doc = json.loads((out / "fl.json").read_text())
    rounds = doc["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2, 3]
    assert rounds[1]["replied"] == 3
    assert rounds[2]["replied"] == 2 and rounds[3]["replied"] == 2  # the dead node is gone; the rest carry on
    # (with a 60 s round timeout on 2 shared cores some evaluations time out here: this drill is about the training)
    assert all(r["aggregated"] for r in rounds[1:]) and "final" in doc


def test_secure_aggregation_survives_a_dropout_and_accounts_the_noise_that_arrived(irc_data, tmp_path, model_spec):
    from federated.launch import simulation
    from federated.secure_aggregation import effective_noise

    train, dev = irc_data
    out = tmp_path / "secagg"
    config = {"model": "tiny", "dataset": "irc", "data-train": str(train), "data-dev": str(dev),
              "min-messages": 10, "num-clients": 3, "clients-per-round": 3, "min-clients": 2, "num-rounds": 2,
              "local-steps": 2, "personal-steps": 2, "batch-size": 2, "eval-examples": 4, "max-len": 192,
              "noise-multiplier": 1.0, "clipping-norm": 0.5, "secagg": True, "secagg-drop": "2@2",
              "round-timeout": 300.0, "out-dir": str(out)}
    simulation(out, 3, config, timeout=900)
    doc = json.loads((out / "fl.json").read_text())
    rounds = doc["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2] and all(r["secagg"] for r in rounds[1:])
    assert rounds[1]["replied"] == 3 and rounds[2]["replied"] == 2 and rounds[2]["dropped"] == 1
    assert all(r["aggregated"] for r in rounds[1:])  # the dropped client's masks were rebuilt from shares
    assert 0 < rounds[1]["epsilon"] < rounds[2]["epsilon"] and doc["final"]["secagg"] is True
    assert effective_noise(1.0, 3, 2) < 1.0  # fewer noise shares arrived: the accountant charges more
    # the global adapter moved: the unmasked mean update was applied
    assert rounds[2]["ppl_global"] != rounds[0]["ppl_global"]
    # every protocol reply and every update left through the wearer's gate; none was refused
    for log in sorted((out / "devices" / "state" / "fl").glob("*/audit.jsonl")):
        entries = [json.loads(line) for line in log.read_text().splitlines()]
        kinds = {e["kind"] for e in entries}
        assert {"fl-secagg", "fl-update"} <= kinds and all(e["allowed"] for e in entries)
