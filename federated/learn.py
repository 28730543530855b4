"""On-device learning (`glassmate learn`): the wearer's personal replies adapter, trained on what they really sent.

Every message the wearer sent (picked, edited or dictated on the glasses — `device/glasses/feedback.py` — or
written elsewhere and in the store) is an example: the chat just before it → what they wrote, with the same
"my next message" prompt reply ranking scores and federated personalization trains. The most recent sends are
held out; the adapter is trained on the rest with the project's training loop and installed
(`device/engines/personal.py`) only if the held-out sends are more likely under it than under what is in effect
now (the previous version, or the bare model) — a worse adapter is recorded as rejected and never used. Training
checkpoints as it goes: a run stopped part-way resumes where it was and installs nothing until it has finished.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from device.assistant import prompts
from device.engines.personal import PersonalAdapters, Version
from device.glasses.feedback import FeedbackLog
from device.messages.inbox import Message
from device.messages.store import MessageStore
from federated.lora import ATTENTION, LoraSpec
from federated.train import Example, TrainConfig, recipe_hash

CONTEXT = 3  # messages before a send that the example shows (the IRC partitions show 2–3)
LORA = LoraSpec(r=8, alpha=16.0, dropout=0.05, targets=ATTENTION)
TRAIN = TrainConfig(epochs=2.0, lr=5e-4, batch_size=4, max_len=320, seed=0, save_every=10)
HOLDOUT = 20  # the most recent sends, never trained on: the validation that decides the install
MIN_TRAIN = 16  # fewer sends than this (after the hold-out) are too few to learn from
MARGIN = 0.01  # nats per token the held-out loss must fall by to count as better (not noise)


class NotEnoughData(ValueError):
    pass


@dataclass(frozen=True)
class Send:
    thread: str
    ts: datetime
    context: tuple[Message, ...]  # the chat before it, oldest first
    text: str


def wearer_sends(store: MessageStore, context: int = CONTEXT) -> list[Send]:
    """Each of the wearer's messages that answers something (at least one message before it), oldest first."""
    out = []
    for name in store.thread_names():
        messages = store.thread(name).messages
        for i, m in enumerate(messages):
            if m.from_wearer and i > 0 and m.text.strip():
                out.append(Send(name, m.ts, tuple(messages[max(0, i - context):i]), m.text.strip()))
    return sorted(out, key=lambda s: (s.ts, s.thread))


def send_example(send: Send) -> Example:
    participants = list(dict.fromkeys(m.sender for m in send.context if not m.from_wearer))
    header = prompts.thread_header(send.thread, participants)
    lines = [prompts.message_line(m) for m in send.context]
    return Example(tuple(prompts.next_message_messages(header, lines)), send.text)


@dataclass
class LearnReport:
    model: str
    sends: int
    trained_on: int
    held_out: int
    loss_bare: float  # mean nats per token of the held-out sends
    loss_before: float  # under what was in effect (= bare when no adapter was)
    loss_after: float  # under the new adapter
    in_effect_before: int | None  # the version in effect when the run started
    decision: str  # "installed" | "rejected"
    version: int
    steps: int
    resumed_from: int
    wall_s: float
    feedback: dict

    @property
    def perplexity(self) -> dict[str, float]:
        return {k: round(math.exp(getattr(self, f"loss_{k}")), 2) for k in ("bare", "before", "after")}

    def to_json(self) -> dict:
        return asdict(self) | {"perplexity": self.perplexity}


def learn(store: MessageStore, state: Path, model: str, holdout: int = HOLDOUT, config: TrainConfig = TRAIN,
          base=None, check_gguf: Callable[[Path], None] | None = None,
          progress: Callable[[int, int, float], None] | None = None) -> LearnReport:
    """Train, validate on the held-out sends and install only if better. `base`: a loaded
    federated.base_model.BaseModel of `model` (loaded here if None). `check_gguf`: loads the exported adapter
    the way the glasses will (llama.cpp) and raises if it cannot be used; nothing is installed then."""
    import torch

    from federated.base_model import load_catalog_model
    from federated.gguf_lora import write_gguf_adapter
    from federated.lora import adapter_state, attach, load_adapter_state
    from federated.train import mean_loss, train

    start = time.perf_counter()
    sends = wearer_sends(store)
    if len(sends) < holdout + MIN_TRAIN:
        raise NotEnoughData(f"{len(sends)} sent replies in the store; learning needs at least {holdout + MIN_TRAIN} "
                            f"({MIN_TRAIN} to train on and the {holdout} most recent held out to check it)")
    train_ex = [send_example(s) for s in sends[:-holdout]]
    held_ex = [send_example(s) for s in sends[-holdout:]]
    mine = PersonalAdapters(state, model)
    in_effect = mine.current()

    if base is None:
        base = load_catalog_model(mine.model)
    # the adapter in effect is where training starts (a federated one included, in its own shape): what it
    # learnt is built on, not thrown away; the held-out sends decide whether the result is better than it
    start_weights = None
    spec = LORA
    if in_effect is not None and in_effect.weights:
        try:
            start_weights = torch.load(mine.path(in_effect.weights), weights_only=True)
            spec = spec_of(in_effect.report)
        except (OSError, RuntimeError, ValueError, TypeError):
            start_weights, spec = None, LORA
    lm = attach(base.model, spec, seed=config.seed)
    try:
        fresh = adapter_state(lm)
        tok = base.tokenizer

        def loss_of() -> float:
            return mean_loss(lm, tok, held_ex, batch_size=config.batch_size, max_len=config.max_len)

        loss_bare = loss_of()  # lora_B starts at zero: the fresh adapter is the bare model
        loss_before = loss_bare
        if start_weights is not None:
            try:
                load_adapter_state(lm, start_weights)
                loss_before = loss_of()
            except (KeyError, ValueError, RuntimeError):  # not this model's shapes: start from the bare model
                load_adapter_state(lm, fresh)
                start_weights = None

        key = recipe_hash(train_ex, config, {"model": mine.model, "lora": spec.to_json(), "personal": True,
                                             "start": in_effect.sha256 if start_weights is not None else ""})
        checkpoint = state / "training" / f"personal-{mine.model}.{key}.pt"
        report = train(lm, tok, train_ex, config, checkpoint=checkpoint, progress=progress, recipe=key)
        loss_after = loss_of()
        better = loss_after < loss_before - MARGIN
        numbers = {"sends": len(sends), "trained_on": len(train_ex), "held_out": len(held_ex),
                   "loss_bare": round(loss_bare, 4), "loss_before": round(loss_before, 4),
                   "loss_after": round(loss_after, 4), "in_effect_before": in_effect.version if in_effect else None,
                   "steps": report.steps, "resumed_from": report.resumed_from, "lora": spec.to_json(),
                   "started_from": in_effect.version if start_weights is not None else None,
                   "train": config.to_json(), "recipe": key}
        if better:
            state.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=state) as tmp:  # same disk: the install is a copy, then renames
                gguf = write_gguf_adapter(Path(tmp) / "adapter.gguf", adapter_state(lm), base.model.config,
                                          base.architecture, spec.alpha, {"task": "draft_replies", "model": mine.model,
                                                                          "recipe": key, "personal": "true"})
                if check_gguf is not None:
                    check_gguf(gguf)
                weights = Path(tmp) / "adapter.pt"
                torch.save(adapter_state(lm), weights)
                version: Version = mine.install(gguf, weights, numbers)
        else:
            version = mine.reject(numbers)
        checkpoint.unlink(missing_ok=True)
    finally:  # the caller's base model as it was given: without the LoRA layers or peft's record of them
        base.model = lm.model.unload()
        if hasattr(base.model, "peft_config"):
            del base.model.peft_config
    return LearnReport(mine.model, len(sends), len(train_ex), len(held_ex), round(loss_bare, 4),
                       round(loss_before, 4), round(loss_after, 4), in_effect.version if in_effect else None,
                       "installed" if better else "rejected", version.version, report.steps, report.resumed_from,
                       round(time.perf_counter() - start, 1), FeedbackLog(store).counts())


def spec_of(report: dict) -> LoraSpec:
    """The LoRA shape a version was trained with (its report's "lora"; versions that predate it used LORA)."""
    d = report.get("lora")
    if not d:
        return LORA
    return LoraSpec(**(d | {"targets": tuple(d["targets"])}))


def llama_check(model: str) -> Callable[[Path], None]:
    """An exported adapter loads into the glasses' own engine and generates a token, or the run installs nothing."""
    def check(path: Path) -> None:
        from device.engines import load_engine
        from device.engines.base import ChatMessage, GenerationParams

        engine = load_engine(model, n_ctx=512, n_threads=None)
        engine.load_adapter("candidate", path)
        engine.use_adapter("candidate")
        engine.generate(engine.format_chat([ChatMessage("user", "Hi")]), GenerationParams(max_tokens=1,
                                                                                          temperature=0.0))
    return check
