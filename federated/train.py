"""The one training loop: LoRA on (prompt → target) chat examples, loss on the target tokens only.

Used by task adapters (one client holding all the data) and by each federated client (its own messages).
Deterministic for a seed; checkpoints every `save_every` steps so a long run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from device.engines.base import ChatMessage
from federated.base_model import cpu_has_bf16


@dataclass(frozen=True)
class Example:
    messages: tuple[ChatMessage, ...]  # system + user turn, exactly as the assistant sends them
    target: str  # the assistant's answer to learn


@dataclass(frozen=True)
class TrainConfig:
    epochs: float = 2.0
    lr: float = 2e-4
    batch_size: int = 4
    max_len: int = 768  # longer examples are dropped, never truncated mid-target
    warmup: float = 0.05  # share of steps
    weight_decay: float = 0.0
    clip: float = 1.0
    seed: int = 0
    save_every: int = 25  # steps between checkpoints (0: none)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class TrainReport:
    steps: int
    examples: int
    dropped_too_long: int
    tokens: int
    first_loss: float
    last_loss: float  # mean over the last 10% of steps
    wall_s: float
    resumed_from: int = 0
    bf16: bool = False
    losses: list[float] = field(default_factory=list)


def encode(tokenizer, ex: Example) -> tuple[list[int], list[int]]:
    """Token ids and labels (-100 on the prompt): the chat template's generation prompt, then target + end."""
    prompt = tokenizer.apply_chat_template([{"role": m.role, "content": m.content} for m in ex.messages],
                                           tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(prompt, add_special_tokens=bool(getattr(tokenizer, "add_bos_token", False)))["input_ids"]
    target_ids = tokenizer(ex.target.strip(), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return prompt_ids + target_ids, [-100] * len(prompt_ids) + target_ids


def batches(encoded: list[tuple[list[int], list[int]]], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Index batches of similar length (little padding), in a seeded random order."""
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i][0]), i))
    groups = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(groups)
    return groups


def collate(encoded, idx: list[int], pad_id: int):
    import torch

    width = max(len(encoded[i][0]) for i in idx)
    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    labels = torch.full((len(idx), width), -100, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for row, i in enumerate(idx):
        x, y = encoded[i]
        ids[row, :len(x)] = torch.tensor(x)
        labels[row, :len(y)] = torch.tensor(y)
        mask[row, :len(x)] = 1
    return ids, labels, mask


def row_mean_losses(model, ids, labels, mask) -> list[float]:
    """Mean target cross-entropy of each row of a padded batch (candidates scored in one forward pass)."""
    import torch

    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = causal.model(input_ids=ids, attention_mask=mask).last_hidden_state
    target = labels[:, 1:]
    keep = target != -100
    logits = causal.lm_head(hidden[:, :-1][keep])
    losses = torch.nn.functional.cross_entropy(logits.float(), target[keep], reduction="none")
    rows = keep.nonzero()[:, 0]
    sums = torch.zeros(ids.shape[0]).index_add_(0, rows, losses)
    counts = keep.sum(dim=1).clamp(min=1)
    return [float(x) for x in sums / counts]


def target_loss(model, ids, labels, mask, reduction: str = "mean"):
    """Cross-entropy on the target tokens only. The output projection runs only where a target token is
    predicted: for a summary that is ~30 of ~430 positions, and the projection is a fifth of SmolLM2's work."""
    import torch

    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = causal.model(input_ids=ids, attention_mask=mask).last_hidden_state
    target = labels[:, 1:]
    keep = target != -100
    logits = causal.lm_head(hidden[:, :-1][keep])
    return torch.nn.functional.cross_entropy(logits.float(), target[keep], reduction=reduction), int(keep.sum())


def recipe_hash(examples: list[Example], config: TrainConfig, extra: dict) -> str:
    h = hashlib.sha256(json.dumps(config.to_json() | extra, sort_keys=True).encode())
    for ex in examples:
        h.update(json.dumps([[m.role, m.content] for m in ex.messages] + [ex.target]).encode())
    return h.hexdigest()[:16]


def train(lm, tokenizer, examples: list[Example], config: TrainConfig, checkpoint: Path | None = None,
          progress: Callable[[int, int, float], None] | None = None, recipe: str = "") -> TrainReport:
    """Train the LoRA weights of `lm` (federated.lora.LoraModel) in place."""
    import torch

    from federated.lora import adapter_state, load_adapter_state

    start = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    encoded_all = [encode(tokenizer, ex) for ex in examples]
    encoded = [e for e in encoded_all if len(e[0]) <= config.max_len]
    if not encoded:
        raise ValueError(f"no training example fits max_len={config.max_len} tokens")
    per_epoch = math.ceil(len(encoded) / config.batch_size)
    total = max(1, round(per_epoch * config.epochs))
    plan: list[list[int]] = []
    while len(plan) < total:
        plan += batches(encoded, config.batch_size, rng)
    plan = plan[:total]

    model = lm.model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    warm = max(1, int(total * config.warmup))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    losses: list[float] = []
    first_step = 0
    if checkpoint and checkpoint.is_file():
        saved = torch.load(checkpoint, weights_only=False)
        if saved.get("recipe") == recipe and saved.get("total") == total:
            load_adapter_state(lm, saved["adapter"])
            opt.load_state_dict(saved["optimizer"])
            sched.load_state_dict(saved["scheduler"])
            torch.set_rng_state(saved["torch_rng"])
            losses, first_step = saved["losses"], saved["step"]
    bf16 = cpu_has_bf16()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.train()
    tokens = 0
    for step in range(first_step, total):
        ids, labels, mask = collate(encoded, plan[step], pad)
        tokens += int(mask.sum())
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = target_loss(model, ids, labels, mask)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if progress:
            progress(step + 1, total, losses[-1])
        done = step + 1
        if checkpoint and config.save_every and (done % config.save_every == 0 or done == total):
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            tmp = checkpoint.with_suffix(".partial")
            torch.save({"recipe": recipe, "total": total, "step": done, "losses": losses,
                        "adapter": adapter_state(lm), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "torch_rng": torch.get_rng_state()}, tmp)
            tmp.replace(checkpoint)
    model.eval()
    tail = losses[-max(1, len(losses) // 10):]
    return TrainReport(steps=total, examples=len(encoded), dropped_too_long=len(encoded_all) - len(encoded),
                       tokens=tokens, first_loss=round(losses[0], 4), last_loss=round(sum(tail) / len(tail), 4),
                       wall_s=round(time.perf_counter() - start, 1), resumed_from=first_step, bf16=bf16,
                       losses=[round(x, 4) for x in losses])


def mean_loss(lm, tokenizer, examples: list[Example], batch_size: int = 4, max_len: int = 768) -> float:
    """Token-weighted mean target loss (held-out perplexity = exp of it)."""
    import torch

    encoded = [e for e in (encode(tokenizer, ex) for ex in examples) if len(e[0]) <= max_len]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    total = count = 0.0
    lm.model.eval()
    with torch.no_grad():
        for i in range(0, len(encoded), batch_size):
            ids, labels, mask = collate(encoded, list(range(i, min(i + batch_size, len(encoded)))), pad)
            lp, n = target_loss(lm.model, ids, labels, mask, reduction="sum")
            total += float(lp)
            count += n
    return total / max(count, 1)
