"""`glassmate eval commands`: intent accuracy, slot F1 and the intent confusion matrix on a set of utterances.

Each line of the set is `{"utterance", "intent", "slots"}` written for the sample inbox. Slot values compare
after normalisation (lower case, words only), so "I'll be ten minutes late." equals "i'll be ten minutes late";
an ambiguous name is the candidates joined by '|' ("Alice Chen|Alice Park"): the parser must notice it has to ask.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from device.glasses.commands import INTENTS, Command, ContactBook, understand


@dataclass(frozen=True)
class Case:
    utterance: str
    intent: str
    slots: dict


@dataclass
class CommandReport:
    n: int
    intent_accuracy: float
    slot_precision: float
    slot_recall: float
    slot_f1: float
    by_source: dict[str, int]
    confusion: dict[str, dict[str, int]]
    errors: list[dict] = field(default_factory=list)
    p50_ms: float = 0.0

    def to_json(self) -> dict:
        return {"n": self.n, "intent_accuracy": round(self.intent_accuracy, 4), "slot_f1": round(self.slot_f1, 4),
                "slot_precision": round(self.slot_precision, 4), "slot_recall": round(self.slot_recall, 4),
                "by_source": self.by_source, "p50_ms": round(self.p50_ms, 3), "confusion": self.confusion,
                "errors": self.errors}


def read_cases(path: Path) -> list[Case]:
    cases = []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            case = Case(str(d["utterance"]), str(d["intent"]), dict(d.get("slots", {})))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{i}: not an utterance case ({exc})") from exc
        if case.intent not in INTENTS:
            raise ValueError(f"{path}:{i}: unknown intent {case.intent!r}")
        cases.append(case)
    if not cases:
        raise ValueError(f"{path}: no utterances")
    return cases


def _norm(value) -> str:
    return " ".join(re.findall(r"[\w'+|]+", str(value).lower()))


def slot_pairs(slots: dict) -> set[tuple[str, str]]:
    return {(k, _norm(v)) for k, v in slots.items()}


def evaluate(cases: list[Case], book: ContactBook, complete=None, progress=None) -> CommandReport:
    tp = fp = fn = correct = 0
    sources: Counter[str] = Counter()
    confusion: dict[str, Counter[str]] = {i: Counter() for i in INTENTS}
    errors = []
    times = []
    for case in cases:
        t0 = time.perf_counter()
        cmd: Command = understand(case.utterance, book, complete)
        times.append((time.perf_counter() - t0) * 1000)
        sources[cmd.source] += 1
        gold, got = slot_pairs(case.slots), slot_pairs(cmd.slots)
        tp, fp, fn = tp + len(gold & got), fp + len(got - gold), fn + len(gold - got)
        correct += cmd.intent == case.intent
        confusion[case.intent][cmd.intent] += 1
        if cmd.intent != case.intent or gold != got:
            errors.append({"utterance": case.utterance, "want": {"intent": case.intent, "slots": case.slots},
                           "got": cmd.to_json()})
        if progress:
            progress()
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    times.sort()
    return CommandReport(len(cases), correct / len(cases), precision, recall, f1, dict(sources),
                         {k: dict(v) for k, v in confusion.items()}, errors, times[len(times) // 2])


def plot_confusion(report: CommandReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = list(INTENTS) + (["none"] if any("none" in r for r in report.confusion.values()) else [])
    grid = [[report.confusion[r].get(c, 0) for c in cols] for r in INTENTS]
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(grid, cmap="Blues")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(INTENTS)), INTENTS)
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", color="white" if v > max(map(max, grid)) / 2 else "k")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"commands: n={report.n}, intent acc {report.intent_accuracy:.1%}, slot F1 {report.slot_f1:.2f}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
