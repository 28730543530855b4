"""A FactCC-style set (Kryscinski et al. 2020): errors planted into DialogSum's human reference summaries, to
measure how many the meaning check catches and how often it cries wolf on a reference left as written.

DialogSum is CC BY-NC-SA 4.0, so the set is never written into the project: it is built at run time from the
dialogues in `../shared/data/dialogsum/`, the same way every time (the row's index picks the sentence and the kind
of error). Three kinds, as in FactCC: a negation flipped ("can" <-> "can't"), a participant swapped for another
of the dialogue's people ("#Person1# wants" -> "#Person2# wants"), and the roles of two people in one sentence
exchanged ("#Person1# asks #Person2#" -> "#Person2# asks #Person1#").

The check reads only the planted sentence's own contrasts, so each kind is caught only if the model, reading the
dialogue, prefers the original wording to the planted one by more than the margin; a reference left as written is
a false alarm when the model prefers one of *its* contrasts by more than the margin.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from device.assistant import meaning_check, prompts
from device.assistant.core import Assistant
from device.tasks import Task

Split = Literal["tune", "report"]
KINDS: tuple[meaning_check.ContrastKind, ...] = ("negation", "participants", "roles")
_PERSON = re.compile(r"#Person\d#")


@dataclass(frozen=True)
class Planted:
    fname: str
    dialogue: list[str]  # "#Person1#: text" lines
    people: list[str]
    reference: str
    sentence: str  # the reference sentence that carries the error
    planted: str  # that sentence with the error
    kind: meaning_check.ContrastKind


def plant(sentence: str, people: list[str], kind: meaning_check.ContrastKind) -> str | None:
    if kind == "negation":
        options = meaning_check.negations(sentence)
    elif kind == "participants":
        options = meaning_check.participant_replacements(sentence, people)
    else:
        options = meaning_check.participant_swaps(sentence, people)
    return options[0] if options else None


def build(path: Path, split: Split) -> list[Planted]:
    """One planted error per dialogue where the reference allows one: the kind rotates with the row, the first
    sentence (in order) that takes that kind carries it. Even rows are the tuning half, odd rows the report half."""
    out = []
    for index, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip() or (index % 2 == 0) != (split == "tune"):
            continue
        row = json.loads(line)
        lines = [" ".join(t.split()) for t in row["dialogue"].splitlines() if t.strip()]
        people = sorted(set(_PERSON.findall(row["dialogue"])))
        reference = " ".join(row["summary"].split())
        for shift in range(len(KINDS)):
            kind = KINDS[(index // 2 + shift) % len(KINDS)]
            found = next(((s, p) for s in meaning_check.sentences(reference)
                          if (p := plant(s, people, kind)) and p != s), None)
            if found:
                out.append(Planted(row["fname"], lines, people, reference, found[0], found[1], kind))
                break
    return out


@dataclass
class CheckResult:
    model: str
    split: str
    n_planted: int
    n_clean: int
    margin: float
    prior_weight: float
    catch_rate: float  # planted errors flagged
    false_alarm_rate: float  # references as written flagged
    catch_by_kind: dict[str, float]
    n_by_kind: dict[str, int]
    p50_s: float
    samples: list[dict] = field(default_factory=list)


def score(assistant: Assistant, item: Planted) -> dict:
    """The check's deltas (log P(contrast) - log P(sentence)) after the dialogue and after the prompt with no
    dialogue, for the planted sentence and for each sentence of the reference as written: the margin and the prior's
    weight are applied afterwards (`summarize`), so one run serves every setting."""
    checker = meaning_check.MeaningCheck(assistant.engine)
    header = prompts.thread_header("dialogue", item.people)
    tokens = assistant.engine.tokenize_prompt
    prefix = tokens(assistant.prepare(Task.CATCH_UP, prompts.summary_messages(header, item.dialogue)))
    prior = tokens(assistant.prepare(Task.CATCH_UP, prompts.summary_messages(header, [])))
    scored = checker.deltas(prefix, prior, [item.planted, *meaning_check.sentences(item.reference)], item.people)
    rows = [{"kinds": [c.kind for c in options], "with": [round(x, 3) for x in d], "without": [round(x, 3) for x in p]}
            for options, d, p in scored]
    return {"planted_scores": rows[0], "clean_scores": rows[1:]}


def gap(row: dict, weight: float) -> float:
    return max((d - weight * p for d, p in zip(row["with"], row["without"], strict=True)), default=float("-inf"))


def evaluate(assistant: Assistant, items: list[Planted], split: Split, margin: float, weight: float,
             progress: Callable[[int, int], None] | None = None) -> CheckResult:
    samples, seconds = [], []
    for i, item in enumerate(items):
        start = time.perf_counter()
        scores = score(assistant, item)
        seconds.append(time.perf_counter() - start)
        samples.append({k: v for k, v in asdict(item).items() if k != "dialogue"} | scores)
        if progress:
            progress(i + 1, len(items))
    return summarize(assistant.engine.name, split, samples, margin, weight,
                     statistics.median(seconds) if seconds else 0.0)


def summarize(model: str, split: str, samples: list[dict], margin: float, weight: float, p50_s: float) -> CheckResult:
    planted = [gap(s["planted_scores"], weight) > margin for s in samples]
    clean = [max((gap(r, weight) for r in s["clean_scores"]), default=float("-inf")) > margin for s in samples]
    caught = Counter(s["kind"] for s, hit in zip(samples, planted, strict=True) if hit)
    n = Counter(s["kind"] for s in samples)
    return CheckResult(
        model=model, split=split, n_planted=len(samples), n_clean=len(samples), margin=margin, prior_weight=weight,
        catch_rate=round(sum(planted) / len(samples), 3) if samples else 0.0,
        false_alarm_rate=round(sum(clean) / len(samples), 3) if samples else 0.0,
        catch_by_kind={k: round(caught[k] / n[k], 3) for k in n}, n_by_kind=dict(n), p50_s=round(p50_s, 3),
        samples=samples)
