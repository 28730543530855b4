""""Ask my messages": retrieve, answer with citations, or say honestly that the messages do not say.

The question retrieves the top-k messages (hybrid search); the model answers in JSON `{answer, citations,
confidence}` over those messages only, numbered. The answer is shown only if every check holds, otherwise the
wearer hears "I don't see that in your messages":
- something relevant was retrieved (best cosine similarity ≥ `min_similarity`),
- the model cited at least one of the shown messages and nothing else,
- every name, number, time, date and place in the answer is in the cited messages (the faithfulness check the
  summaries use) — so a cited message really carries the answer,
- the model's own confidence (high / medium / low) is at least medium.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime

from device import prompts
from device.assistant import Assistant
from device.engines.base import GenerationParams
from device.faithfulness import unsupported
from device.message_index import Hit, MessageIndex

ANSWER_TOKENS = 120


@dataclass
class Answer:
    question: str
    answer: str
    abstained: bool
    citations: list[int]  # message ids in the store
    confidence: float
    reason: str  # why it abstained, or "answered"
    retrieved: list[int] = field(default_factory=list)  # message ids shown to the model, best first
    retrieve_s: float = 0.0
    total_s: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class AskConfig:
    k: int = 5
    min_similarity: float = 0.25
    min_confidence: float = 0.5  # "medium" or "high"


def _abstain(question: str, reason: str, hits: list[Hit], t0: float, t_ret: float) -> Answer:
    return Answer(question, prompts.ABSTAIN, True, [], 0.0, reason, [h.id for h in hits], t_ret,
                  time.perf_counter() - t0)


def check_answer(raw: str, shown: list[Hit], config: AskConfig) -> tuple[str, list[Hit], float] | str:
    """The model's JSON answer → (answer, cited hits, confidence) if it may be shown, else why it may not."""
    try:
        obj = json.loads(raw)
        text = str(obj["answer"]).strip()
        cited = [int(c) for c in obj.get("citations", [])]
        confidence = prompts.CONFIDENCE.get(str(obj.get("confidence", "low")), 0.0)
    except (ValueError, KeyError, TypeError, AttributeError):
        return "the model's answer was not valid JSON"
    if not text or text.rstrip(".").lower() == prompts.ABSTAIN.rstrip(".").lower():
        return "the model found no answer in the messages"
    if not cited or any(not 1 <= c <= len(shown) for c in cited):
        return "the answer cited no shown message"
    cited_hits = [shown[c - 1] for c in dict.fromkeys(cited)]
    source = "\n".join(f"{h.message.thread} {h.message.sender} {h.message.ts:%A %d %B %Y %H:%M} {h.message.text}"
                       for h in cited_hits)
    missing = unsupported(text, source)
    if missing:
        return f"the cited messages do not contain {missing[0].text!r}"
    if confidence < config.min_confidence:
        return f"low confidence ({confidence:.2f})"
    return text, cited_hits, confidence


def ask(assistant: Assistant, index: MessageIndex, question: str, now: datetime | None = None,
        config: AskConfig | None = None) -> Answer:
    config = config or AskConfig()
    t0 = time.perf_counter()
    if not question.strip():
        raise ValueError("ask needs a question")
    hits = index.search(question, config.k)
    t_ret = time.perf_counter() - t0
    if not hits or max(h.similarity for h in hits) < config.min_similarity:
        return _abstain(question, "nothing relevant in the messages", hits, t0, t_ret)
    shown = sorted(hits, key=lambda h: (h.message.ts, h.id))  # in time order, as the wearer would read them
    numbered = [prompts.ask_line(i, h.message) for i, h in enumerate(shown, 1)]
    today = (now or datetime.now().astimezone()).strftime("%A %d %B %Y")
    gen = assistant.complete("ask", prompts.ask_messages(question, numbered, today),
                             GenerationParams(max_tokens=ANSWER_TOKENS, temperature=0.0,
                                              json_schema=prompts.ASK_SCHEMA))
    verdict = check_answer(gen.text, shown, config)
    if isinstance(verdict, str):
        return _abstain(question, verdict, hits, t0, t_ret)
    text, cited_hits, confidence = verdict
    return Answer(question, text, False, [h.id for h in cited_hits], confidence, "answered", [h.id for h in hits],
                  t_ret, time.perf_counter() - t0)
