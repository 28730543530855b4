"""The egress gate: policies, the store check, the audit log, and canaries that never get out."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from device.cli import app
from device.messages.inbox import FeedError, Message
from device.messages.retention import apply_retention, forget_thread
from device.messages.store import MessageStore
from device.privacy import audit_log, open_gate
from device.privacy.crash import report_crash
from tests.conftest import write_feed

CANARY_CODE = "canary-7c1e9d44-wombat"
CANARY_TEXT = "the spare key is under the blue flowerpot by the shed"


@pytest.fixture
def gate_setup(tmp_path):
    store = MessageStore(tmp_path / "store.db")
    t = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
    store.add([Message("Flat 4B", "Lena", CANARY_TEXT, t),
               Message("Flat 4B", "Dev", f"wifi password is {CANARY_CODE}", t + timedelta(minutes=1)),
               Message("Mum", "Mum", "Ostbahnhof 10:00", t + timedelta(minutes=2))])
    gate = open_gate(store, folder=tmp_path)
    yield store, gate, tmp_path
    store.close()


def _outbox(folder: Path) -> list[bytes]:
    out = folder / "outbox"
    return [p.read_bytes() for p in sorted(out.glob("*.json"))] if out.exists() else []


def test_policies_allow_numbers_and_refuse_text(gate_setup):
    _, gate, folder = gate_setup
    assert gate.send("metrics", {"ttft_s": 0.4, "total_s": 1.2}, "telemetry").allowed
    refusals = [
        gate.send("metrics", {"ttft_s": "fast"}, "telemetry"),
        gate.send("metrics", {"thread_name": 1}, "telemetry"),
        gate.send("metrics", {"ttft_s": 1.0}, "fl-server"),
        gate.send("fl-update", {"arrays": {"lora.A": [[0.1, "x"]]}}, "fl-server"),
        gate.send("fl-update", {"arrays": {"lora.A": [0.1]}, "note": "hi"}, "fl-server"),
        gate.send("diagnostics", {"anything": 1}, "telemetry"),
        gate.send("metrics", {"ttft_s": float("nan")}, "telemetry"),
    ]
    assert not any(d.allowed for d in refusals)
    assert gate.send("fl-update", {"arrays": {"lora.A": [[0.1, -2.0]], "lora.B": [3]},
                                   "metrics": {"num_examples": 12}}, "fl-server").allowed
    entries = audit_log(folder).entries()
    assert len(entries) == 9 and sum(e["allowed"] for e in entries) == 2
    assert len(_outbox(folder)) == 2
    assert all({"ts", "kind", "bytes", "destination", "allowed", "reason"} <= set(e) for e in entries)


def test_an_update_leaves_as_raw_float32_and_is_checked_as_strictly(gate_setup):
    import numpy as np

    from device.privacy.egress import Arrays

    _, gate, folder = gate_setup
    lora = {"layers.0.q_proj.lora_A": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
            "layers.0.q_proj.lora_B": np.ones((3, 2), dtype=np.float64)}
    d = gate.send("fl-update", Arrays(lora, {"loss": 1.5, "num_examples": 1}), "fl-server")
    assert d.allowed
    sent = sorted((folder / "outbox").glob("*-fl-update.bin"))[-1].read_bytes()
    header, arrays = Arrays.decode(sent)
    assert header["metrics"] == {"loss": 1.5, "num_examples": 1}
    assert all(np.array_equal(arrays[n], np.asarray(a, dtype=np.float32)) for n, a in lora.items())
    # 12 values: 48 bytes of float32 plus a header, a fraction of the JSON form
    json_size = gate.send("fl-update", {"arrays": lora, "metrics": {"loss": 1.5}}, "fl-server").size
    assert d.size == len(sent) < json_size + 200 and len(sent) - 48 < 200
    refusals = [
        gate.send("fl-update", Arrays({"lora.A": np.array([np.nan])}, {}), "fl-server"),
        gate.send("fl-update", Arrays({"wifi password is": np.zeros(1)}, {}), "fl-server"),
        gate.send("fl-update", Arrays({"lora.A": np.zeros(1)}, {"note": 1.0}), "fl-server"),
        gate.send("fl-update", Arrays({"lora.A": np.zeros(1)}, {}), "telemetry"),
        gate.send("metrics", Arrays({"lora.A": np.zeros(1)}, {}), "telemetry"),
    ]
    assert not any(r.allowed for r in refusals)
    good = Arrays({"lora.A": np.zeros(2)}, {}).encode()
    for bad in (good[:-1], good + b"x", b"GMA1" + (999).to_bytes(4, "little") + good[8:], b"{}"):
        try:
            Arrays.decode(bad)
        except ValueError:
            continue
        raise AssertionError(f"decoded a malformed payload {bad[:12]!r}")


def test_secure_aggregation_traffic_is_integers_of_known_fields(gate_setup):
    _, gate, _ = gate_setup
    assert gate.send("fl-secagg", {"stage": "setup", "fields": {"pk1": [4, 200, 17], "pk2": [9]}}, "fl-server").allowed
    assert gate.send("fl-secagg", {"stage": "unmask", "fields": {"nids": [3, 7], "shares": [[1, 2], [3]]}},
                     "fl-server").allowed
    refused = [
        gate.send("fl-secagg", {"stage": "setup", "fields": {"pk1": ["key"]}}, "fl-server"),
        gate.send("fl-secagg", {"stage": "setup", "fields": {"note": [1]}}, "fl-server"),
        gate.send("fl-secagg", {"stage": "chat", "fields": {}}, "fl-server"),
        gate.send("fl-secagg", {"stage": "setup", "fields": {"pk1": [1.5]}}, "fl-server"),
        gate.send("fl-secagg", {"stage": "setup", "fields": {"pk1": [1]}, "extra": 1}, "fl-server"),
        gate.send("fl-secagg", {"stage": "setup", "fields": {"pk1": [1]}}, "telemetry"),
    ]
    assert not any(d.allowed for d in refused)


def test_stored_text_is_refused_whatever_the_wrapping(gate_setup):
    _, gate, folder = gate_setup
    attempts = [
        {"type": "X", "message": f"failed on: {CANARY_TEXT.upper()}"},
        {"type": "X", "message": "key under the BLUE flowerpot, by the shed"},
        {"type": "X", "message": f"token={CANARY_CODE}"},
        {"type": "X", "message": "ostbahnhof 10:00"},
    ]
    for payload in attempts:
        d = gate.send("crash-report", payload, "telemetry")
        assert not d.allowed and "stored" in d.reason
    assert _outbox(folder) == []


def test_outgoing_reply_only_when_confirmed(gate_setup):
    _, gate, folder = gate_setup
    reply = {"thread": "Flat 4B", "text": "I'll be home Thursday, the blue flowerpot key is fine"}
    assert not gate.send("outgoing-reply", reply, "phone-bridge").allowed
    gate.confirm_reply("Flat 4B", reply["text"])
    assert not gate.send("outgoing-reply", {**reply, "thread": "Mum"}, "phone-bridge").allowed
    assert gate.send("outgoing-reply", reply, "phone-bridge").allowed
    assert not gate.send("outgoing-reply", reply, "phone-bridge").allowed  # a confirmation is used once


def test_crash_report_is_sent_without_message_text(gate_setup):
    _, gate, folder = gate_setup
    try:
        raise FeedError(f"inbox.jsonl:3: bad line {CANARY_TEXT!r} from lena@example.com")
    except FeedError as exc:
        decision = report_crash(gate, exc)
    assert decision.allowed
    (sent,) = _outbox(folder)
    report = json.loads(sent)
    assert report["type"] == "FeedError" and report["frames"][0]["function"]
    assert CANARY_TEXT not in sent.decode() and "lena@example.com" not in sent.decode()
    entries = audit_log(folder).entries()
    assert [e["allowed"] for e in entries] == [False, True]  # first try refused (stored text), then withheld


def test_canaries_never_leave_during_a_demo_run(tmp_path, monkeypatch, model_spec):
    real_model = model_spec.path
    monkeypatch.setenv("GLASSMATE_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / model_spec.file).symlink_to(real_model)
    canaries = ["canary-3f9a-pangolin", "canary-77b2-narwhal", "canary-e41c-axolotl"]
    feed = write_feed(tmp_path / "feed.jsonl", [
        {"thread": "Flat 4B", "sender": "Lena", "text": f"door code {canaries[0]}, plumber Thursday 8-10am",
         "ts": 1},
        {"thread": "Flat 4B", "sender": "Dev", "text": f"and the wifi is {canaries[1]}", "ts": 2},
        {"thread": f"Secret {canaries[2]}", "sender": "Mum", "text": "Lunch is at 1pm", "ts": 3}])
    result = CliRunner().invoke(app, ["demo", "--feed", str(feed), "--json", "--model", "smollm2-135m"])
    assert result.exit_code == 0, result.output
    state = tmp_path / "state"
    with MessageStore(state / "demo.db") as store:
        gate = open_gate(store, folder=state)
        try:
            raise RuntimeError(f"engine failed while summarizing {canaries[0]}")
        except RuntimeError as exc:
            assert report_crash(gate, exc).allowed
    sent = _outbox(state)
    entries = audit_log(state).entries()
    assert len(sent) == sum(e["allowed"] for e in entries) >= 7  # every egress is in the audit log
    blob = b"\n".join(sent).decode() + (state / "audit.jsonl").read_text()
    for c in canaries:
        assert c not in blob


def test_forget_and_retention(gate_setup):
    store, _, folder = gate_setup
    store.save_derived("Flat 4B", "summary", "Lena and Dev talk about keys", datetime(2026, 11, 20, tzinfo=UTC))
    kv = folder / "kv"
    kv.mkdir()
    (kv / f"{store.thread_id('Flat 4B')}.state").write_bytes(b"kv")
    (folder / "adapters").mkdir()
    (folder / "adapters" / "me.safetensors").write_bytes(b"w")
    report = forget_thread(store, "Flat 4B", folder)
    assert report["messages"] == 2 and report["derived"] == 1 and report["kv_files"] == 1
    assert any("adapter" in line for line in report["cannot_undo"])
    assert store.thread("Flat 4B").messages == []
    assert store.thread("Mum").messages  # other threads untouched
    gone = apply_retention(store, datetime(2026, 11, 21, tzinfo=UTC), folder)
    assert gone["messages"] == 1 and store.thread("Mum").messages == []


NETWORK_MODULES = {"socket", "urllib", "http", "requests", "httpx", "aiohttp", "ftplib", "smtplib", "websockets",
                   "nio"}


def test_only_the_privacy_transport_may_reach_the_network():
    """Static guard for the one-gate rule: no other module imports a network client."""
    root = Path(__file__).resolve().parents[1]
    # launch.py starts Flower's processes on the machine that runs a federated experiment and probes their
    # loopback ports; what a client sends leaves through the gate first (tests/test_federated_sim.py)
    # connectors/matrix.py speaks the Matrix protocol to the wearer's own homeserver (sync, encryption keys); the
    # only message text it sends is a reply the gate let through into its queue (tests/test_matrix.py audits it)
    allowed = {root / "device" / "privacy" / "transport.py", root / "federated" / "launch.py",
               root / "device" / "connectors" / "matrix.py"}
    offenders = []
    for path in [*root.glob("device/**/*.py"), *root.glob("federated/**/*.py"), *root.glob("quantize/**/*.py")]:
        if path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(root)}: {n}" for n in names if n.split(".")[0] in NETWORK_MODULES]
    assert offenders == []
