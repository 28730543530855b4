"""Summaries and notifications judged on meaning: the project's meaning set (`tests/fixtures/meaning/chats.jsonl`).

Each chat is caught up (the summary of all its messages, as unread) and its last message notified, exactly as the
glasses would show them; a shown text states a misreading when one of the chat's `must_not` patterns matches it, and
a summary misses the point when one of its `must` patterns does not. `stale_plan` patterns judge summaries only: a
notification covers one message. Reports the meaning-error rate of summaries and of notifications, misses, errors by
kind and the worst cases. The set's "untouched" part is scored once, at the end.
"""

from __future__ import annotations

import re
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from device.assistant.core import Assistant
from device.messages.inbox import FeedError, Message, Thread
from device.tasks import Task
from lab.fixture_rows import messages, rows

Part = Literal["tune", "untouched", "all"]
SUMMARY_ONLY = {"stale_plan"}


@dataclass(frozen=True)
class Misreading:
    kind: str
    pattern: re.Pattern
    why: str


@dataclass(frozen=True)
class MeaningCase:
    id: str
    category: str
    part: str
    messages: list[Message]
    must: list[re.Pattern]
    must_not: list[Misreading]


def read_set(path: Path) -> list[MeaningCase]:
    cases = []
    for where, row in rows(path):
        try:
            cases.append(MeaningCase(
                row["id"], row["category"], row["part"], messages(row, where),
                [re.compile(r, re.I) for r in row["must"]],
                [Misreading(m["kind"], re.compile(m["regex"], re.I), m["why"]) for m in row["must_not"]]))
        except (KeyError, TypeError, re.error) as exc:
            raise FeedError(f"{where}: {exc!r}") from None
    return cases


QUOTED = ("extractive", "quotes")  # guard actions whose summary is the key messages quoted under their senders


def misreadings(text: str, case: MeaningCase, summary: bool, quoted: bool = False) -> list[str]:
    """The misreadings `text` states. A quoted summary is the chat's own words: only what its choice of messages
    can get wrong (a plan the chat moved away from) is held against it."""
    return [m.kind for m in case.must_not
            if (summary or m.kind not in SUMMARY_ONLY) and (not quoted or m.kind in SUMMARY_ONLY)
            and m.pattern.search(text)]


@dataclass
class MeaningResult:
    model: str
    adapter: str | None
    part: str
    n: int
    summary_error_rate: float  # shown summaries that state a misreading
    notification_error_rate: float  # of all notifications shown; one shown as written counts as correct
    notification_verbatim_rate: float  # notifications that are the message as written (too short to condense)
    summary_miss_rate: float  # summaries that do not say what the chat must
    errors_by_kind: dict[str, int]
    by_category: dict[str, float]  # summary error rate per category
    summary_p50_s: float
    notification_p50_s: float
    samples: list[dict] = field(default_factory=list)

    def worst(self, n: int = 10) -> list[dict]:
        return sorted(self.samples, key=lambda s: (-len(s["summary_errors"]) - len(s["notification_errors"]),
                                                   -len(s["missed"])))[:n]


def eval_meaning(assistant: Assistant, path: Path, part: Part = "tune",
                 progress: Callable[[int, int], None] | None = None) -> MeaningResult:
    cases = [c for c in read_set(path) if part == "all" or c.part == part]
    samples, kinds = [], Counter()
    summary_s, notify_s = [], []
    for i, case in enumerate(cases):
        thread = Thread(case.messages[0].thread)
        for m in case.messages:
            thread.add(m)
        start = time.perf_counter()
        # every message as unread: a chat that ends with the wearer's own message has nothing unread on the glasses
        summary = assistant.catch_up(thread, thread.messages)
        summary_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        last = next(m for m in reversed(case.messages) if not m.from_wearer)
        note = assistant.notify(last)
        notify_s.append(time.perf_counter() - start)
        # a message shown as written, under its sender's name, is the chat itself: it cannot misstate it
        verbatim = note.guard == "verbatim"
        s_err = misreadings(summary.text, case, True, quoted=summary.guard in QUOTED)
        n_err = [] if verbatim else misreadings(note.text, case, False)
        missed = [p.pattern for p in case.must if not p.search(summary.text)]
        kinds.update(s_err + n_err)
        samples.append({"id": case.id, "category": case.category, "summary": summary.text, "guard": summary.guard,
                        "chunks": summary.chunks, "notification": note.text, "verbatim": verbatim,
                        "summary_errors": s_err, "notification_errors": n_err, "missed": missed})
        if progress:
            progress(i + 1, len(cases))
    n = len(cases)

    def rate(key: str, rows: list[dict]) -> float:
        return round(sum(bool(s[key]) for s in rows) / len(rows), 3) if rows else 0.0

    categories = sorted({s["category"] for s in samples})
    return MeaningResult(
        model=assistant.engine.name, adapter=assistant.adapters.get(Task.CATCH_UP), part=part, n=n,
        summary_error_rate=rate("summary_errors", samples),
        notification_error_rate=rate("notification_errors", samples),
        notification_verbatim_rate=rate("verbatim", samples),
        summary_miss_rate=rate("missed", samples), errors_by_kind=dict(kinds.most_common()),
        by_category={c: rate("summary_errors", [s for s in samples if s["category"] == c]) for c in categories},
        summary_p50_s=round(statistics.median(summary_s), 3) if summary_s else 0.0,
        notification_p50_s=round(statistics.median(notify_s), 3) if notify_s else 0.0, samples=samples)


def to_json(result: MeaningResult, with_samples: bool = True) -> dict:
    out = asdict(result)
    if not with_samples:
        out.pop("samples")
    return out
