"""`glassmate bench-ask`: ask latency and index cost at inbox scale (10k messages by default).

The store is filled with real chat lines (Ubuntu IRC logs, CC BY 4.0; any folder of `*.raw.txt` given by path)
spread over threads and days, plus the question set's inboxes, so their answers sit among thousands of
distractors. Measured, in one run on this machine: embedding throughput while indexing (messages per second, vs.
how fast messages arrive), the cost of indexing one new message, the sealed vectors' size in the store and the
in-memory index size per 10k messages, and `ask` end to end (retrieval alone, and retrieval + the model's answer)
over the question set.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from device.ask.answer import AskConfig, ask
from device.ask.embedder import Embedder
from device.ask.message_index import MessageIndex
from device.assistant.core import Assistant
from device.messages.inbox import Message, read_feed
from device.messages.store import MessageStore
from lab.ask_evaluation import read_questions
from lab.irc import files, read_lines


def filler(folder: Path, n: int, start: datetime) -> list[Message]:
    """n chat messages from IRC logs, 25 per thread, a few minutes apart, ending before `start`."""
    out: list[Message] = []
    for raw in files(folder):
        for line in read_lines(raw).values():
            out.append(Message(f"irc {len(out) // 25}", line.nick, line.text, start))
            if len(out) == n:
                break
        if len(out) == n:
            break
    step = timedelta(minutes=3)
    return [Message(m.thread, m.sender, m.text, start - step * (n - i)) for i, m in enumerate(out)]


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))] if values else 0.0


def run_bench(assistant: Assistant, embedder: Embedder, irc: Path, questions_path: Path, n_messages: int = 10_000,
              progress=None, verifier: Assistant | None = None) -> dict:
    questions = read_questions(questions_path)
    inbox = [m for feed in sorted({q.feed for q in questions}) for m in read_feed(feed)]
    noise = filler(irc, n_messages - len(inbox), min(m.ts for m in inbox))
    with tempfile.TemporaryDirectory(prefix="glassmate-ask-bench-") as tmp, \
            MessageStore(Path(tmp) / "store.db", key=bytes(32)) as store:
        store.add(noise + inbox)
        index = MessageIndex(store, embedder)
        t0 = time.perf_counter()
        report = index.sync()
        index_s = time.perf_counter() - t0
        one = Message("Climbing crew", "Jonas", "Forgot to say: bring the 47 bus pass, the tram is on strike",
                      datetime(2026, 11, 21, 8, 30, tzinfo=UTC))
        store.add([one])
        t1 = time.perf_counter()
        index.sync()
        add_one_s = time.perf_counter() - t1
        (vector_bytes,) = store.db.execute("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM vectors").fetchone()
        retrieval, total, ttft, gain, support, answered, samples = [], [], [], [], [], 0, []
        for i, q in enumerate(questions):
            t2 = time.perf_counter()
            index.search(q.question, 5)
            retrieval.append(time.perf_counter() - t2)
            result = ask(assistant, index, q.question, q.now, AskConfig(), verifier)
            total.append(result.total_s)
            if result.completion_tokens:
                ttft.append(result.ttft_s)
            answered += not result.abstained
            if result.question_gain is not None:
                gain.append(result.question_gain_s)
            if result.support is not None:
                support.append(result.support_s)
            samples.append({"id": q.id, "s": round(result.total_s, 3), "ttft_s": round(result.ttft_s, 3),
                            "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                            "abstained": result.abstained, "question_gain_s": round(result.question_gain_s, 3),
                            "candidate": result.candidate, "support_s": round(result.support_s, 3)})
            if progress:
                progress(i + 1, len(questions))
    per_10k = 10_000 / report["size"]
    return {
        "messages": report["size"], "model": assistant.engine.name, "threads": assistant.engine.n_threads,
        "verifier": verifier.engine.name if verifier else None,
        "index_build_s": round(index_s, 2), "embed_per_s": round(report["embedded"] / index_s, 1),
        "index_one_message_ms": round(1000 * add_one_s, 1),
        "sealed_vectors_mb_per_10k": round(vector_bytes * per_10k / 1e6, 2),
        "faiss_ram_mb_per_10k": round(index.dense.ntotal * 384 * 4 * per_10k / 1e6, 2),
        "questions": len(questions), "answered": answered,
        "retrieval_p50_ms": round(1000 * statistics.median(retrieval), 1),
        "retrieval_p90_ms": round(1000 * percentile(retrieval, 0.9), 1),
        "ask_p50_s": round(statistics.median(total), 3), "ask_p90_s": round(percentile(total, 0.9), 3),
        "ask_max_s": round(max(total), 3), "ttft_p50_s": round(statistics.median(ttft), 3) if ttft else None,
        "ttft_p90_s": round(percentile(ttft, 0.9), 3) if ttft else None,
        # the question-gain and word-gain checks (ask.py), part of ask's time, for the answers that got that far
        "question_gain_p50_s": round(statistics.median(gain), 3) if gain else None,
        "question_gain_p90_s": round(percentile(gain, 0.9), 3) if gain else None,
        # the verifier reading the answer's message (the last answer weighed), for the answers that reached it
        "support_p50_s": round(statistics.median(support), 3) if support else None,
        "support_p90_s": round(percentile(support, 0.9), 3) if support else None,
        "next_answers_weighed": sum(r["candidate"] > 0 for r in samples),
        "samples": samples,  # per question, to see what the slow ones read
    }
