"""The simulated wearer's life (lab/wearer_life.py), without a model: a user's log days become the days of the
life, the wearer picks the closest draft only when it is close, the days are summarised per arm, and a federated
run's global adapter becomes the wearer's first personal version with its own LoRA shape."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from device.engines.personal import PersonalAdapters
from device.messages.store import MessageStore
from lab.wearer_life import DayRow, LifeConfig, add_send, closest, life_days, summary

pytest.importorskip("torch")

DAY = """[10:00] <ann> my wifi drops every few minutes
[10:01] <bob> ann: which chipset?
[10:02] <ann> bob: Intel AX210
[10:03] <bob> ann: turn off power saving for the card
[10:04] <ann> bob: that did it, thanks
"""
LINKS = "0 0 -\n0 1 -\n1 2 -\n2 3 -\n3 4 -\n"


def _logs(tmp_path, days: list[str]):
    for d in days:
        (tmp_path / f"{d}_10.raw.txt").write_text(DAY)
        (tmp_path / f"{d}_10.annotation.txt").write_text(LINKS)
    return tmp_path


def test_log_days_in_order_are_the_days_of_the_life_and_short_days_do_not_count(tmp_path):
    folder = _logs(tmp_path, ["2009-01-05", "2008-06-03", "2010-02-01"])
    days = life_days(folder, "bob", LifeConfig(days=2, min_day_replies=2))
    assert [d[0].file[:10] for d in days] == ["2008-06-03", "2009-01-05"]
    assert [p.reply.text for p in days[0]] == ["ann: which chipset?", "ann: turn off power saving for the card"]
    assert life_days(folder, "bob", LifeConfig(days=3, min_day_replies=3)) == []


def test_the_wearer_picks_the_closest_draft_and_a_send_lands_in_the_store_as_theirs(tmp_path):
    assert closest(["Sounds good!", "try turning off power saving", "Can we talk later?"],
                   "turn off power saving for the card")[0] == 1
    assert closest([], "anything") == (-1, 0.0)
    _, score = closest(["Sounds good!"], "turn off power saving for the card")
    assert score < LifeConfig().pick_at
    (tmp_path / "logs").mkdir()
    folder = _logs(tmp_path / "logs", ["2009-01-05"])
    pair = life_days(folder, "bob", LifeConfig(days=1, min_day_replies=1))[0][1]
    with MessageStore(tmp_path / "glassmate.db") as store:
        add_send(store, pair, "irc-x-0001", "power saving off fixes it")
        messages = store.thread("irc-x-0001").messages
    assert messages[-1].from_wearer and messages[-1].text == "power saving off fixes it"
    assert messages[-1].ts.date().isoformat() == "2009-01-05" and messages[-1].ts > messages[-2].ts


def test_days_are_summarised_per_arm_weighted_by_replies_shown():
    rows = [DayRow("bare", 1, None, 10, 1, 0.2, 5.0, 30), DayRow("bare", 1, None, 30, 0, 0.1, 4.0, 40),
            DayRow("on-device", 1, 1, 10, 5, 0.6, 3.0, 30)]
    s = summary(rows)
    assert list(s) == ["bare", "on-device"]
    assert s["bare"][0]["pick_rate"] == 0.025 and s["bare"][0]["closeness"] == 0.125
    assert s["bare"][0]["ppl"] == round(math.exp(4.5), 2) and s["on-device"][0]["pick_rate"] == 0.5


def test_a_federated_global_adapter_becomes_the_first_personal_version_with_its_shape(tmp_path):
    from federated.learn import spec_of
    from lab.wearer_life import install_federated

    run = tmp_path / "run"
    run.mkdir()
    (run / "fl.json").write_text(json.dumps({"config": {"model": "smollm2-135m", "lora-r": 4,
                                                        "lora-top-layers": 8}, "final": {"epsilon": 7.25}}))
    np.savez(run / "global_adapter.npz", **{"a__lora_A__weight": np.ones((4, 3), np.float32)})
    (run / "global_adapter.gguf").write_bytes(b"GGUF stand-in")
    assert install_federated(tmp_path / "state", "smollm2-135m", run) == 1
    v = PersonalAdapters(tmp_path / "state", "smollm2-135m").current()
    assert v.report["source"] == "federated-global" and v.report["epsilon"] == 7.25
    spec = spec_of(v.report)
    assert (spec.r, spec.alpha, spec.top_layers, spec.targets[0]) == (4, 8.0, 8, "q_proj")
    assert spec_of({}).top_layers == 0, "a version from before shapes were recorded: the default LoRA"
    with pytest.raises(ValueError, match="not tiny"):
        install_federated(tmp_path / "other", "tiny", run)
