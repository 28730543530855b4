"""The assistant's tasks: notify, catch_up, draft_replies, polish. Engine-agnostic: it talks to `Engine` only.

Long threads never get truncated silently: when the transcript does not fit the context, it is summarized in
chunks that do fit, and the partial summaries are merged (recursively if they too are too long).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from device.assistant import prompts, reply_bank
from device.assistant.drafts import ThreadFacts, asks_the_wearer, detect_language, judge
from device.assistant.faithfulness import unsupported
from device.assistant.kvcache import ThreadKVCache
from device.assistant.meaning_check import MeaningCheck, SentenceCheck, sentences, to_the_reader
from device.assistant.prefix_store import PrefixStore
from device.assistant.reported import Quoted, quoted_sentences, restore_quotes
from device.assistant.speech_acts import unbacked_acts
from device.engines.base import ChatMessage, Engine, Generation, GenerationParams, PrefixState, Stopwatch
from device.messages.inbox import Message, Thread
from device.privacy import hostile
from device.tasks import Task

# Tokens kept free for the model's answer, per task.
SUMMARY_TOKENS = 128
NOTIFY_TOKENS = 40
REPLIES_TOKENS = 160
POLISH_TOKENS = 80
REPLY_CONTEXT_MESSAGES = 12  # reply drafts look at the latest messages, not the whole history
VERBATIM_WORDS = 20  # a message of at most this many words is shown as written: two lines of the glass
NOTIFY_WORDS = 15  # the notification line the model is asked for
# A chat longer than this is read latest-first even when it fits one prompt: its last RECENT_LINES messages as
# written, after a paragraph summarizing the ones before (a long chat's early plans are what a summary gets stale on)
LONG_CHAT_LINES = 40
RECENT_LINES = 16
ThirdDraft = Literal["ask", "later"]
REPAIR_TRIES = 2  # redrafts of one failing reply before the bank's is shown (each costs a generation)


class AssistantError(Exception):
    pass


@dataclass
class Result:
    kind: Task
    text: str
    model: str
    ttft_s: float
    total_s: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    chunks: int = 1
    replies: list[str] = field(default_factory=list)
    attempts: int = 1
    cached_prompt_tokens: int = 0  # prompt tokens whose KV state was reused
    flags: list[str] = field(default_factory=list)  # hostile-text warnings for the wearer, e.g. "Ann: prompt-injection"
    guard: str = ""  # faithfulness guard: "" (first summary supported), "regenerated" or "extractive"
    unsupported: list[str] = field(default_factory=list)  # what the first summary claimed that the chat lacks
    json_valid: bool = True  # replies: the first answer parsed as the JSON asked for
    first_identical: bool = False  # replies: the first answer held two identical drafts (before repair)
    first_usable: int = 3  # replies: drafts of the first answer that passed the checks
    banked: int = 0  # replies: drafts taken from the bank of human replies after the model's kept failing
    # catch-up: the prompt the summary was written from and the same with no messages, for the meaning check
    check_prompts: tuple[list[ChatMessage], list[ChatMessage]] | None = field(default=None, repr=False)

    def timings(self) -> dict[str, float]:
        return {"ttft_s": round(self.ttft_s, 3), "total_s": round(self.total_s, 3)}

    def to_json(self) -> dict:
        out = {"kind": self.kind, "model": self.model, "timings": self.timings(),
               "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}
        if self.kind is Task.DRAFT_REPLIES:
            out["replies"] = self.replies
        else:
            out["text"] = self.text
        if self.chunks > 1:
            out["chunks"] = self.chunks
        if self.flags:
            out["flags"] = self.flags
        if self.guard:
            out["guard"] = {"action": self.guard, "unsupported": self.unsupported}
        return out


def message_flags(messages: list[Message]) -> list[str]:
    out: list[str] = []
    for m in messages:
        for flag in hostile.flags(m.text):
            item = f"{m.sender}: {flag}"
            if item not in out:
                out.append(item)
    return out


def clean_line(text: str) -> str:
    """The model's answer as one displayable line: first non-empty line, no wrapping quotes or labels."""
    text = text.strip()
    for line in text.splitlines():
        line = line.strip()
        if line:
            text = line
            break
    text = re.sub(r"^(notification( line)?|summary|reply|message)\s*:\s*", "", text, flags=re.IGNORECASE)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def clean_text(text: str) -> str:
    text = text.strip()
    text = re.sub(r"^(summary|message)\s*:\s*", "", text, flags=re.IGNORECASE)
    return re.sub(r"\s*\n\s*", " ", text).strip()


def normalise(reply: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", reply.lower()).strip()


_SPECIFIC = re.compile(r"\d|\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b|\?", re.I)


def extractive_summary(messages: list[Message], most: int = 3, width: int = 120) -> str:
    """The guard's fallback: the messages most likely to matter (times, numbers, days, questions; later ones
    first), quoted in their order. Every word comes from the chat, so nothing in it is unsupported."""
    ranked = sorted(range(len(messages)), key=lambda i: (len(_SPECIFIC.findall(messages[i].text)) > 0, i),
                    reverse=True)[:most]
    parts = []
    for i in sorted(ranked):
        m = messages[i]
        text = " ".join(prompts.neutralise(m.text).split())
        if len(text) > width:
            text = text[:width].rsplit(" ", 1)[0] + " …"
        parts.append(f"{prompts.speaker(m)}: {text}")
    return " · ".join(parts)


class Assistant:
    def __init__(self, engine: Engine, temperature: float = 0.2, reuse_prefixes: bool = True,
                 kv: ThreadKVCache | None = None, guard: bool = True, adapters: dict[Task, str] | None = None,
                 prefix_store: PrefixStore | None = None, reported: bool = True, check_meaning: bool = False,
                 check_acts: bool = True, verbatim_words: int = VERBATIM_WORDS, summary_examples: bool = True,
                 paraphrase: bool = True, reply_examples: bool = False, rank_drafts: bool = False,
                 third: ThirdDraft = "later"):
        self.engine = engine
        self.third = third  # the third draft when something is asked: the model's question back, or "later"
        # each intent's draft competes with the bank's replies for it, scored by the model as my next message
        self.rank_drafts = rank_drafts
        self.reply_examples = reply_examples  # worked examples in the drafting prompt
        # the contrast check (off by default: it costs seconds a summary on 2 cores and caught 72 % of planted
        # errors at 9 % false alarms, docs/assistant.md); the act check below is cheap and always on
        self.meaning = MeaningCheck(engine) if check_meaning else None
        self.paraphrase = paraphrase  # False: catch-ups and notifications show the messages, never the model's words
        self.summary_examples = summary_examples  # worked examples in the reader's summary prompt
        self.check_acts = check_acts  # drops sentences giving a person an act their messages do not back
        self.verbatim_words = verbatim_words  # a message this short is its own notification (0: always the model's)
        self.reported = reported  # summaries and notifications read English messages in reported form
        self.prefix_store = prefix_store  # system prompts' KV states on disk, for the next process
        self.adapters = dict(adapters or {})  # task -> adapter loaded in the engine; other tasks run the bare model
        self.guard = guard  # check every summary against its chat before it is shown
        self.temperature = temperature
        self.reuse_prefixes = reuse_prefixes
        self.kv = kv  # per-thread KV state: a catch-up after one more message costs only that message
        self._prefixes: dict[tuple[str, str], PrefixState] = {}

    def _task(self, task: Task) -> None:
        """Put the task's adapter (or the bare model) in effect before its first token."""
        self.engine.use_adapter(self.adapters.get(task))

    def complete(self, task: Task, messages: list[ChatMessage], params: GenerationParams) -> Generation:
        """One generation for a task defined outside this class (ask), with that task's adapter (or none)."""
        self._task(task)
        return self._run(messages, params)

    def prepare(self, task: Task, messages: list[ChatMessage]) -> str:
        """The prompt of a task defined outside this class, ready for the engine: the task's adapter in effect and
        its system prompt's KV state restored (ask scores and generates on this prompt itself)."""
        self._task(task)
        prompt = self._prompt(messages)
        if self.reuse_prefixes and messages[0].role == "system":
            self._restore_system_prefix(prompt, messages[0].content)
        return prompt

    # -- plumbing -------------------------------------------------------------------------------------
    def _prompt(self, messages: list[ChatMessage]) -> str:
        return self.engine.format_chat(messages)

    def _run(self, messages: list[ChatMessage], params: GenerationParams, thread: str | None = None) -> Generation:
        prompt = self._prompt(messages)
        reused = self.kv.restore(thread, prompt) if self.kv and thread else 0
        if not reused and self.reuse_prefixes and messages[0].role == "system":
            self._restore_system_prefix(prompt, messages[0].content)
        gen = self.engine.generate(prompt, params)
        if self.kv and thread:
            # keep the state up to the last message line: the next message extends exactly this prefix
            self.kv.save(thread, prompt[: prompt.rindex("\n</messages>")])
        return gen

    def _restore_system_prefix(self, prompt: str, system: str) -> None:
        """Each task's system prompt is evaluated once; later calls restore its KV state instead of
        recomputing it, so time to first token pays only for the messages themselves."""
        key = (self.engine.identity, system)
        state = self._prefixes.get(key)
        if state is not None:
            self.engine.restore_prefix(state)
            return
        cut = prompt.find(system)
        if cut < 0:
            return
        prefix = prompt[: cut + len(system)]
        state = self.prefix_store.restore(self.engine, prefix) if self.prefix_store else None
        if state is None:
            state = self.engine.save_prefix(prefix)
            if self.prefix_store:
                self.prefix_store.save(self.engine, prefix, state)
        self._prefixes[key] = state

    def _budget(self, reserve: int, builder=prompts.summary_messages, header: str | None = None) -> int:
        """Tokens available for transcript lines, after the answer and the fixed prompt text of `builder`."""
        header = header if header is not None else prompts.thread_header("x" * 40, ["x" * 20] * 4)
        overhead = self.engine.count_tokens(self._prompt(builder(header, [])))
        budget = self.engine.n_ctx - reserve - overhead - 16
        if budget < 64:
            raise AssistantError(f"context of {self.engine.n_ctx} tokens is too small for this task")
        return budget

    # -- tasks ----------------------------------------------------------------------------------------
    def notify(self, message: Message) -> Result:
        """A one-line notification for a newly arrived message: the message itself when it fits the line (a
        paraphrase of a short message can only add a misreading), else the model's line, checked for meaning."""
        flags = message_flags([message])
        words = " ".join(prompts.neutralise(message.text).split()).split(" ")
        if (self.verbatim_words and len(words) <= self.verbatim_words) or not self.paraphrase:
            limit = max(self.verbatim_words, NOTIFY_WORDS)
            text = " ".join(words) if len(words) <= limit else " ".join(words[:limit]) + " …"
            return Result(Task.NOTIFY, f"{message.sender}: {text}", self.engine.name, 0.0, 0.0,
                          guard="verbatim", flags=flags)
        self._task(Task.NOTIFY)
        params = GenerationParams(max_tokens=NOTIFY_TOKENS, temperature=self.temperature, stop=("\n",))
        to_reader = self._reads_reported([message])
        msgs = prompts.notify_messages(self._fit_message(message, NOTIFY_TOKENS), to_reader)
        gen = self._run(msgs, params)
        quoted = f"{message.sender}: {' '.join(words[:self.verbatim_words or NOTIFY_WORDS])} …"
        line = clean_line(gen.text)
        if to_reader:
            line = restore_quotes(line, self._quoted([message], [message.sender]))
        text = to_the_reader(line, [message.sender]) or quoted
        result = Result(Task.NOTIFY, text, self.engine.name, gen.ttft_s, gen.total_s, gen.prompt_tokens,
                        gen.completion_tokens, flags=flags)
        said = {message.sender: [message.text]}
        if self.check_acts and result.text != quoted and \
                (dropped := [s for s in sentences(result.text) if unbacked_acts(s, said)]):
            result.text, result.guard, result.unsupported = quoted, "meaning", dropped
        if self.meaning is not None and result.text != quoted:
            clock = Stopwatch()
            empty = Message(message.thread, message.sender, "", message.ts)
            verdicts = self._meaning_verdicts(result.text, msgs, prompts.notify_messages(empty, to_reader),
                                              [message.sender, "you"])
            if dropped := [v.sentence for v in verdicts if v.flagged]:
                result.text, result.guard, result.unsupported = quoted, "meaning", dropped
            result.total_s += clock.elapsed
        return result

    def _meaning_verdicts(self, text: str, prompt: list[ChatMessage], prior: list[ChatMessage],
                          people: list[str]) -> list[SentenceCheck]:
        """The meaning check of each sentence of `text`, read after `prompt` and after `prior` (the same prompt
        with nothing to summarize)."""
        assert self.meaning is not None
        tokens = self.engine.tokenize_prompt
        return self.meaning.check(tokens(self._prompt(prompt)), tokens(self._prompt(prior)), sentences(text), people)

    def catch_up(self, thread: Thread, messages: list[Message] | None = None) -> Result:
        """A summary of the thread's unread messages (or of `messages`), chunked when it exceeds the context."""
        todo = messages if messages is not None else thread.unread
        self._task(Task.CATCH_UP)
        if not todo:
            return Result(Task.CATCH_UP, "No unread messages.", self.engine.name, 0.0, 0.0)
        if not self.paraphrase:
            return Result(Task.CATCH_UP, extractive_summary(todo), self.engine.name, 0.0, 0.0, guard="quotes",
                          flags=message_flags(todo))
        header = prompts.thread_header(thread.name, thread.participants)
        to_reader = self._reads_reported(todo)
        lines = self._summary_lines(todo, thread.participants) if to_reader else [prompts.message_line(m) for m in todo]
        result = self.summarize_lines(header, lines, cache_key=thread.name, to_reader=to_reader)
        if to_reader:
            result.text = restore_quotes(result.text, self._quoted(todo, thread.participants))
        result.text = to_the_reader(result.text, thread.participants)
        if (self.meaning is not None or self.check_acts) and result.check_prompts is not None:
            result = self._check_meaning(result, *result.check_prompts,
                                         thread.participants + (["you"] if to_reader else []), todo)
        if self.guard:
            result = self._guard(result, header, lines, todo)
        result.flags = message_flags(todo)
        return result

    def _check_meaning(self, result: Result, prompt: list[ChatMessage], prior: list[ChatMessage], people: list[str],
                       messages: list[Message]) -> Result:
        """Drop each sentence that gives a person an act none of their messages backs (`speech_acts`: "X asks you
        to …" with no request from X), then each the model, reading the chat, would rather write with its negation
        flipped or its people swapped (`meaning_check`); a summary left with nothing quotes the key messages."""
        clock = Stopwatch()
        said: dict[str, list[str]] = {}
        for m in messages:
            if not m.from_wearer:
                said.setdefault(m.sender, []).append(m.text)
        kept, dropped = [], []
        for sentence in sentences(result.text):
            (dropped if self.check_acts and unbacked_acts(sentence, said) else kept).append(sentence)
        if self.meaning is not None and kept:
            verdicts = self._meaning_verdicts(" ".join(kept), prompt, prior, people)
            kept = [v.sentence for v in verdicts if not v.flagged]
            dropped += [v.sentence for v in verdicts if v.flagged]
        if dropped:
            result.unsupported += dropped
            result.text = " ".join(kept) if kept else extractive_summary(messages)
            result.guard = "meaning" if kept else "extractive"
        result.total_s += clock.elapsed
        return result

    def _guard(self, result: Result, header: str, lines: list[str], messages: list[Message]) -> Result:
        """Never show a summary naming a person, number, time or date the chat does not contain: try once more
        with a stricter prompt (greedy), then fall back to quoting the key messages."""
        source = header + "\n" + "\n".join(lines)
        bad = unsupported(result.text, source)
        if result.text.strip() and not bad:
            return result
        result.unsupported = [s.text for s in bad]  # empty for an empty summary: nothing to show is not a summary
        clock = Stopwatch()
        if result.chunks == 1:
            gen = self._run(prompts.strict_summary_messages(header, lines),
                            GenerationParams(max_tokens=SUMMARY_TOKENS, temperature=0.0))
            text = clean_text(gen.text)
            result.prompt_tokens += gen.prompt_tokens
            result.completion_tokens += gen.completion_tokens
            if text and not unsupported(text, source):
                result.text, result.guard = text, "regenerated"
                result.total_s += clock.elapsed
                return result
        result.text, result.guard = extractive_summary(messages), "extractive"
        result.total_s += clock.elapsed
        return result

    def _reads_reported(self, messages: list[Message]) -> bool:
        return self.reported and detect_language(" ".join(m.text for m in messages)) == "en"

    @staticmethod
    def _other(participants: list[str]) -> str | None:
        """Whom the wearer's "you" means: the other person of a one-to-one chat."""
        others = [p for p in participants if p.lower() not in ("me", "you")]
        return others[0] if len(others) == 1 else None

    @staticmethod
    def _summary_lines(messages: list[Message], participants: list[str]) -> list[str]:
        return [prompts.reported_line(m, Assistant._other(participants)) for m in messages]

    @staticmethod
    def _quoted(messages: list[Message], participants: list[str]) -> list[Quoted]:
        """The sentences the reported form rewrote, with their labels and what was written."""
        other, pairs = Assistant._other(participants), []
        for m in messages:
            label, written, read = prompts.reported_text(m, other)
            pairs += quoted_sentences(label, written, read)
        return pairs

    def _summary_prompt(self, to_reader: bool) -> Callable[[str, list[str]], list[ChatMessage]]:
        """The summary prompt's builder; its worked examples only where they take at most a quarter of the context
        (a small context is left for the chat)."""
        examples = self.summary_examples and \
            self.engine.count_tokens(prompts.SUMMARY_EXAMPLES) <= self.engine.n_ctx // 4
        return lambda header, lines: prompts.summary_messages(header, lines, to_reader, examples)

    def summarize_lines(self, header: str, lines: list[str], cache_key: str | None = None,
                        to_reader: bool = False) -> Result:
        """A summary of `lines`. A long chat (too long for one prompt, or over LONG_CHAT_LINES messages) is read in
        two parts: its latest messages as they are, in the final prompt, and the messages before them through
        partial summaries merged into one paragraph that the final prompt gets as context — so what was decided or
        asked last is read from the messages themselves and said first, and no chunking can squeeze it out."""
        clock = Stopwatch()
        prompt = self._summary_prompt(to_reader)
        budget = self._budget(SUMMARY_TOKENS, prompt, header)
        chunks = self._pack(lines, budget)
        params = GenerationParams(max_tokens=SUMMARY_TOKENS, temperature=self.temperature)
        if len(chunks) == 1 and len(lines) <= LONG_CHAT_LINES:
            gen = self._run(prompt(header, chunks[0]), params, thread=cache_key)
            return Result(Task.CATCH_UP, clean_text(gen.text), self.engine.name, gen.ttft_s, gen.total_s,
                          gen.prompt_tokens, gen.completion_tokens, cached_prompt_tokens=gen.cached_prompt_tokens,
                          check_prompts=(prompt(header, chunks[0]), prompt(header, [])))

        # the earlier messages' summary gets at most a tenth of the context (all of SUMMARY_TOKENS in a big one)
        room = min(SUMMARY_TOKENS, self.engine.n_ctx // 10)

        def latest(h: str, ls: list[str], earlier: str = "x " * room) -> list[ChatMessage]:
            return prompts.latest_messages(h, earlier, ls, to_reader)

        recent_budget = self._budget(SUMMARY_TOKENS, latest, header)
        recent, before = self._split_recent(lines, recent_budget, most=RECENT_LINES)
        earlier, prompt_tokens, completion_tokens, passes = self._summarize_earlier(header, before, prompt, budget,
                                                                                    room)
        gen = self._run(latest(header, recent, earlier), params)
        total = clock.elapsed
        # time to first token of the summary the wearer sees: all earlier passes, then the final pass's TTFT
        ttft = total - gen.total_s + gen.ttft_s
        return Result(Task.CATCH_UP, clean_text(gen.text), self.engine.name, ttft, total,
                      prompt_tokens + gen.prompt_tokens, completion_tokens + gen.completion_tokens,
                      chunks=passes + 1, check_prompts=(latest(header, recent, earlier), prompt(header, [])))

    def _split_recent(self, lines: list[str], budget: int, most: int) -> tuple[list[str], list[str]]:
        """The latest lines (at most `most`) that fit `budget` (at least the end of the last one), and the lines
        before them."""
        pieces = [piece for line in lines for piece in self._split_line(line, budget)]
        used, cut = 0, len(pieces)
        while cut > 0:
            n = self.engine.count_tokens(pieces[cut - 1]) + 1
            if (used + n > budget or len(pieces) - cut >= most) and cut < len(pieces):
                break
            used += n
            cut -= 1
        return pieces[cut:], pieces[:cut]

    def _summarize_earlier(self, header: str, lines: list[str], prompt, budget: int,
                           room: int) -> tuple[str, int, int, int]:
        """The messages before the latest ones as one paragraph of at most `room` tokens: partial summaries of the
        chunks that fit, merged. Returns the paragraph, the prompt and completion tokens spent and the number of
        passes."""
        if not lines:
            return "", 0, 0, 0
        chunks = self._pack(lines, budget)
        # Partial summaries are capped at a third of the merge budget, so every merge pass combines at
        # least two of them and the recursion always converges.
        merge_budget = self._budget(SUMMARY_TOKENS, prompts.combine_messages, header)
        partial_params = GenerationParams(max_tokens=max(16, min(room, merge_budget // 3 - 8)),
                                          temperature=self.temperature)
        partials: list[str] = []
        prompt_tokens = completion_tokens = 0
        for chunk in chunks:
            gen = self._run(prompt(header, chunk), partial_params)
            partials.append(clean_text(gen.text))
            prompt_tokens += gen.prompt_tokens
            completion_tokens += gen.completion_tokens
        if len(partials) == 1:
            return partials[0], prompt_tokens, completion_tokens, 1
        final = GenerationParams(max_tokens=room, temperature=self.temperature)
        merged, p, c, rounds = self._merge(header, partials, final, partial_params, merge_budget)
        return merged, prompt_tokens + p, completion_tokens + c, len(chunks) + rounds

    def _merge(self, header: str, partials: list[str], final: GenerationParams, partial: GenerationParams,
               budget: int) -> tuple[str, int, int, int]:
        """The partial summaries merged into one (in rounds, when they do not fit one prompt): the text, the prompt
        and completion tokens spent and the number of merge passes."""
        rounds = prompt_tokens = completion_tokens = 0
        while True:
            groups = self._pack([f"Part {i}: {p}" for i, p in enumerate(partials, 1)], budget)
            rounds += len(groups)
            outs = []
            for group in groups:
                texts = [g.split(": ", 1)[1] for g in group]
                params = final if len(groups) == 1 else partial
                gen = self._run(prompts.combine_messages(header, texts), params)
                outs.append(clean_text(gen.text))
                prompt_tokens += gen.prompt_tokens
                completion_tokens += gen.completion_tokens
            if len(outs) == 1:
                return outs[0], prompt_tokens, completion_tokens, rounds
            if len(outs) >= len(partials):
                raise AssistantError("partial summaries do not shrink; cannot merge them into one")
            partials = outs

    def _pack(self, lines: list[str], budget: int) -> list[list[str]]:
        """Greedy packing of lines into chunks of at most `budget` tokens; over-long lines are split."""
        chunks: list[list[str]] = [[]]
        used = 0
        for line in lines:
            pieces = self._split_line(line, budget)
            for piece in pieces:
                n = self.engine.count_tokens(piece) + 1
                if chunks[-1] and used + n > budget:
                    chunks.append([])
                    used = 0
                chunks[-1].append(piece)
                used += n
        return chunks

    def _split_line(self, line: str, budget: int) -> list[str]:
        tokens = self.engine.tokenize(line)
        if len(tokens) + 1 <= budget:
            return [line]
        prefix, _, _ = line.partition(": ")
        step = max(budget - self.engine.count_tokens(f"{prefix}: (continued) ") - 8, 16)
        pieces = []
        for i in range(0, len(tokens), step):
            text = self.engine.detokenize(tokens[i:i + step])
            pieces.append(text if i == 0 else f"{prefix}: (continued) {text}")
        return pieces

    def _fit_message(self, message: Message, reserve: int) -> Message:
        """A single message too long for the context is shortened for the one-line notification only."""
        budget = self._budget(reserve)
        tokens = self.engine.tokenize(message.text)
        if len(tokens) <= budget:
            return message
        text = self.engine.detokenize(tokens[:budget]) + " …"
        return Message(message.thread, message.sender, text, message.ts)

    def _recent_lines(self, thread: Thread, reserve: int, builder, header: str) -> list[str]:
        """The latest messages that fit the context of `builder`'s prompt, newest last."""
        budget = self._budget(reserve, builder, header)
        lines: list[str] = []
        used = 0
        for m in reversed(thread.messages[-REPLY_CONTEXT_MESSAGES:]):
            line = prompts.message_line(m)
            n = self.engine.count_tokens(line) + 1
            if used + n > budget:
                if not lines:  # the newest message alone is too long: keep its tail
                    lines.append(self._split_line(line, budget)[-1])
                break
            lines.append(line)
            used += n
        return list(reversed(lines))

    def draft_replies(self, thread: Thread, n: int = 3) -> Result:
        """Three short, distinct replies in the wearer's voice and the thread's language: agree / decline / ask when
        the others ask something, thanks / react / ask when they only tell something (news, an update).

        The model drafts all three as JSON; a draft that fails the checks a person would apply (`drafts.judge`:
        assistant-speak, asking them for what they asked of the wearer, a detail the chat lacks, another language,
        too long) is drafted again on its own, and after `REPAIR_TRIES` the intent's reply from the bank of short
        human replies is shown instead. On a message that looks like a scam the model is not asked at all."""
        if n != 3:
            raise AssistantError("draft_replies produces exactly three drafts, one per intent")
        clock = Stopwatch()
        facts = ThreadFacts.from_messages(thread.messages[-REPLY_CONTEXT_MESSAGES:])
        if facts.scam:
            safe = list(reply_bank.SCAM_SAFE[facts.language])
            return Result(Task.DRAFT_REPLIES, " | ".join(safe), self.engine.name, 0.0, clock.elapsed,
                          replies=safe, attempts=0, flags=["scam: drafts are safe replies, not the model's"])
        self._task(Task.DRAFT_REPLIES)
        header = prompts.thread_header(thread.name, thread.participants)
        news = not asks_the_wearer(thread.messages[-REPLY_CONTEXT_MESSAGES:])
        later = not news and self.third == "later"
        keys = ("agree", "decline", "later") if later else prompts.reply_keys(news)
        examples = self.reply_examples and not later and \
            self.engine.count_tokens(prompts.NEWS_EXAMPLES if news else prompts.REPLY_EXAMPLES) <= \
            self.engine.n_ctx // 4

        def build(h: str, ls: list[str]) -> list[ChatMessage]:
            if later:
                return prompts.agree_decline_messages(h, ls, facts.language)
            return prompts.replies_messages(h, ls, facts.language, examples, news)

        lines = self._recent_lines(thread, REPLIES_TOKENS, build, header)
        schema = prompts.AGREE_DECLINE_SCHEMA if later else prompts.NEWS_SCHEMA if news else prompts.REPLIES_SCHEMA
        params = GenerationParams(max_tokens=REPLIES_TOKENS, temperature=self.temperature, json_schema=schema)
        gen = self._run(build(header, lines), params)
        first = gen
        prompt_tokens, completion_tokens = gen.prompt_tokens, gen.completion_tokens
        replies = self._parse_replies(gen.text, keys)
        if later:  # the model wrote yes and no; the third chip puts it off, in the wearer's words from the bank
            replies[2] = reply_bank.fallback(facts.language, "later", replies[:2])
        json_valid = all(replies)  # parsed, with all drafts present
        filled = [normalise(r) for r in replies if normalise(r)]
        first_identical = len(set(filled)) < len(filled)
        first_usable = sum(self._slot_ok(replies, i, facts) for i in range(3))
        attempts, banked = 1, 0
        # Redraft a failing slot on its own, hotter each time; then the bank's reply for that intent.
        for key_index, key in enumerate(keys):
            tries = REPAIR_TRIES if key == "later" else 0  # the bank's own reply: never redrafted
            while not self._slot_ok(replies, key_index, facts) and tries < REPAIR_TRIES:
                tries += 1
                attempts += 1
                others = [r for i, r in enumerate(replies) if i != key_index and r]
                single = GenerationParams(max_tokens=60, temperature=min(0.5 + 0.3 * tries, 1.4),
                                          seed=1000 * tries + key_index, stop=("\n",))
                g = self._run(prompts.single_reply_messages(header, lines, key, others, facts.language, news),
                              single)
                prompt_tokens += g.prompt_tokens
                completion_tokens += g.completion_tokens
                replies[key_index] = clean_line(g.text)
            if not self._slot_ok(replies, key_index, facts):
                replies[key_index] = reply_bank.fallback(facts.language, key, replies[:key_index])
                banked += 1
        if not all(self._slot_ok(replies, i, facts) for i in range(3)):
            raise AssistantError(f"could not draft three distinct replies after {attempts} attempts: {replies}")
        if self.rank_drafts:
            replies, from_bank = self._rank_against_bank(thread, header, keys, replies, facts)
            banked += from_bank
        return Result(Task.DRAFT_REPLIES, " | ".join(replies), self.engine.name, first.ttft_s, clock.elapsed,
                      prompt_tokens, completion_tokens, replies=replies, attempts=attempts, json_valid=json_valid,
                      first_identical=first_identical, first_usable=first_usable, banked=banked)

    def _rank_against_bank(self, thread: Thread, header: str, keys: tuple[str, ...], replies: list[str],
                           facts: ThreadFacts) -> tuple[list[str], int]:
        """Smart Reply's move: per intent, the model's draft and the bank's short human replies are scored by the
        model's mean log-probability as my next message in this chat, and the likeliest is shown."""
        lines = self._recent_lines(thread, 32, prompts.next_message_messages, header)
        prompt = self._prompt(prompts.next_message_messages(header, lines))
        if self.reuse_prefixes:
            self._restore_system_prefix(prompt, prompts.NEXT_SYSTEM)
        prefix = self.engine.tokenize_prompt(prompt)
        options: list[list[str]] = []
        for i, key in enumerate(keys):
            bank = [b for b in reply_bank.BANK[facts.language][key] if judge(b, facts).usable]
            options.append(list(dict.fromkeys([replies[i], *bank])))
        flat = [c for cands in options for c in cands]
        scored = self.engine.continuation_logprobs(prefix, [self.engine.tokenize(c) for c in flat])
        score = {c: sum(lp) / max(len(lp), 1) for c, lp in zip(flat, scored, strict=True)}
        chosen: list[str] = []
        for cands in options:
            free = [c for c in cands if normalise(c) not in {normalise(x) for x in chosen}]
            chosen.append(max(free, key=score.__getitem__))
        return chosen, sum(c != r for c, r in zip(chosen, replies, strict=True))

    @staticmethod
    def _parse_replies(text: str, keys: tuple[str, ...] = prompts.REPLY_KEYS) -> list[str]:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            return ["", "", ""]
        if not isinstance(obj, dict):
            return ["", "", ""]
        return [str(obj.get(k, "")).strip() for k in keys]

    @staticmethod
    def _slot_ok(replies: list[str], i: int, facts: ThreadFacts | None = None) -> bool:
        """Draft `i` is there, differs from the ones before it, and (given the thread's facts) passes the checks."""
        mine = normalise(replies[i])
        if not mine or any(normalise(r) == mine for j, r in enumerate(replies) if j < i):
            return False
        return facts is None or judge(replies[i], facts).usable

    def polish(self, dictation: str, thread: Thread) -> Result:
        """Dictated words → a sendable reply for this thread."""
        if not dictation.strip():
            raise AssistantError("nothing was dictated")
        self._task(Task.POLISH)
        header = prompts.thread_header(thread.name, thread.participants)
        lines = self._recent_lines(thread, POLISH_TOKENS, lambda h, ls: prompts.polish_messages(h, ls, dictation),
                                   header)
        params = GenerationParams(max_tokens=POLISH_TOKENS, temperature=self.temperature, stop=("\n",))
        gen = self._run(prompts.polish_messages(header, lines, dictation), params)
        text = clean_line(gen.text) or dictation.strip()
        return Result(Task.POLISH, text, self.engine.name, gen.ttft_s, gen.total_s, gen.prompt_tokens,
                      gen.completion_tokens)

