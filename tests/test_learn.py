"""On-device learning (federated/learn.py) and the versioned personal adapter (device/engines/personal.py): an
adapter is installed only when the wearer's held-out sends are more likely under it, a worse one never is, a run
stopped part-way resumes and installs nothing until it finishes, a corrupt one is rolled back."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from device.catalog import CatalogError
from device.engines.adapters import attach
from device.engines.personal import PersonalAdapters, Status
from device.messages.store import MessageStore
from device.tasks import Task
from tests.fakes import FakeEngine

IRC_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "ubuntu_irc" / "train"


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_versions_install_reject_roll_back_and_a_corrupt_one_is_taken_out_of_use(tmp_path, caplog):
    mine = PersonalAdapters(tmp_path / "state", "smollm2-135m@Q8_0")
    assert mine.model == "smollm2-135m" and mine.current() is None
    v1 = mine.install(_file(tmp_path, "a.gguf", b"one"), _file(tmp_path, "a.pt", b"w1"), {"loss_after": 4.0})
    v2 = mine.install(_file(tmp_path, "b.gguf", b"two"), None, {"loss_after": 3.0})
    rejected = mine.reject({"loss_after": 3.5})
    assert (v1.version, v2.version, rejected.version) == (1, 2, 3)
    assert mine.current() == v2 and rejected.gguf == "" and rejected.status is Status.REJECTED

    engine = FakeEngine([])
    engine.runtime = "llama"
    assert attach(engine, "smollm2-135m", registered=False, personal=tmp_path / "state") == \
        {Task.DRAFT_REPLIES: "personal:v2"}
    assert engine.adapters["personal:v2"] == mine.path("v0002.gguf")

    mine.path(v2.gguf).write_bytes(b"tw0")  # flipped bits on the device's storage
    with caplog.at_level(logging.WARNING):
        assert mine.current().version == 1
    assert "v2 of smollm2-135m is corrupt" in caplog.text
    assert mine.history().get(2).status is Status.CORRUPT
    with pytest.raises(CatalogError, match="corrupt"):
        mine.rollback(to=2)

    assert mine.rollback() is None and mine.current() is None, "before v1: the bare model"
    assert mine.rollback(to=1).version == 1 and mine.current().version == 1
    engine = FakeEngine([])
    engine.runtime = "llama"
    assert attach(engine, "smollm2-135m", registered=False, personal=tmp_path / "state") == \
        {Task.DRAFT_REPLIES: "personal:v1"}


def test_an_unreadable_history_runs_the_bare_model_and_says_why(tmp_path, caplog):
    mine = PersonalAdapters(tmp_path, "smollm2-135m")
    mine.root.mkdir(parents=True)
    mine.history_path.write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert mine.current() is None
    assert "unreadable" in caplog.text
    with pytest.raises(CatalogError, match="unreadable"):
        mine.history()


def test_too_few_sends_is_a_clear_error_before_any_model_is_loaded(tmp_path):
    pytest.importorskip("torch")
    from federated.learn import NotEnoughData, learn

    with MessageStore(tmp_path / "glassmate.db") as store, pytest.raises(NotEnoughData, match="0 sent replies"):
        learn(store, tmp_path / "state", "smollm2-135m", base=object())


class Interrupted(Exception):
    pass


@pytest.mark.skipif(not IRC_TRAIN.is_dir(), reason="needs ../shared/data/ubuntu_irc")
def test_learning_on_a_simulated_wearer_installs_only_what_is_better(model_spec, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from dataclasses import replace

    from federated.base_model import load_catalog_model
    from federated.learn import TRAIN, learn, llama_check, wearer_sends
    from lab.wearer import fill_store, users_by_replies

    state = tmp_path / "state"
    store = MessageStore(tmp_path / "glassmate.db")
    user = users_by_replies(IRC_TRAIN)[0]
    assert fill_store(store, IRC_TRAIN, user, limit=60) == 60 and len(wearer_sends(store)) == 60
    base = load_catalog_model(model_spec.name)
    config = replace(TRAIN, epochs=1.0, save_every=4)  # 40 sends to train on: 10 steps, a checkpoint every 4

    def stop_at_6(step, total, loss):
        if step == 6:
            raise Interrupted
    with pytest.raises(Interrupted):
        learn(store, state, model_spec.name, config=config, base=base, progress=stop_at_6)
    mine = PersonalAdapters(state, model_spec.name)
    assert mine.history().versions == [] and mine.current() is None, "a stopped run installs nothing"
    assert list((state / "training").glob("personal-*.pt")), "it left its checkpoint"

    report = learn(store, state, model_spec.name, config=config, base=base, check_gguf=llama_check(model_spec.name))
    assert report.resumed_from == 4 and report.steps == 10
    assert report.decision == "installed" and report.loss_after < report.loss_bare - 0.01
    assert mine.current().version == 1 and not list((state / "training").glob("personal-*.pt"))

    # a run that makes the adapter worse (a learning rate that wrecks it) is recorded and never used
    wrecked = learn(store, state, model_spec.name, config=replace(config, lr=0.5), base=base)
    assert wrecked.decision == "rejected" and wrecked.loss_after > wrecked.loss_before
    assert wrecked.loss_before == report.loss_after, "it was compared with the adapter in effect"
    assert mine.history().get(2).report["started_from"] == 1, "and trained on from it, not from scratch"
    assert mine.current().version == 1 and mine.history().get(2).status is Status.REJECTED

    # the CLI shows it, then the file in effect is corrupted: the glasses run the bare model
    from typer.testing import CliRunner

    import device.paths
    from device.cli import app
    monkeypatch.setattr(device.paths, "state_dir", lambda: state)
    out = CliRunner().invoke(app, ["adapters", "history", "--model", model_spec.name, "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["current"] == 1 and [v["status"] for v in doc["versions"]] == ["installed", "rejected"]
    out = CliRunner().invoke(app, ["learn", "status", "--model", model_spec.name, "--store",
                                   str(tmp_path / "glassmate.db"), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["sent_replies"] == 60 and json.loads(out.stdout)["personal_adapter"] == 1

    f = mine.path(mine.current().gguf)
    f.write_bytes(f.read_bytes()[:-64] + bytes(64))
    from device.engines import load_engine
    engine = load_engine(model_spec.name, n_ctx=512, n_threads=2)
    assert attach(engine, model_spec.name, registered=False, personal=state) == {}
    assert mine.current() is None and mine.history().get(1).status is Status.CORRUPT


def test_the_glasses_learn_when_quiet_stop_when_the_wearer_is_back_and_take_what_was_installed(tmp_path):
    import sys
    import time

    from device.glasses.idle_learning import IdleLearner, IdlePolicy

    script = tmp_path / "learn.py"  # stands in for `glassmate learn --json`: a real process, a scripted report
    script.write_text("import json, sys, time\ntime.sleep(float(sys.argv[1]))\n"
                      "print(json.dumps({'decision': 'installed', 'sends': 25, 'version': 1}))\n")
    now, active, sends, installed = [1000.0], [1000.0], [12], []
    learner = IdleLearner(lambda: active[0], lambda: sends[0], [sys.executable, str(script), "30"],
                          installed.append, IdlePolicy(idle_s=600, min_new_sends=10), clock=lambda: now[0])
    now[0] += 700
    learner.step()
    assert learner.proc is None, "quiet, but nothing new sent since the glasses started"
    sends[0] = 25
    active[0] = now[0] - 100
    learner.step()
    assert learner.proc is None, "not quiet long enough"
    now[0] += 600
    learner.step()
    first = learner.proc
    assert first is not None and first.poll() is None, "quiet and 13 new replies: learning runs"
    active[0] = now[0] + 1  # the wearer touches the glasses
    learner.step()
    assert learner.proc is None and first.poll() is not None and installed == [], "stopped at once, nothing taken"

    learner.command = [sys.executable, str(script), "0"]
    now[0] += 1200
    learner.step()
    deadline = time.monotonic() + 30
    while learner.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    learner.step()
    assert installed == [{"decision": "installed", "sends": 25, "version": 1}] and learner.learned_at == 25
    now[0] += 1200
    learner.step()
    assert learner.proc is None, "nothing new since that run"
