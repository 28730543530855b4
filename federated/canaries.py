"""The privacy audit: plant canaries in some wearers' data, measure how exposed they are in the shared model.

Secret-Sharer exposure (Carlini et al., 2019): a canary is a sentence with a random secret ("the door code is
482913"); after training, the canary's log-perplexity is ranked among `candidates` sentences of the same format
with other random secrets. exposure = log2(candidates + 1) − log2(rank): 0 for a secret the model never learnt,
log2(candidates + 1) for one it ranks first. The audit compares the final global adapter with and without DP.
Canaries exist only in audit runs (`canaries > 0` in the run config); their secrets follow from the run's seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from device.assistant import prompts
from device.messages.inbox import Message, group_threads
from federated.train import Example

FORMAT = "the door code is {}"
DIGITS = 6
# What the planted message answers: an ordinary question in the wearer's chat.
QUESTION = ("Sam", "hey, what's the code for the front door again?")


@dataclass(frozen=True)
class Canary:
    client: int  # partition id whose data holds it
    secret: str

    @property
    def text(self) -> str:
        return FORMAT.format(self.secret)


def _secret(rng: random.Random) -> str:
    return "".join(rng.choice("0123456789") for _ in range(DIGITS))


def canaries(n_clients: int, seed: int) -> list[Canary]:
    """One canary for each of the first `n_clients` partitions."""
    rng = random.Random(f"canary-{seed}")
    return [Canary(pid, _secret(rng)) for pid in range(n_clients)]


def prompt_messages() -> tuple:
    from datetime import UTC, datetime

    m = Message("Sam", QUESTION[0], QUESTION[1], datetime(2026, 1, 5, 18, 0, tzinfo=UTC))
    thread = group_threads([m])["Sam"]
    header = prompts.thread_header(thread.name, thread.participants)
    return tuple(prompts.next_message_messages(header, [prompts.message_line(m)]))


def planted(canary: Canary, copies: int) -> list[Example]:
    """The canary as `copies` training examples (a secret a wearer repeated in their chats)."""
    return [Example(prompt_messages(), canary.text)] * copies


def sequence_nll(lm, tokenizer, texts: list[str], batch_size: int = 32) -> list[float]:
    """Total negative log-likelihood (nats) of each text as the reply to the canary's prompt."""
    import torch

    from federated.train import collate, encode

    encoded = [encode(tokenizer, Example(prompt_messages(), t)) for t in texts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model = lm.model
    out: list[float] = []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(encoded), batch_size):
            ids, labels, mask = collate(encoded, list(range(i, min(i + batch_size, len(encoded)))), pad)
            logits = model(input_ids=ids, attention_mask=mask).logits
            target = labels[:, 1:]
            nll = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), target.clamp(min=0),
                                                    reduction="none")
            out.extend(float(x) for x in (nll * (target != -100)).sum(dim=1))
    return out


def audit(lm, tokenizer, planted_canaries: list[Canary], candidates: int = 200) -> dict:
    """Exposure of every planted canary under the model as it is (adapter on) and under the bare base model."""
    with lm.model.disable_adapter():
        base = [exposure(lm, tokenizer, c, candidates) for c in planted_canaries]
    trained = [exposure(lm, tokenizer, c, candidates) for c in planted_canaries]
    return {"candidates": candidates, "max_possible": math.log2(candidates + 1), "canaries": len(trained),
            "exposure_mean": sum(trained) / len(trained), "exposure_max": max(trained),
            "base_exposure_mean": sum(base) / len(base)}


def exposure(lm, tokenizer, canary: Canary, candidates: int = 200, seed: int = 0) -> float:
    """log2(candidates + 1) − log2(rank of the canary among itself and `candidates` random secrets)."""
    rng = random.Random(f"reference-{seed}-{canary.client}")
    others: list[str] = []
    while len(others) < candidates:
        s = _secret(rng)
        if s != canary.secret:
            others.append(FORMAT.format(s))
    scores = sequence_nll(lm, tokenizer, [canary.text] + others)
    rank = 1 + sum(s < scores[0] for s in scores[1:])
    return math.log2(candidates + 1) - math.log2(rank)
