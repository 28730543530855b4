"""Task adapters: a LoRA per (model, task), trained by the federated training loop on one client that holds
all the data, exported as a GGUF LoRA adapter and registered for the assistant.

catch_up learns from DialogSum-format rows: the prompt is exactly the assistant's catch-up prompt for the
dialogue (same header, same fenced timestamped lines), the target the human summary with DialogSum's
`#Person1#` tags written as the chat names them. References that name something the dialogue lacks are
dropped (the faithfulness check, the same one the guard applies). The first `holdout` rows are never trained
on: that is where `glassmate eval summaries` measures the adapter (it refuses overlapping rows).

draft_replies learns the wearer's next message from real replies: Ubuntu IRC (message, a little context) → the
reply its author wrote, in the prompt that reply ranking scores and that the assistant's single-draft path uses
(the wearer's own earlier lines as "Me"). It trains on the `train` folder; `glassmate eval replies` measures it on
`dev` and refuses pairs it trained on. Replies shorter than two words ("yes", "ok") are left out.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from device.assistant import prompts
from device.assistant.faithfulness import unsupported
from device.engines.adapters import AdapterSpec, register_adapter
from device.messages.inbox import group_threads
from device.paths import models_dir, state_dir
from device.tasks import ADAPTER_TASKS, Task
from federated.lora import ALL_LINEAR, LoraSpec
from federated.train import Example, TrainConfig
from lab.evaluation import dialogue_messages, read_dialogsum, references

_TAG = re.compile(r"#\s*(Person\s*\d+)\s*#")


@dataclass(frozen=True)
class Recipe:
    task: Task
    lora: LoraSpec
    train: TrainConfig
    holdout: int  # the first rows of the data file, kept for evaluation


RECIPES = {
    # Top 10 of SmolLM2's 30 layers: backward stops there, 2.4x faster per step on 2 cores than all layers.
    Task.CATCH_UP: Recipe(Task.CATCH_UP, LoraSpec(r=16, alpha=32.0, dropout=0.05, targets=ALL_LINEAR, top_layers=10),
                       TrainConfig(epochs=1.5, lr=3e-4, batch_size=4, max_len=768, seed=0), holdout=100),
    # IRC prompts are short (~150 tokens): more examples per step, one pass over a seeded sample of 1200 replies.
    Task.DRAFT_REPLIES: Recipe(Task.DRAFT_REPLIES,
                               LoraSpec(r=16, alpha=32.0, dropout=0.05, targets=ALL_LINEAR, top_layers=10),
                               TrainConfig(epochs=1.0, lr=3e-4, batch_size=8, max_len=320, seed=0), holdout=0),
}
# How many (message → reply) pairs the draft_replies recipe samples from the training folder.
REPLY_SAMPLE = 1200
DEFAULT_DATA = {Task.CATCH_UP: Path("../shared/data/dialogsum/dialogsum.dev.jsonl"),
                Task.DRAFT_REPLIES: Path("../shared/data/ubuntu_irc/train")}
# Per-model changes to a task's recipe, where 2 cores make the default too slow.
MODEL_OVERRIDES: dict[tuple[str, Task], dict] = {
    # Qwen2.5-0.5B costs ~3.5x SmolLM2 per forward token: adapt its top 6 of 24 layers for one epoch.
    ("qwen2.5-0.5b", Task.CATCH_UP): {"top_layers": 6, "epochs": 1.0},
}


def recipe_for(model: str, task: str) -> Recipe:
    if task not in RECIPES:
        raise ValueError(f"no training recipe for task {task!r} yet (have: {', '.join(RECIPES)}; tasks: "
                         f"{', '.join(ADAPTER_TASKS)})")
    r = RECIPES[task]
    over = MODEL_OVERRIDES.get((model, task), {})
    lora = LoraSpec(**(r.lora.to_json() | {"targets": r.lora.targets} |
                       {k: v for k, v in over.items() if k in LoraSpec.__dataclass_fields__}))
    train = TrainConfig(**(r.train.to_json() |
                           {k: v for k, v in over.items() if k in TrainConfig.__dataclass_fields__}))
    return Recipe(task, lora, train, r.holdout)


def untag(summary: str) -> str:
    """`#Person1#` → `Person1`: the name the dialogue's chat lines carry."""
    return _TAG.sub(lambda m: m.group(1).replace(" ", ""), summary).strip()


def catch_up_example(dialogue: str, target: str) -> tuple[Example, str]:
    """The assistant's own catch-up prompt for this dialogue, and the chat source the target must be faithful to."""
    thread = group_threads(dialogue_messages(dialogue, "Conversation"))["Conversation"]
    header = prompts.thread_header(thread.name, thread.participants)
    lines = [prompts.message_line(m) for m in thread.messages]
    source = prompts.chat_source(thread.name, thread.participants, thread.messages)
    return Example(tuple(prompts.summary_messages(header, lines)), target), source


@dataclass
class TaskData:
    examples: list[Example]
    ids: list[str]
    dropped_unfaithful: list[str]
    holdout_ids: list[str]


def catch_up_data(path: Path, holdout: int) -> TaskData:
    rows = read_dialogsum(path, None)
    if len(rows) <= holdout:
        raise ValueError(f"{path} has {len(rows)} rows; {holdout} are held out for evaluation, none left to train")
    examples, ids, dropped = [], [], []
    for i, row in enumerate(rows[holdout:], start=holdout):
        rid = row.get("fname", f"dialogue-{i}")
        for ref in references(row)[:1]:
            ex, source = catch_up_example(row["dialogue"], untag(ref))
            if unsupported(ex.target, source):
                dropped.append(rid)
                continue
            examples.append(ex)
            ids.append(rid)
    holdout_ids = [r.get("fname", f"dialogue-{i}") for i, r in enumerate(rows[:holdout])]
    return TaskData(examples, ids, dropped, holdout_ids)


def draft_replies_data(folder: Path, n: int = REPLY_SAMPLE, seed: int = 0) -> TaskData:
    from federated.partitions import reply_example
    from lab.irc import reply_pairs, strip_address

    pairs = [p for p in reply_pairs(folder) if len(strip_address(p.reply.text).split()) >= 2]
    random.Random(seed).shuffle(pairs)
    pairs = pairs[:n]
    return TaskData([reply_example(p) for p in pairs], [p.id for p in pairs], [], [])


def task_data(task: str, data: Path, holdout: int) -> TaskData:
    if task == Task.CATCH_UP:
        return catch_up_data(data, holdout)
    return draft_replies_data(data)


def data_name(data: Path) -> str:
    """A data path as the record names it: the file, or the corpus/folder (never this machine's layout)."""
    p = Path(data)
    return p.name if p.is_file() else f"{p.parent.name}/{p.name}"


def adapter_file(model: str, task: str) -> str:
    return f"built/adapters/{model}.{task}.gguf"


def build(model: str, task: str, data: Path, progress: Callable[[int, int, float], None] | None = None,
          epochs: float | None = None, limit: int | None = None, holdout: int | None = None) -> dict:
    """Train, export and register the adapter; returns the training report (also written beside the file)."""
    from federated.base_model import load_catalog_model
    from federated.gguf_lora import write_gguf_adapter
    from federated.lora import adapter_state, attach
    from federated.train import recipe_hash, train

    recipe = recipe_for(model, task)
    config = recipe.train if epochs is None else TrainConfig(**(recipe.train.to_json() | {"epochs": epochs}))
    holdout = recipe.holdout if holdout is None else holdout
    td = task_data(task, Path(data), holdout)
    examples, ids = td.examples[:limit], td.ids[:limit]
    base = load_catalog_model(model)
    lm = attach(base.model, recipe.lora, seed=config.seed)
    key = recipe_hash(examples, config, {"model": model, "lora": recipe.lora.to_json()})
    checkpoint = state_dir() / "training" / f"{model}.{task}.{key}.pt"
    report = train(lm, base.tokenizer, examples, config, checkpoint=checkpoint, progress=progress, recipe=key)
    rel = adapter_file(model, task)
    made_by = f"glassmate adapters build --model {model} --task {task} --data {data_name(data)}"
    if epochs is not None:
        made_by += f" --epochs {epochs}"
    if limit is not None:
        made_by += f" --limit {limit}"
    if holdout != recipe.holdout:
        made_by += f" --holdout {holdout}"
    write_gguf_adapter(models_dir() / rel, adapter_state(lm), base.model.config, base.architecture,
                       recipe.lora.alpha, {"task": task, "model": model, "recipe": key})
    spec = register_adapter(AdapterSpec(name=f"{model}.{task}", model=model, task=task, file=rel, sha256="",
                                        size=0, made_by=made_by,
                                        trained_on={"data": data_name(data), "ids": ids}))
    out = {"adapter": spec.name, "file": str(spec.path), "sha256": spec.sha256, "size": spec.size,
           "recipe": key, "lora": recipe.lora.to_json(), "train": config.to_json(),
           "examples": len(examples), "dropped_unfaithful": len(td.dropped_unfaithful),
           "holdout": holdout, "report": report.__dict__, "made_by": made_by,
           "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    spec.path.with_suffix(".json").write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    checkpoint.unlink(missing_ok=True)
    return out
