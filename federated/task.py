"""What a pair of glasses does in a federated round, as plain functions (Flower's `task.py`): load the model,
train the shared LoRA on the wearer's own replies, personalize it privately, and measure held-out perplexity of
the true reply and reply ranking (MRR / P@1 among 10 candidates).

The model is loaded once per process and reused by every client the process plays (the simulation runs many).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

from device.tasks import Task
from federated.lora import ATTENTION, LoraModel, LoraSpec, adapter_arrays, attach, load_adapter_state
from federated.train import Example, TrainConfig, encode, mean_loss, train

CANDIDATES = 10


@dataclass(frozen=True)
class RunConfig:
    """The Flower run config (pyproject [tool.flwr.app.config]), typed."""

    model: str = "tiny"  # "tiny" (2-layer random Llama, CI) or a catalog name (smollm2-135m)
    dataset: str = "irc"  # "irc" | "shakespeare"
    data_train: str = "../shared/data/ubuntu_irc/train"
    data_dev: str = "../shared/data/ubuntu_irc/dev"
    min_messages: int = 50
    first_client: int = 0  # skip the N users who wrote most (e.g. kept out as simulated wearers)
    num_clients: int = 20
    local_steps: int = 8
    personal_steps: int = 8
    batch_size: int = 4
    lr: float = 5e-4
    lora_r: int = 8
    lora_top_layers: int = 0  # adapt only the last N decoder layers (0: all): a smaller update, less DP noise
    max_len: int = 256
    eval_examples: int = 16
    eval_clients: int = 0  # only the first N clients evaluate (0: all): a fixed held-out set at scale
    eval_ranking: bool = True  # MRR / P@1 besides perplexity
    seed: int = 0
    canaries: int = 0  # privacy audit: the first N clients get a planted canary (0: none)
    canary_copies: int = 10

    @classmethod
    def from_flower(cls, config) -> RunConfig:
        fields = {f for f in cls.__dataclass_fields__}
        out = {}
        for key, value in dict(config).items():
            name = key.replace("-", "_")
            if name in fields:
                kind = type(getattr(cls, name))
                out[name] = kind(value)
        return cls(**out)


_MODELS: dict[tuple[str, int, int], LoraModel] = {}
_TOKENIZERS: dict[str, object] = {}


def load(cfg: RunConfig) -> tuple[LoraModel, object]:
    """The base model with a fresh LoRA (r = cfg.lora_r on the attention projections), cached per process."""
    key = (cfg.model, cfg.lora_r, cfg.lora_top_layers, cfg.seed)
    if key not in _MODELS:
        from device.catalog import require_model
        from federated.base_model import load_catalog_model, tiny_model

        if cfg.model == "tiny":
            bm = tiny_model(require_model("smollm2-135m").path, seed=cfg.seed)
        else:
            bm = load_catalog_model(cfg.model)
        _MODELS[key] = attach(bm.model, LoraSpec(r=cfg.lora_r, alpha=2.0 * cfg.lora_r, dropout=0.0,
                                                 targets=ATTENTION, top_layers=cfg.lora_top_layers), seed=cfg.seed)
        _TOKENIZERS[cfg.model] = bm.tokenizer
        _MODELS[key].initial = adapter_arrays(_MODELS[key])  # type: ignore[attr-defined]
    return _MODELS[key], _TOKENIZERS[cfg.model]


def initial_arrays(cfg: RunConfig) -> list:
    lm, _ = load(cfg)
    return [a.copy() for a in lm.initial]  # type: ignore[attr-defined]


def train_part(client, cfg: RunConfig) -> list[Example]:
    """What a client trains on: all its examples when it has held-out ones of its own, else all but the last
    `eval_examples`, which are then its held-out ones (`held_out`) and never trained on."""
    return client.train if client.test else client.train[: -cfg.eval_examples]


def held_out(client, cfg: RunConfig) -> list[Example]:
    return client.test or client.train[-cfg.eval_examples:]


def local_train(lm: LoraModel, tok, examples: list[Example], steps: int, cfg: RunConfig, seed: int) -> float:
    """`steps` optimizer steps of the shared loop on this wearer's examples; returns the mean training loss."""
    if not examples:
        return float("nan")
    epochs = steps * cfg.batch_size / len(examples)
    config = TrainConfig(epochs=epochs, lr=cfg.lr, batch_size=cfg.batch_size, max_len=cfg.max_len, seed=seed,
                         warmup=0.0, save_every=0)
    report = train(lm, tok, examples, config)
    return sum(report.losses) / len(report.losses)


def perplexity(lm: LoraModel, tok, examples: list[Example], cfg: RunConfig) -> float:
    return math.exp(mean_loss(lm, tok, examples[: cfg.eval_examples], max_len=cfg.max_len))


def ranking(lm: LoraModel, tok, examples: list[Example], pool: list[str], cfg: RunConfig,
            seed: int = 0) -> tuple[float, float]:
    """MRR and P@1 of the true reply among itself and 9 replies from other users (mean per-token log-prob)."""
    import torch

    from federated.train import collate, row_mean_losses

    rng = random.Random(seed)
    rr = []
    for ex in examples[: cfg.eval_examples]:
        others = [t for t in pool if t != ex.target]
        cands = [ex.target] + rng.sample(others, min(CANDIDATES - 1, len(others)))
        enc = [encode(tok, Example(ex.messages, c)) for c in cands]
        enc = [(x[: cfg.max_len], y[: cfg.max_len]) for x, y in enc]
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        ids, labels, mask = collate(enc, list(range(len(enc))), pad)
        with torch.no_grad():  # the candidates share one padded batch: one forward pass per example
            scores = [-x for x in row_mean_losses(lm.model, ids, labels, mask)]
        rr.append(1 + sum(s > scores[0] for s in scores[1:]))
    if not rr:
        return float("nan"), float("nan")
    return sum(1 / r for r in rr) / len(rr), sum(r == 1 for r in rr) / len(rr)


def personalized(lm: LoraModel, tok, global_arrays: list, examples: list[Example], cfg: RunConfig,
                 seed: int) -> tuple[list, str]:
    """The private part, which never leaves the device (kept in the client's local state, not in any reply).

    Two candidates, both fine-tuned on this wearer's own data: the global adapter, and a private adapter started
    from scratch. The wearer's own validation replies (the last few of their training data, held out from this
    fine-tuning) pick one. With a good global adapter the first wins; when DP noise has wrecked the global adapter
    (few clients per round), the wearer still gets their own model instead of a noisy one. Returns the arrays and
    which candidate won ("global" or "private")."""
    keep = min(cfg.eval_examples, max(1, len(examples) // 5))
    fit, check = (examples[:-keep], examples[-keep:]) if len(examples) > keep else (examples, examples)
    out = {}
    for name, start in (("global", global_arrays), ("private", lm.initial)):  # type: ignore[attr-defined]
        load_adapter_state(lm, start)
        local_train(lm, tok, fit, cfg.personal_steps, cfg, seed)
        out[name] = (mean_loss(lm, tok, check[: cfg.eval_examples], max_len=cfg.max_len), adapter_arrays(lm))
    best = min(out, key=lambda k: out[k][0])
    load_adapter_state(lm, out[best][1])
    return out[best][1], best


def export_gguf(cfg: RunConfig, names: list[str], arrays: list, path: Path, kind: str) -> Path | None:
    """The adapter as a GGUF LoRA that the glasses' llama.cpp engine loads (`glassmate reply --adapter PATH`);
    None for the tiny CI model, which has no GGUF base."""
    if cfg.model == "tiny":
        return None
    from device.catalog import require_model
    from federated.base_model import gguf_architecture
    from federated.gguf_lora import write_gguf_adapter

    lm, _ = load(cfg)
    write_gguf_adapter(path, dict(zip(names, arrays, strict=True)), lm.model.get_base_model().config,
                       gguf_architecture(require_model(cfg.model).path), lm.spec.alpha,
                       {"task": Task.DRAFT_REPLIES, "model": cfg.model, "made_by": f"glassmate fl ({kind})"})
    return path


def adapter_names(cfg: RunConfig) -> list[str]:
    lm, _ = load(cfg)
    return list(lm.names)


def data_path(value: str) -> Path:
    return Path(value).expanduser()
