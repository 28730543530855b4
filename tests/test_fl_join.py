"""Glasses in a federated round with their own data (`glassmate fl join`), over TLS with SuperNode
authentication, on the deployment engine on loopback: a SuperLink, three registered nodes whose stores hold
different users' chats, DP on, and a fourth node with a valid key and the CA but not registered, which is refused.
Nothing but the egress-gated update and numbers leaves a node."""

from __future__ import annotations

import json

import pytest

from device.messages.store import MessageStore
from tests.test_federated_sim import synthetic_irc

pytest.importorskip("flwr")
pytest.importorskip("peft")


def test_three_registered_glasses_train_on_their_own_stores_and_a_stranger_is_refused(tmp_path, model_spec):
    from federated.launch import join_deployment
    from lab.wearer import fill_store

    synthetic_irc(tmp_path / "irc")
    stores, sent = [], {}
    for user in ("ana", "ben", "cyd", "dov"):
        path = tmp_path / "glasses" / user / "glassmate.db"
        with MessageStore(path) as store:
            assert fill_store(store, tmp_path / "irc", user) >= 20
            sent[user] = [m.text for _, m in store.messages() if m.from_wearer]
        stores.append(path)
    out = tmp_path / "secure"
    config = {"model": "tiny", "num-clients": 3, "clients-per-round": 3, "min-clients": 3, "num-rounds": 2,
              "local-steps": 2, "personal-steps": 2, "batch-size": 2, "eval-examples": 4, "max-len": 192,
              "noise-multiplier": 1.0, "clipping-norm": 0.5, "round-timeout": 300.0, "out-dir": str(out / "run")}
    result = join_deployment(out, stores[:3], config, timeout=1500, stranger=stores[3])

    doc = json.loads((out / "run" / "fl.json").read_text())
    rounds = doc["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert all(r["replied"] == 3 and r["aggregated"] for r in rounds[1:]), "the three registered glasses took part"
    assert rounds[-1]["evaluated"] == 3 and 0 < rounds[1]["epsilon"] < rounds[2]["epsilon"]

    stranger = result["stranger"]
    assert stranger["exit"] not in (None, 0), "the unregistered node was not let in"
    assert "Failed to activate SuperNode" in stranger["log"].read_text()

    for home in result["nodes"]:
        (audit,) = (home / "devices" / "state" / "fl").glob("*/audit.jsonl")
        entries = [json.loads(line) for line in audit.read_text().splitlines()]
        # one clipped update per round and one set of numbers per evaluation (rounds 0, 1, 2), each let out
        assert len(entries) == 2 + 3 and all(e["allowed"] and e["kind"] == "fl-update" for e in entries)
        assert {e["destination"] for e in entries} == {"fl-server"}
    # what the SuperLink kept of the run holds none of what the wearers wrote
    held = b"".join(p.read_bytes() for p in out.glob("superlink.db*"))
    assert held and not [t for texts in sent.values() for t in texts if len(t) > 12 and t.encode() in held]
