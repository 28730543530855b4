"""Back on the glasses: a wearer's personalized adapter from a federated run, loaded by the llama.cpp engine over
the quantized GGUF, against the bare model on that wearer's held-out conversations.

Two measures per held-out reply: the mean log-likelihood per token of what the wearer really answered (llama.cpp,
with and without the adapter — the device-side counterpart of the run's perplexity) and the three reply drafts
the glasses would offer. Other people's nicks are replaced by pseudonyms before anything is written.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path

from device.assistant.core import Assistant
from device.engines import load_engine
from device.messages.inbox import group_threads
from device.tasks import Task
from lab.irc import client_id, pair_messages, reply_pairs, strip_address
from lab.reply_evaluation import pair_prompt


def _pairs_of(run: dict, client: int) -> tuple[str, list]:
    """The held-out reply pairs of the run's client `client` (clients ordered as the run ordered them)."""
    from collections import Counter

    cfg = run["config"]
    counts = Counter(p.user.lower() for p in reply_pairs(Path(cfg["data-train"])))
    users = sorted((u for u, n in counts.items() if n >= int(cfg.get("min-messages", 50))),
                   key=lambda u: (-counts[u], u))[: int(cfg["num-clients"])]
    if not 0 <= client < len(users):
        raise ValueError(f"the run has clients 0..{len(users) - 1}")
    user = users[client]
    held = [p for p in reply_pairs(Path(cfg["data-dev"])) if p.user.lower() == user]
    return client_id(user), held


def _pseudonymous(messages: list, me: str) -> list:
    names: dict[str, str] = {}
    out = []
    for m in messages:
        if m.sender != "me":
            names.setdefault(m.sender, f"user{len(names) + 1}")
        out.append(replace(m, sender=names.get(m.sender, m.sender), thread="IRC"))
    return out


def compare(run_dir: Path, client: int, n: int = 5, threads: int | None = None, progress=None) -> dict:
    run = json.loads((run_dir / "fl.json").read_text())
    model = run["config"]["model"]
    if model == "tiny":
        raise ValueError("this run used the tiny CI model, which has no GGUF for llama.cpp: use a --real run")
    cid, held = _pairs_of(run, client)
    adapter = run_dir / "devices" / "state" / "fl" / cid / "personal_adapter.gguf"
    if not adapter.is_file():
        raise ValueError(f"{adapter} does not exist: was client {client} evaluated in this run?")
    if not held:
        raise ValueError(f"client {client} has no held-out replies in {run['config']['data-dev']}")
    engine = load_engine(model, n_threads=threads)
    engine.load_adapter("personal", adapter)
    bare, personal = Assistant(engine, adapters={}), Assistant(engine, adapters={Task.DRAFT_REPLIES: "personal"})
    rows = []
    for i, pair in enumerate(held[:n]):
        msgs = _pseudonymous(pair_messages(pair), "me")
        thread = group_threads(msgs)["IRC"]
        prompt = engine.tokenize_prompt(pair_prompt(engine, pair))
        true = engine.tokenize(strip_address(pair.reply.text).strip())
        row: dict = {"reply_tokens": len(true)}
        for name, assistant in (("bare", bare), ("personal", personal)):
            assistant._task(Task.DRAFT_REPLIES)
            lp = engine.continuation_logprobs(prompt, [true])[0]
            row[f"logprob_{name}"] = sum(lp) / max(len(lp), 1)
            t0 = time.perf_counter()
            row[f"drafts_{name}"] = assistant.draft_replies(thread).replies
            row[f"drafts_{name}_s"] = round(time.perf_counter() - t0, 2)
        row["drafts_changed"] = row["drafts_bare"] != row["drafts_personal"]
        rows.append(row)
        if progress:
            progress(i + 1, min(n, len(held)))
    mean = {k: sum(r[f"logprob_{k}"] for r in rows) / len(rows) for k in ("bare", "personal")}
    return {"run": str(run_dir), "client": client, "client_id": cid, "model": model, "adapter": str(adapter),
            "adapter_bytes": adapter.stat().st_size, "n": len(rows),
            "ppl_true_reply_bare": math.exp(-mean["bare"]), "ppl_true_reply_personal": math.exp(-mean["personal"]),
            "drafts_changed": sum(r["drafts_changed"] for r in rows), "rows": rows}
