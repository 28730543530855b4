"""Measuring the assistant: summary quality and latency on DialogSum-format files.

Data paths are always arguments; nothing from the evaluation sets is shipped with the project.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from device.assistant import prompts
from device.assistant.core import Assistant
from device.assistant.faithfulness import unsupported
from device.messages.inbox import FeedError, Message, group_threads
from device.tasks import Task

_TURN = re.compile(r"^\s*#?([^#:]{1,40})#?\s*:\s*(.*)$")


def dialogue_messages(dialogue: str, thread: str) -> list[Message]:
    """DialogSum's `#Person1#: text` turns as chat messages, a minute apart."""
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    out = []
    for i, line in enumerate(x for x in dialogue.splitlines() if x.strip()):
        m = _TURN.match(line)
        sender, text = (m.group(1).strip(), m.group(2)) if m else ("Someone", line)
        out.append(Message(thread, sender, text, start + timedelta(minutes=i)))
    return out


def read_dialogsum(path: Path, n: int | None) -> list[dict]:
    rows = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise FeedError(f"{path}: no such file") from exc
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FeedError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
        if "dialogue" not in row or not any(k.startswith("summary") for k in row):
            raise FeedError(f"{path}:{lineno}: expected DialogSum fields 'dialogue' and 'summary'")
        rows.append(row)
        if n and len(rows) >= n:
            break
    return rows


def references(row: dict) -> list[str]:
    return [v for k, v in sorted(row.items()) if k.startswith("summary") and isinstance(v, str) and v.strip()]


def is_echo(summary: str) -> bool:
    """The model repeated its instructions or the transcript frame instead of summarizing."""
    low = summary.lower()
    system_words = prompts.SUMMARY_SYSTEM.lower()
    probes = ("summarize these messages", "<messages>", "chat: ", "you summarize", "copy names")
    if any(p in low for p in probes):
        return True
    # a run of 8+ words lifted from the system prompt
    words = low.split()
    return any(" ".join(words[i:i + 8]) in system_words for i in range(max(0, len(words) - 7)))


def copies_transcript(summary: str, dialogue: str, run: int = 10) -> bool:
    """The summary replays the chat instead of summarizing it: two or more `Name:` turns, or a run of `run`
    consecutive words lifted verbatim from the dialogue."""
    if len(re.findall(r"(?:^|\s)[A-Z#][\w# ]{0,30}:\s", summary)) >= 2:
        return True
    norm = lambda t: re.sub(r"[^a-z0-9' ]", " ", t.lower()).split()  # noqa: E731
    words, source = norm(summary), " ".join(norm(dialogue))
    return any(" ".join(words[i:i + run]) in source for i in range(max(0, len(words) - run + 1)))


@dataclass
class SummaryEval:
    model: str
    adapter: str | None  # the catch_up adapter in effect (None: the bare model)
    n: int
    rouge1: float
    rouge2: float
    rougeL: float
    echo_rate: float
    copy_rate: float
    empty_rate: float
    unsupported_rate: float  # summaries shown with a name/number/time/date the dialogue lacks
    guard_rate: float  # summaries the faithfulness guard replaced (regenerated or extractive)
    extractive_rate: float
    guard: bool
    mean_words: float
    ttft_p50_s: float
    total_p50_s: float
    total_mean_s: float
    n_threads: int
    samples: list[dict] = field(default_factory=list)


def eval_summaries(assistant: Assistant, data: Path, n: int = 20, progress=None,
                   exclude_ids: set[str] | frozenset[str] = frozenset()) -> SummaryEval:
    """`exclude_ids`: the rows that trained the adapter in use; scoring one of them is refused, not skipped."""
    from rouge_score import rouge_scorer  # an evaluation extra, not a glasses-runtime dependency

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    rows = read_dialogsum(data, n)
    seen = [r.get("fname", f"dialogue-{i}") for i, r in enumerate(rows) if r.get("fname", f"dialogue-{i}")
            in exclude_ids]
    if seen:
        raise FeedError(f"{len(seen)} of the first {len(rows)} rows of {data} trained the adapter in use (e.g. "
                        f"{seen[0]}); evaluate on rows it never saw, or pass --no-adapters")
    samples = []
    for i, row in enumerate(rows):
        name = row.get("fname", f"dialogue-{i}")
        # The thread is called "Conversation": a file id in the chat header would only distract the model.
        thread = group_threads(dialogue_messages(row["dialogue"], "Conversation"))["Conversation"]
        result = assistant.catch_up(thread)
        refs = references(row)
        best = {k: max(scorer.score(ref, result.text)[k].fmeasure for ref in refs)
                for k in ("rouge1", "rouge2", "rougeL")}
        samples.append({"id": name, "summary": result.text, "reference": refs[0], **best,
                        "echo": is_echo(result.text), "copy": copies_transcript(result.text, row["dialogue"]),
                        "unsupported": [s.text for s in unsupported(result.text, prompts.chat_source(
                            thread.name, thread.participants, thread.messages))],
                        "guard": result.guard, "first_unsupported": result.unsupported,
                        "empty": not result.text.strip(),
                        "ttft_s": result.ttft_s, "total_s": result.total_s, "chunks": result.chunks})
        if progress:
            progress(i + 1, len(rows))

    def mean(key: str) -> float:
        return round(statistics.fmean(float(s[key]) for s in samples), 4)
    return SummaryEval(
        model=assistant.engine.name, adapter=assistant.adapters.get(Task.CATCH_UP), n=len(samples),
        rouge1=mean("rouge1"), rouge2=mean("rouge2"),
        rougeL=mean("rougeL"), echo_rate=mean("echo"), copy_rate=mean("copy"), empty_rate=mean("empty"),
        unsupported_rate=round(statistics.fmean(bool(s["unsupported"]) for s in samples), 4),
        guard_rate=round(statistics.fmean(bool(s["guard"]) for s in samples), 4),
        extractive_rate=round(statistics.fmean(s["guard"] == "extractive" for s in samples), 4),
        guard=assistant.guard,
        mean_words=round(statistics.fmean(len(s["summary"].split()) for s in samples), 1),
        ttft_p50_s=round(statistics.median(s["ttft_s"] for s in samples), 3),
        total_p50_s=round(statistics.median(s["total_s"] for s in samples), 3),
        total_mean_s=round(statistics.fmean(s["total_s"] for s in samples), 3),
        n_threads=getattr(assistant.engine, "n_threads", 0), samples=samples)


def worst(result: SummaryEval, k: int = 10) -> list[dict]:
    """The cases to read first: unsupported spans, then echoes and copies, then the lowest ROUGE-L."""
    return sorted(result.samples, key=lambda s: (-len(s["unsupported"]), -(s["echo"] or s["copy"]), s["rougeL"]))[:k]


def to_json(result: SummaryEval, with_samples: bool = True) -> dict:
    out = asdict(result)
    if not with_samples:
        out.pop("samples")
    return out
