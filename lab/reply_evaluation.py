"""Measuring reply drafts on real (message → reply) pairs: ranking of the true reply, and draft diversity.

Ranking: for each pair, the true reply and 9 replies other users wrote elsewhere are scored by the model's mean
log-probability as the wearer's next message (prompts.next_message_messages); MRR and P@1 of the true one.
Diversity: the assistant drafts its three replies for the same threads; distinct-1/2 over the three, mean pairwise
similarity, the share of threads with two identical drafts (as shown, and in the first JSON answer before the
assistant repairs duplicates), and the share of first answers that were valid JSON.
"""

from __future__ import annotations

import difflib
import itertools
import random
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from device.assistant import prompts
from device.assistant.core import Assistant, normalise
from device.messages.inbox import FeedError, group_threads
from device.tasks import Task
from lab.irc import ReplyPair, pair_messages, reply_pairs, strip_address

CANDIDATES = 10


@dataclass
class ReplyEval:
    model: str
    adapter: str | None
    n_ranked: int
    mrr: float
    p_at_1: float
    n_drafted: int
    distinct_1: float
    distinct_2: float
    pairwise_similarity: float
    identical_rate: float  # threads where two shown drafts are the same (after normalising)
    first_answer_identical_rate: float  # ... in the model's first JSON answer, before the repair loop
    json_valid_rate: float
    drafts_p50_s: float


def sample_pairs(folder: Path, n: int, seed: int = 0) -> list[ReplyPair]:
    """n pairs spread over the files (seeded), each with a non-trivial reply."""
    pairs = [p for p in reply_pairs(folder) if len(strip_address(p.reply.text).split()) >= 2]
    rng = random.Random(seed)
    rng.shuffle(pairs)
    return pairs[:n]


def distractors(pair: ReplyPair, pool: list[ReplyPair], rng: random.Random, k: int) -> list[str]:
    """k replies written by other users in other conversations."""
    others = [p for p in pool if p.user != pair.user
              and (p.file != pair.file or abs(p.reply.index - pair.reply.index) > 50)]
    texts: list[str] = []
    seen = {normalise(strip_address(pair.reply.text))}
    for p in rng.sample(others, min(len(others), k * 3)):
        t = strip_address(p.reply.text)
        if normalise(t) not in seen:
            seen.add(normalise(t))
            texts.append(t)
        if len(texts) == k:
            break
    return texts


def pair_prompt(engine, pair: ReplyPair) -> str:
    msgs = pair_messages(pair)
    thread = group_threads(msgs)[msgs[0].thread]
    header = prompts.thread_header(thread.name, thread.participants)
    lines = [prompts.message_line(m) for m in thread.messages]
    return engine.format_chat(prompts.next_message_messages(header, lines))


def rank(assistant: Assistant, pairs: list[ReplyPair], pool: list[ReplyPair], seed: int = 0,
         progress=None) -> list[int]:
    """1-based rank of the true reply among CANDIDATES for each pair."""
    engine = assistant.engine
    assistant._task(Task.DRAFT_REPLIES)  # the replies adapter (if any) is the one that ranks
    rng = random.Random(seed)
    ranks = []
    for i, pair in enumerate(pairs):
        true = strip_address(pair.reply.text)
        cands = [true] + distractors(pair, pool, rng, CANDIDATES - 1)
        ptoks = engine.tokenize_prompt(pair_prompt(engine, pair))
        # the prompt is evaluated once, the ten candidates after it (length-normalised: short and long compete)
        lps = engine.continuation_logprobs(ptoks, [engine.tokenize(c.strip()) for c in cands])
        scores = [sum(x) / max(len(x), 1) for x in lps]
        ranks.append(1 + sum(s > scores[0] for s in scores[1:]))
        if progress:
            progress(i + 1, len(pairs))
    return ranks


def ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def distinct(drafts: list[str], n: int) -> float:
    grams = [g for d in drafts for g in ngrams(normalise(d).split(), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, normalise(a), normalise(b)).ratio()


def draft_stats(assistant: Assistant, pairs: list[ReplyPair], progress=None) -> dict:
    rows = []
    for i, pair in enumerate(pairs):
        msgs = pair_messages(pair)
        thread = group_threads(msgs)[msgs[0].thread]
        result = assistant.draft_replies(thread)
        d = result.replies
        rows.append({"d1": distinct(d, 1), "d2": distinct(d, 2),
                     "sim": statistics.fmean(similarity(a, b) for a, b in itertools.combinations(d, 2)),
                     "identical": len({normalise(x) for x in d}) < 3,
                     "first_identical": result.first_identical, "json_valid": result.json_valid,
                     "s": result.total_s})
        if progress:
            progress(i + 1, len(pairs))
    return rows


def eval_replies(assistant: Assistant, data: Path, n_rank: int = 50, n_drafts: int = 30, seed: int = 0,
                 progress=None, exclude_ids: set[str] | frozenset[str] = frozenset()) -> ReplyEval:
    """`exclude_ids`: the pairs that trained the replies adapter in use; scoring one of them is refused."""
    pool = reply_pairs(data)
    pairs = sample_pairs(data, max(n_rank, n_drafts), seed)
    seen = [p.id for p in pairs if p.id in exclude_ids]
    if seen:
        raise FeedError(f"{len(seen)} of the {len(pairs)} sampled pairs in {data} trained the adapter in use (e.g. "
                        f"{seen[0]}); evaluate on another folder (ubuntu_irc/dev), or pass --no-adapters")
    ranks = rank(assistant, pairs[:n_rank], pool, seed, progress=lambda d, t: progress and progress("rank", d, t))
    rows = draft_stats(assistant, pairs[:n_drafts], progress=lambda d, t: progress and progress("drafts", d, t))

    def mean(key: str) -> float:
        return round(statistics.fmean(float(r[key]) for r in rows), 4) if rows else 0.0
    return ReplyEval(
        model=assistant.engine.name, adapter=assistant.adapters.get(Task.DRAFT_REPLIES), n_ranked=len(ranks),
        mrr=round(statistics.fmean(1 / r for r in ranks), 4) if ranks else 0.0,
        p_at_1=round(statistics.fmean(r == 1 for r in ranks), 4) if ranks else 0.0,
        n_drafted=len(rows), distinct_1=mean("d1"), distinct_2=mean("d2"), pairwise_similarity=mean("sim"),
        identical_rate=mean("identical"), first_answer_identical_rate=mean("first_identical"),
        json_valid_rate=mean("json_valid"),
        drafts_p50_s=round(statistics.median(r["s"] for r in rows), 3) if rows else 0.0)


def to_json(result: ReplyEval) -> dict:
    return asdict(result)
