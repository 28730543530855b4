"""How many clients per round would DP noise need to cost < 2 % held-out perplexity?

With client-side clipping C and noise multiplier z, each round's mean update carries Gaussian noise of std z·C/m
(m clients per round, uniform weights); over R rounds the global adapter accumulates R independent draws, std
z·C·√R/m per weight, if later training corrected none of it (a conservative bound). Starting from a run trained
*without* noise, this adds that much noise to its final global adapter for a range of m and measures the
held-out perplexity of the true replies: the smallest m whose cost stays under the tolerance is the answer.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

CLIENTS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000)


def noise_std(noise: float, clip: float, rounds: int, clients: int) -> float:
    return noise * clip * math.sqrt(rounds) / clients


def load_global(run: Path) -> dict[str, np.ndarray]:
    with np.load(Path(run) / "global_adapter.npz") as z:
        return {k.replace("__", "."): z[k] for k in z.files}


def budget(run: Path, noise: float, tolerance: float = 0.02, draws: int = 2, progress=None) -> dict:
    from federated import task
    from federated.lora import load_adapter_state
    from federated.partitions import irc_clients

    doc = json.loads((Path(run) / "fl.json").read_text(encoding="utf-8"))
    rc = doc["config"]
    if float(rc.get("noise-multiplier", 0.0)) > 0:
        raise ValueError(f"{run} was trained with noise; the budget starts from a run without it")
    cfg = task.RunConfig.from_flower(rc)
    clip = float(rc.get("clipping-norm", 1.0))
    rounds = int(rc.get("num-rounds", 1))
    clients = irc_clients(task.data_path(cfg.data_train), task.data_path(cfg.data_dev), cfg.min_messages,
                          max_clients=cfg.num_clients, skip=cfg.first_client)
    if cfg.eval_clients:
        clients = clients[: cfg.eval_clients]
    # the run's own evaluation: each evaluating client's held-out replies, the mean of their perplexities
    held_out = [task.held_out(c, cfg)[: cfg.eval_examples] for c in clients]
    lm, tok = task.load(cfg)
    clean = load_global(run)

    def ppl(state: dict[str, np.ndarray]) -> float:
        load_adapter_state(lm, state)
        return float(np.mean([task.perplexity(lm, tok, ex, cfg) for ex in held_out]))

    base = ppl(clean)
    rows = []
    for i, m in enumerate(CLIENTS):
        std = noise_std(noise, clip, rounds, m)
        vals = []
        for d in range(draws):
            rng = np.random.default_rng(1000 * d + m)
            vals.append(ppl({k: (v + rng.normal(0.0, std, v.shape)).astype(np.float32) for k, v in clean.items()}))
        mean = float(np.mean(vals))
        rows.append({"clients_per_round": m, "noise_std": std, "ppl": mean, "cost": mean / base - 1})
        if progress:
            progress(i + 1, len(CLIENTS))
    # the smallest m from which every larger m stays under the tolerance (single draws are noisy)
    needed = None
    for r in reversed(rows):
        if r["cost"] >= tolerance:
            break
        needed = r["clients_per_round"]
    return {"run": str(run), "noise_multiplier": noise, "clipping_norm": clip, "rounds": rounds,
            "tolerance": tolerance, "ppl_noise_free": base, "held_out": sum(map(len, held_out)),
            "held_out_clients": len(held_out), "rows": rows,
            "clients_needed": needed}
