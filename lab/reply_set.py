"""Reply drafts judged as a wearer would: the project's reply set (`tests/fixtures/replies/threads.jsonl`) drafted
by the assistant and every draft checked by `device.assistant.drafts.judge`, with the facts the set states about
each thread (its language, what the wearer is asked, plans it moved away from, scams and what they want).

Reports the usable rate, the threads served (at least one usable draft, and three distinct ones), failures by kind,
the worst threads, and drafting latency. The set's "untouched" part is scored once, at the end.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from device.assistant.core import Assistant, AssistantError, normalise
from device.assistant.drafts import Failure, ThreadFacts, judge, transcript
from device.messages.inbox import FeedError, Message, Thread
from device.tasks import Task
from lab.fixture_rows import messages, rows

Part = Literal["tune", "untouched", "all"]


@dataclass(frozen=True)
class ReplyCase:
    id: str
    lang: str
    category: str
    part: str
    messages: list[Message]
    facts: ThreadFacts


def read_set(path: Path) -> list[ReplyCase]:
    cases = []
    for where, row in rows(path):
        try:
            chat = messages(row, where)
            facts = ThreadFacts(source=transcript(chat), language=row["lang"],
                                request_terms=tuple(row["request_terms"]), superseded=tuple(row["superseded"]),
                                scam=bool(row["scam"]), secrets=tuple(row["secrets"]))
            cases.append(ReplyCase(row["id"], row["lang"], row["category"], row["part"], chat, facts))
        except (KeyError, TypeError) as exc:
            raise FeedError(f"{where}: {exc!r}") from None
    return cases


@dataclass
class ReplySetResult:
    model: str
    adapter: str | None
    part: str
    n_threads: int
    n_drafts: int
    usable_rate: float
    served_rate: float
    failures: dict[str, int]
    by_language: dict[str, float]
    latency_p50_s: float
    latency_p90_s: float
    errors: int
    samples: list[dict] = field(default_factory=list)

    def worst(self, n: int = 10) -> list[dict]:
        return sorted(self.samples, key=lambda s: (s["usable"], s["served"]))[:n]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def eval_reply_set(assistant: Assistant, path: Path, part: Part = "tune",
                   progress: Callable[[int, int], None] | None = None) -> ReplySetResult:
    cases = [c for c in read_set(path) if part == "all" or c.part == part]
    samples, seconds, counts = [], [], Counter()
    usable = total = served = errors = 0
    by_lang: dict[str, list[int]] = {}
    for i, case in enumerate(cases):
        thread = Thread(case.messages[0].thread)
        for m in case.messages:
            thread.add(m)
        start = time.perf_counter()
        try:
            drafts = assistant.draft_replies(thread).replies
        except AssistantError:  # no three distinct drafts: the wearer is served nothing
            drafts, errors = [], errors + 1
        seconds.append(time.perf_counter() - start)
        verdicts = [judge(d, case.facts) for d in drafts]
        good = sum(v.usable for v in verdicts)
        is_served = good >= 1 and len({normalise(d) for d in drafts}) == 3
        usable, total, served = usable + good, total + 3, served + is_served
        for v in verdicts:
            counts.update(str(f) for f in v.failures)
        by_lang.setdefault(case.lang, []).extend([v.usable for v in verdicts] + [0] * (3 - len(verdicts)))
        samples.append({"id": case.id, "lang": case.lang, "category": case.category, "usable": good,
                        "served": is_served, "seconds": round(seconds[-1], 3),
                        "drafts": [{"text": v.draft, "failures": [str(f) for f in v.failures], "why": list(v.detail)}
                                   for v in verdicts]})
        if progress:
            progress(i + 1, len(cases))
    n = len(cases)
    return ReplySetResult(
        model=assistant.engine.name, adapter=assistant.adapters.get(Task.DRAFT_REPLIES), part=part, n_threads=n,
        n_drafts=total, usable_rate=round(usable / total, 3) if total else 0.0,
        served_rate=round(served / n, 3) if n else 0.0,
        failures={str(f): counts.get(str(f), 0) for f in Failure},
        by_language={lang: round(statistics.mean(v), 3) for lang, v in sorted(by_lang.items())},
        latency_p50_s=round(_pct(seconds, 0.5), 3), latency_p90_s=round(_pct(seconds, 0.9), 3), errors=errors,
        samples=samples)


def to_json(result: ReplySetResult, with_samples: bool = True) -> dict:
    out = asdict(result)
    if not with_samples:
        out.pop("samples")
    return out
