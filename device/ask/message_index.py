"""Search over the wearer's messages: dense vectors (faiss) and BM25 keywords, fused by reciprocal rank.

Each stored message is indexed with its thread, sender, time and the message before it in its thread (a reply
like "the 47, it's faster" means little alone). Vectors are computed once and kept sealed in the message store
(an embedding can be inverted back into text, so it is encrypted at rest like the text); the faiss index and the
BM25 postings live only in memory, rebuilt from the store when the assistant starts. `sync()` is incremental: new
messages are embedded and added, deleted or forgotten ones removed — so `forget` and retention also forget hits.
Keyword search catches what embeddings blur (names, numbers, bus lines, rare words); dense search catches
paraphrases ("when is the plumber coming" ↔ "he'll be there Tuesday morning").
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from device.ask.embedder import DIM, NAME, Embedder, EmbedderError
from device.messages.inbox import Message
from device.messages.store import MessageStore
from device.messages.words import INDEX_STOP_WORDS

RRF_K = 60  # reciprocal-rank fusion constant (Cormack et al. 2009)
DEPTH = 50  # candidates taken from each retriever before fusion
_TOKEN = re.compile(r"[a-z0-9]+(?:[.:'][a-z0-9]+)*")


def tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if t not in INDEX_STOP_WORDS]


def indexed_text(m: Message, before: Message | None) -> str:
    """What gets embedded and keyword-indexed for one message."""
    head = f"{m.thread} | {m.sender} ({m.ts:%a %d %b %H:%M}): {m.text}"
    return head if before is None else f"{head}\n(replying to {before.sender}: {before.text[:200]})"


@dataclass
class BM25:
    """Okapi BM25 with incremental add/remove (k1 = 1.2, b = 0.75)."""

    k1: float = 1.2
    b: float = 0.75
    docs: dict[int, Counter] = field(default_factory=dict)
    lengths: dict[int, int] = field(default_factory=dict)
    postings: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    total_len: int = 0

    def add(self, doc_id: int, text: str) -> None:
        tf = Counter(tokens(text))
        self.docs[doc_id] = tf
        self.lengths[doc_id] = sum(tf.values())
        self.total_len += self.lengths[doc_id]
        for t in tf:
            self.postings[t].add(doc_id)

    def remove(self, doc_id: int) -> None:
        tf = self.docs.pop(doc_id, None)
        if tf is None:
            return
        self.total_len -= self.lengths.pop(doc_id)
        for t in tf:
            self.postings[t].discard(doc_id)
            if not self.postings[t]:
                del self.postings[t]

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        n = len(self.docs)
        if not n:
            return []
        avg = self.total_len / n
        scores: dict[int, float] = defaultdict(float)
        for t in set(tokens(query)):
            ids = self.postings.get(t)
            if not ids:
                continue
            idf = math.log(1 + (n - len(ids) + 0.5) / (len(ids) + 0.5))
            for d in ids:
                tf = self.docs[d][t]
                dl = self.lengths[d]
                scores[d] += idf * tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * dl / avg))
        return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


@dataclass
class Hit:
    id: int
    message: Message
    score: float  # fused reciprocal-rank score
    similarity: float  # cosine similarity of the message to the question
    keyword_rank: int | None
    vector_rank: int | None
    before: Message | None = None  # the message it follows in its thread (what a reply like "the 47" answers)


class MessageIndex:
    def __init__(self, store: MessageStore, embedder: Embedder):
        try:
            import faiss
        except ImportError as exc:
            raise EmbedderError("the search index needs faiss: pip install 'glassmate[ask]'") from exc

        self.store = store
        self.embedder = embedder
        self.messages: dict[int, Message] = {}
        self.vectors: dict[int, np.ndarray] = {}
        self.before: dict[int, Message] = {}
        self.dense = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
        self.keywords = BM25()

    def __len__(self) -> int:
        return len(self.messages)

    def sync(self) -> dict[str, int]:
        """Bring the index up to the store: embed and add new messages, drop deleted ones."""
        # only ids are read for the whole store; only new messages and their vectors are decrypted, so one new
        # message costs one message, not the store
        ids = self.store.message_ids()
        gone = [rid for rid in self.messages if rid not in ids]
        if gone:
            self.dense.remove_ids(np.array(gone, dtype=np.int64))
            for rid in gone:
                self.keywords.remove(rid)
                del self.messages[rid], self.vectors[rid]
                self.before.pop(rid, None)
        fresh_ids = ids - self.messages.keys()
        if not fresh_ids:
            return {"added": 0, "embedded": 0, "removed": len(gone), "size": len(self)}
        stored = dict(self.store.messages_by_id(fresh_ids))
        new = list(stored)
        previous = _previous_in_thread(self.messages | stored, only=stored)
        texts = {rid: indexed_text(stored[rid], previous.get(rid)) for rid in new}
        saved = {rid: np.frombuffer(raw, dtype=np.float32) for rid, raw in self.store.vectors(NAME, ids=new)}
        missing = [rid for rid in new if rid not in saved or saved[rid].shape != (DIM,)]
        if missing:
            fresh = self.embedder.embed([texts[rid] for rid in missing])
            self.store.save_vectors(((rid, v.tobytes()) for rid, v in zip(missing, fresh, strict=True)), NAME)
            saved.update(zip(missing, fresh, strict=True))
        matrix = np.stack([saved[rid] for rid in new]).astype(np.float32)
        self.dense.add_with_ids(matrix, np.array(new, dtype=np.int64))
        for rid in new:
            self.messages[rid] = stored[rid]
            self.vectors[rid] = saved[rid]
            self.keywords.add(rid, texts[rid])
            if rid in previous:
                self.before[rid] = previous[rid]
        return {"added": len(new), "embedded": len(missing), "removed": len(gone), "size": len(self)}

    def search(self, query: str, k: int = 5) -> list[Hit]:
        if not self.messages:
            return []
        q = self.embedder.embed([query])[0]
        sims, ids = self.dense.search(q[None, :], min(DEPTH, len(self.messages)))
        vector_ranked = [int(i) for i in ids[0] if i >= 0]
        keyword_ranked = [d for d, _ in self.keywords.search(query, DEPTH)]
        fused: dict[int, float] = defaultdict(float)
        for rank, rid in enumerate(vector_ranked, 1):
            fused[rid] += 1 / (RRF_K + rank)
        for rank, rid in enumerate(keyword_ranked, 1):
            fused[rid] += 1 / (RRF_K + rank)
        best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        vpos = {rid: i for i, rid in enumerate(vector_ranked, 1)}
        kpos = {rid: i for i, rid in enumerate(keyword_ranked, 1)}
        return [Hit(rid, self.messages[rid], score, float(self.vectors[rid] @ q), kpos.get(rid), vpos.get(rid),
                    self.before.get(rid)) for rid, score in best]


def _previous_in_thread(stored: dict[int, Message], only: dict[int, Message] | None = None) -> dict[int, Message]:
    """The message each one follows in its thread (for the messages `only`, if given)."""
    threads = None if only is None else {m.thread for m in only.values()}
    by_thread: dict[str, list[tuple[int, Message]]] = defaultdict(list)
    for rid, m in stored.items():
        if threads is None or m.thread in threads:
            by_thread[m.thread].append((rid, m))
    out = {}
    for items in by_thread.values():
        items.sort(key=lambda x: (x[1].ts, x[0]))
        for (_, prev), (rid, _) in zip(items, items[1:], strict=False):
            if only is None or rid in only:
                out[rid] = prev
    return out
