"""`glassmate eval ask`: retrieval, answers, citations and abstention on a question set written for the project.

A question file is JSON lines: {"id", "feed": path of a JSONL feed (relative to the question file), "now": ISO
time the question is asked at, "question", "answers": [acceptable short answers] (empty: the messages do not
say), "support": [exact substrings of the message(s) that hold the answer]}. Each feed goes into a fresh sealed
store and index; every question is then asked as the wearer would.

Reported: recall@k and MAP@k of the supporting messages among the retrieved ones (answerable questions), answer
exact match and token F1 against the best acceptable answer (answerable, answered or not), citation precision
(cited messages that hold support), and abstention precision / recall (abstaining on exactly the unanswerable).
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from device.ask.answer import AskConfig, ask
from device.ask.embedder import Embedder
from device.ask.message_index import MessageIndex
from device.assistant.core import Assistant
from device.messages.inbox import FeedError, read_feed
from device.messages.store import MessageStore

_WORD = re.compile(r"[a-z0-9£€$]+(?:[.:'][a-z0-9]+)*")
_ARTICLES = {"a", "an", "the", "at", "on", "in", "is", "it", "by"}


@dataclass
class Question:
    id: str
    feed: Path
    now: datetime
    question: str
    answers: list[str]
    support: list[str]

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


RIGHT_F1 = 0.5  # an answer shown counts as right from this token F1 against a gold answer


@dataclass
class AskEval:
    model: str
    n: int
    n_unanswerable: int
    recall_at_5: float
    map_at_5: float
    answer_em: float
    answer_f1: float
    citation_precision: float
    abstain_precision: float
    abstain_recall: float
    p50_s: float
    p90_s: float
    ttft_p50_s: float = 0.0  # the model reading the shown messages
    prompt_tokens_p50: float = 0.0
    completion_tokens_p50: float = 0.0
    # answers shown, counted by whether they were right (answerable, F1 >= 0.5) and whether the wearer heard them
    # as a guess with the words they came from (`Answer.hedged`) or as sure
    right_sure: int = 0
    right_hedged: int = 0
    wrong_sure: int = 0
    wrong_hedged: int = 0
    samples: list[dict] = field(default_factory=list)


def read_questions(path: Path) -> list[Question]:
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            q = Question(str(row["id"]), (Path(path).parent / row["feed"]).resolve(),
                         datetime.fromisoformat(row["now"]), row["question"], list(row.get("answers", [])),
                         list(row.get("support", [])))
        except (ValueError, KeyError, TypeError) as exc:
            raise FeedError(f"{path}:{n}: not a question row ({exc})") from exc
        if q.answerable and not q.support:
            raise FeedError(f"{path}:{n}: an answerable question needs the supporting message text in `support`")
        out.append(q)
    if not out:
        raise FeedError(f"{path}: no questions")
    return out


def normalise_answer(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower().replace("’", "'")) if w not in _ARTICLES]


def token_f1(pred: str, gold: str) -> float:
    p, g = normalise_answer(pred), normalise_answer(gold)
    common = sum((Counter(p) & Counter(g)).values())
    if not p or not g or not common:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def average_precision(ranked: list[int], gold: set[int], k: int) -> float:
    hits, total = 0, 0.0
    for i, rid in enumerate(ranked[:k], 1):
        if rid in gold:
            hits += 1
            total += hits / i
    return total / min(len(gold), k) if gold else 0.0


def eval_ask(assistant: Assistant, embedder: Embedder, questions: list[Question], config: AskConfig | None = None,
             progress=None, verifier: Assistant | None = None) -> AskEval:
    config = config or AskConfig()
    rows = []
    by_feed: dict[Path, list[Question]] = {}
    for q in questions:
        by_feed.setdefault(q.feed, []).append(q)
    done = 0
    for feed, qs in by_feed.items():
        with tempfile.TemporaryDirectory(prefix="glassmate-ask-eval-") as tmp, \
                MessageStore(Path(tmp) / "store.db", key=bytes(32)) as store:
            store.add(read_feed(feed))
            index = MessageIndex(store, embedder)
            index.sync()
            for q in qs:
                gold = {rid for rid, m in index.messages.items() if any(s in m.text for s in q.support)}
                if q.answerable and not gold:
                    raise FeedError(f"question {q.id}: no message in {feed.name} contains its support text")
                result = ask(assistant, index, q.question, q.now, config, verifier)
                best = max((token_f1(result.answer, a) for a in q.answers), default=0.0) if not result.abstained \
                    else 0.0
                em = any(normalise_answer(result.answer) == normalise_answer(a) for a in q.answers) \
                    and not result.abstained
                rows.append({"id": q.id, "answerable": q.answerable, "abstained": result.abstained,
                             "answer": result.answer, "spoken": result.spoken, "reason": result.reason,
                             "f1": best, "em": em,
                             "recall": len(gold & set(result.retrieved[:5])) / len(gold) if gold else None,
                             "ap": average_precision(result.retrieved, gold, 5) if gold else None,
                             "cited_ok": [rid in gold for rid in result.citations], "s": result.total_s,
                             "citations": result.citations, "retrieved": result.retrieved,
                             "ttft_s": result.ttft_s, "prompt_tokens": result.prompt_tokens,
                             "completion_tokens": result.completion_tokens, "p_abstain": result.p_abstain,
                             "draft": result.draft, "question_gain": result.question_gain,
                             "weakest_word": result.weakest_word, "word_gain": result.word_gain,
                             "support": result.support, "candidate": result.candidate,
                             "hedged": result.hedged, "evidence": result.evidence})
                done += 1
                if progress:
                    progress(done, len(questions))
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    abstained = [r for r in rows if r["abstained"]]
    cited = [ok for r in rows for ok in r["cited_ok"]]
    times = sorted(r["s"] for r in rows)
    shown = [r for r in rows if not r["abstained"]]

    def count(right: bool, hedged: bool) -> int:
        return sum((r["answerable"] and r["f1"] >= RIGHT_F1) == right and r["hedged"] == hedged for r in shown)

    def mean(values) -> float:
        values = list(values)
        return round(statistics.fmean(values), 4) if values else 0.0
    return AskEval(
        model=assistant.engine.name, n=len(rows), n_unanswerable=len(unanswerable),
        recall_at_5=mean(r["recall"] for r in answerable), map_at_5=mean(r["ap"] for r in answerable),
        answer_em=mean(float(r["em"]) for r in answerable), answer_f1=mean(r["f1"] for r in answerable),
        citation_precision=mean(float(ok) for ok in cited),
        abstain_precision=mean(float(not r["answerable"]) for r in abstained),
        abstain_recall=mean(float(r["abstained"]) for r in unanswerable),
        p50_s=round(times[len(times) // 2], 3), p90_s=round(times[int(0.9 * (len(times) - 1))], 3),
        ttft_p50_s=round(statistics.median(r["ttft_s"] for r in rows), 3),
        prompt_tokens_p50=statistics.median(r["prompt_tokens"] for r in rows),
        completion_tokens_p50=statistics.median(r["completion_tokens"] for r in rows),
        right_sure=count(True, False), right_hedged=count(True, True), wrong_sure=count(False, False),
        wrong_hedged=count(False, True), samples=rows)


def to_json(result: AskEval, with_samples: bool = True) -> dict:
    out = asdict(result)
    if not with_samples:
        out.pop("samples")
    return out
