"""The glasses' side of a federated run (Flower ClientApp, Message API).

train: load the global LoRA, train it on this wearer's own replies, clip the update to the server's clipping norm
(client-side fixed clipping: the server adds the Gaussian noise and accounts ε), and send it through the device's
egress gate — the reply carries exactly the bytes the gate let out, and the gate's audit log records them.
evaluate: held-out perplexity of the wearer's true replies and reply ranking for the bare model, the global
adapter and the personalized one (the global adapter or a private one, fine-tuned on the wearer's data and chosen
on their own validation replies; it stays on the device).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from device.paths import state_dir
from device.privacy.egress import Arrays, AuditLog, EgressGate
from device.privacy.transport import MemoryTransport
from federated import task
from federated.lora import adapter_arrays, load_adapter_state
from federated.partitions import Client, irc_clients, shakespeare_clients

KEY_CLIPPING_NORM = "clipping_norm"  # what flwr's DifferentialPrivacyClientSideFixedClipping sends



def secagg_when_asked(msg: Message, context: Context, call_next) -> Message:
    """SecAgg+ for the train messages of a secure-aggregation round (those carrying its stage config), and every
    protocol reply through this wearer's egress gate: keys, shares and the masked update, as integers only."""
    from flwr.app.message_type import MessageType
    from flwr.client.mod import secaggplus_mod
    from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

    if msg.metadata.message_type != MessageType.TRAIN or RECORD_KEY_CONFIGS not in msg.content.config_records:
        return call_next(msg, context)
    stage = str(msg.content.config_records[RECORD_KEY_CONFIGS].get("stage", ""))
    reply = secaggplus_mod(msg, context, call_next)
    if reply.has_error():
        return reply
    cfg = task.RunConfig.from_flower(context.run_config)
    _, client = my_client(cfg, context)
    record = reply.content.config_records[RECORD_KEY_CONFIGS]
    gate, transport = gate_for(client)
    fields = {k: _as_ints(v) for k, v in record.items()}
    decision = gate.send("fl-secagg", {"stage": stage, "fields": fields}, "fl-server")
    if not decision.allowed:
        raise PermissionError(f"the egress gate refused the secure-aggregation reply: {decision.reason}")
    _, _, data = transport.delivered[-1]
    sent = json.loads(data)["fields"]
    reply.content.config_records[RECORD_KEY_CONFIGS] = ConfigRecord(
        {k: _from_ints(sent[k], record[k]) for k in record}, False)
    return reply


def _as_ints(value):
    if isinstance(value, bytes):
        return list(value)
    if isinstance(value, list):
        return [_as_ints(v) for v in value]
    return value


def _from_ints(sent, like):
    """The gate's delivered integers back in the type SecAgg+ sent (bytes, list of bytes, ints)."""
    if isinstance(like, bytes):
        return bytes(sent)
    if isinstance(like, list):
        return [_from_ints(s, x) for s, x in zip(sent, like, strict=True)]
    return sent


app = ClientApp(mods=[secagg_when_asked])


@lru_cache(maxsize=4)
def _clients(cfg: task.RunConfig) -> list[Client]:
    if cfg.dataset == "shakespeare":
        return shakespeare_clients(task.data_path(cfg.data_train), max_clients=cfg.num_clients)
    return irc_clients(task.data_path(cfg.data_train), task.data_path(cfg.data_dev), cfg.min_messages,
                       max_clients=cfg.num_clients, skip=cfg.first_client)


@lru_cache(maxsize=4)
def store_client(path: str, held_out: int) -> Client:
    """The wearer of these glasses, from their own store (`glassmate fl join`): every reply they sent, the chat
    before it → what they wrote; the most recent `held_out` are their evaluation. The id is a keyed digest the
    store makes of itself: stable across rounds, and no name of theirs."""
    from device.messages.store import MessageStore
    from federated.learn import send_example, wearer_sends

    with MessageStore(Path(path)) as store:
        examples = [send_example(s) for s in wearer_sends(store)]
        cid = store.cipher.blind("fl-node", "id")[:16]
    if len(examples) < held_out + 2:
        raise ValueError(f"the store {path} holds {len(examples)} sent replies: too few to take part in a round "
                         f"(at least {held_out + 2})")
    return Client(cid, examples[:-held_out], examples[-held_out:])


def my_client(cfg: task.RunConfig, context: Context) -> tuple[int, Client]:
    if store := context.node_config.get("store"):
        return int(context.node_config.get("partition-id", 0)), store_client(str(store), cfg.eval_examples)
    clients = _clients(cfg)
    pid = int(context.node_config.get("partition-id", 0))
    if not 0 <= pid < len(clients):
        raise ValueError(f"partition-id {pid} is out of range: the data has {len(clients)} clients")
    client = clients[pid]
    if pid < cfg.canaries:  # an audit run: this wearer's data holds a secret the audit looks for afterwards
        from federated.canaries import canaries, planted

        client = Client(client.id, client.train + planted(canaries(cfg.canaries, cfg.seed)[pid], cfg.canary_copies),
                        client.test)
    return pid, client


def gate_for(client: Client) -> tuple[EgressGate, MemoryTransport]:
    """This wearer's egress gate: its store index is their own messages, its audit log their own file."""
    texts = [m.content for ex in client.train + client.test for m in ex.messages if m.role == "user"]
    texts += [ex.target for ex in client.train + client.test]
    transport = MemoryTransport()
    audit = AuditLog(state_dir() / "fl" / client.id / "audit.jsonl")
    return EgressGate(lambda: texts, audit, transport), transport


def send_through_gate(client: Client, names: list[str], arrays: list, metrics: dict) -> tuple[list, int]:
    """The update as the gate let it out (decoded from the delivered bytes) and its size in bytes."""
    gate, transport = gate_for(client)
    decision = gate.send("fl-update", Arrays(dict(zip(names, arrays, strict=True)), metrics), "fl-server")
    if not decision.allowed:
        raise PermissionError(f"the egress gate refused the update: {decision.reason}")
    _, _, data = transport.delivered[-1]
    _, sent = Arrays.decode(data)
    return [np.array(sent[n], dtype=np.float32) for n in names], len(data)


def clip_update(new: list, old: list, norm: float) -> float:
    """Scale (new - old) to at most `norm` (L2 over all arrays), in place; returns the norm before clipping."""
    update = [n - o for n, o in zip(new, old, strict=True)]
    total = float(np.sqrt(sum(float(np.sum(u.astype(np.float64) ** 2)) for u in update)))
    scale = min(1.0, norm / total) if total > 0 and np.isfinite(norm) else 1.0
    for i, (o, u) in enumerate(zip(old, update, strict=True)):
        new[i] = (o + u * scale).astype(np.float32)
    return total


def _arrays(record: ArrayRecord) -> tuple[list[str], list]:
    return list(record.keys()), [np.asarray(a, dtype=np.float32) for a in record.to_numpy_ndarrays()]


@app.train()
def train(msg: Message, context: Context) -> Message:
    if "fitins.parameters" in msg.content.array_records:
        return train_secagg(msg, context)
    cfg = task.RunConfig.from_flower(context.run_config)
    pid, client = my_client(cfg, context)
    names, start = _arrays(msg.content["arrays"])
    config = msg.content["config"]
    server_round = int(config.get("server-round", 0))
    lm, tok = task.load(cfg)
    load_adapter_state(lm, start)
    loss = task.local_train(lm, tok, task.train_part(client, cfg), cfg.local_steps, cfg,
                            seed=cfg.seed + 1009 * server_round + pid)
    new = adapter_arrays(lm)
    norm = float(config[KEY_CLIPPING_NORM]) if KEY_CLIPPING_NORM in config else 0.0
    # measured with DP off too: what clipping at C would do to these updates is what the noise budget prices
    raw_norm = clip_update(new, start, norm if norm > 0 else float("inf"))
    sent, nbytes = send_through_gate(client, names, new, {"loss": loss, "round": server_round, "num_examples": 1})
    record = ArrayRecord(OrderedDict((n, Array(a)) for n, a in zip(names, sent, strict=True)))
    # every client weighs the same (num-examples = 1): what the DP accountant's uniform FedAvg requires
    metrics = MetricRecord({"train-loss": float(loss), "num-examples": 1, "update-norm": raw_norm,
                            "bytes-up": nbytes})
    return Message(RecordDict({"arrays": record, "metrics": metrics}), reply_to=msg)


def train_secagg(msg: Message, context: Context) -> Message:
    """A SecAgg+ round (Flower's legacy FitIns/FitRes layout): train, clip the update, add this client's share of
    the Gaussian noise, send the update through the gate; SecAgg+ masks what the gate let out."""
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.compat.common import recorddict_compat as compat

    from federated.secure_aggregation import client_noise_std

    rc = context.run_config
    cfg = task.RunConfig.from_flower(rc)
    pid, client = my_client(cfg, context)
    fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    start = [np.asarray(a, dtype=np.float32) for a in parameters_to_ndarrays(fitins.parameters)]
    names = task.adapter_names(cfg)
    server_round = int(fitins.config.get("server-round", 0))
    if str(rc.get("secagg-drop", "")) == f"{pid}@{server_round}":
        # the drill: this wearer goes offline after the key exchange, before its masked update is sent
        raise ConnectionAbortedError(f"client {pid} dropped out of round {server_round} (secagg-drop drill)")
    lm, tok = task.load(cfg)
    load_adapter_state(lm, start)
    loss = task.local_train(lm, tok, task.train_part(client, cfg), cfg.local_steps, cfg,
                            seed=cfg.seed + 1009 * server_round + pid)
    new = adapter_arrays(lm)
    clip = float(rc.get("clipping-norm", 1.0))
    raw_norm = clip_update(new, start, clip)
    std = client_noise_std(float(rc.get("noise-multiplier", 0.0)), clip, int(rc.get("clients-per-round", 1)))
    rng = np.random.default_rng()  # fresh entropy: noise a server could predict protects nothing
    update = [(n - s + (rng.normal(0.0, std, size=s.shape) if std > 0 else 0.0)).astype(np.float32)
              for n, s in zip(new, start, strict=True)]
    sent, nbytes = send_through_gate(client, names, update, {"loss": loss, "round": server_round,
                                                             "num_examples": 1})
    fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(sent), 1,
                    {"train-loss": float(loss), "update-norm": raw_norm, "bytes-up": nbytes})
    return Message(compat.fitres_to_recorddict(fitres, keep_input=True), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    cfg = task.RunConfig.from_flower(context.run_config)
    pid, client = my_client(cfg, context)
    names, global_arrays = _arrays(msg.content["arrays"])
    config = msg.content.get("config", {})
    server_round = int(config.get("server-round", 0))
    held_out = task.held_out(client, cfg)
    own_store = bool(context.node_config.get("store"))
    gate, _ = gate_for(client)
    if 0 < cfg.eval_clients <= pid:  # not in the fixed evaluation set: nothing measured, nothing but this sent
        return _reply_numbers(gate, msg, {"num-examples": 0})
    # candidates to rank the true reply among: other people's replies (a corpus run), or the wearer's own earlier
    # ones (glasses in a round read no one else's data)
    pool = [ex.target for ex in client.train[:50]] if own_store else \
        [ex.target for c in _clients(cfg) if c.id != client.id for ex in c.train[:50]]
    lm, tok = task.load(cfg)
    out: dict[str, float] = {"num-examples": 1}
    if bool(config.get("eval-base", True)):
        with lm.model.disable_adapter():
            out["ppl-base"] = task.perplexity(lm, tok, held_out, cfg)
            if cfg.eval_ranking:
                out["mrr-base"], out["p1-base"] = task.ranking(lm, tok, held_out, pool, cfg, seed=pid)
    load_adapter_state(lm, global_arrays)
    out["ppl-global"] = task.perplexity(lm, tok, held_out, cfg)
    if cfg.eval_ranking:
        out["mrr-global"], out["p1-global"] = task.ranking(lm, tok, held_out, pool, cfg, seed=pid)
    if cfg.personal_steps > 0:
        private, chosen = task.personalized(lm, tok, global_arrays, task.train_part(client, cfg), cfg,
                                            seed=cfg.seed + 7919 * server_round + pid)
        out["personal-from-global"] = float(chosen == "global")
        out["ppl-personal"] = task.perplexity(lm, tok, held_out, cfg)
        if cfg.eval_ranking:
            out["mrr-personal"], out["p1-personal"] = task.ranking(lm, tok, held_out, pool, cfg, seed=pid)
        _keep_private(cfg, client, names, private)
        if own_store and server_round == int(context.run_config.get("num-rounds", 0)):
            out["personal-installed"] = float(_install_personal(cfg, lm, tok, names, private, held_out, out))
    return _reply_numbers(gate, msg, out)


def _reply_numbers(gate: EgressGate, msg: Message, out: dict[str, float]) -> Message:
    """Numbers only, and through the gate like every byte that leaves."""
    decision = gate.send("fl-update", {"arrays": {}, "metrics": {k.replace("-", "_"): float(v)
                                                                  for k, v in out.items()}}, "fl-server")
    if not decision.allowed:
        raise PermissionError(f"the egress gate refused the evaluation metrics: {decision.reason}")
    return Message(RecordDict({"metrics": MetricRecord(out)}), reply_to=msg)


def _install_personal(cfg: task.RunConfig, lm, tok, names: list[str], arrays: list, held_out, out: dict) -> bool:
    """After the last round, the wearer's personalized adapter goes in the way `glassmate learn` installs one: only
    if their held-out sends are more likely under it than under what is in effect (`device/engines/personal.py`).
    The tiny CI model has no GGUF for the glasses' engine: nothing to install."""
    import math
    import tempfile

    from device.engines.personal import PersonalAdapters
    from federated.learn import MARGIN

    if cfg.model == "tiny":
        return False
    mine = PersonalAdapters(state_dir(), cfg.model)
    in_effect = mine.current()
    import torch

    before = None
    if in_effect is not None and in_effect.weights:
        try:
            load_adapter_state(lm, torch.load(mine.path(in_effect.weights), weights_only=True))
            before = math.log(task.perplexity(lm, tok, held_out, cfg))
        except (KeyError, ValueError, RuntimeError):
            before = None  # a version of another shape: compared with the bare model instead
    if before is None:
        with lm.model.disable_adapter():
            before = math.log(task.perplexity(lm, tok, held_out, cfg))
    after = math.log(out["ppl-personal"])
    numbers = {"source": "federated", "held_out": len(held_out), "loss_before": round(before, 4),
               "loss_after": round(after, 4), "in_effect_before": in_effect.version if in_effect else None,
               "lora": lm.spec.to_json()}  # the shape `glassmate learn` continues from
    if not after < before - MARGIN:
        mine.reject(numbers)
        return False
    state_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=state_dir()) as tmp:
        gguf = task.export_gguf(cfg, names, arrays, Path(tmp) / "adapter.gguf", "personalized")
        weights = Path(tmp) / "adapter.pt"
        torch.save(OrderedDict((n, torch.as_tensor(a)) for n, a in zip(names, arrays, strict=True)), weights)
        mine.install(gguf, weights, numbers)
    return True


def _keep_private(cfg: task.RunConfig, client: Client, names: list[str], arrays: list) -> Path:
    """The personalized adapter stays on the device (under the state folder), never in a reply: as arrays, and for
    a real model as the GGUF LoRA its llama.cpp engine loads (`glassmate reply --adapter …/personal_adapter.gguf`)."""
    path = state_dir() / "fl" / client.id / "personal_adapter.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{n.replace(".", "__"): a for n, a in zip(names, arrays, strict=True)})
    task.export_gguf(cfg, names, arrays, path.with_suffix(".gguf"), "personalized")
    return path
