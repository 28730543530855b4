"""A scripted stand-in for a model: the `Engine` protocol (device/engines/base.py) with no model behind it.

    engine = FakeEngine(["Marco booked Luigi's for Friday at 8pm."], n_ctx=512)
    Assistant(engine).catch_up(thread)

`generate`/`stream` answer with the scripted texts in order; each entry is a string or a function of
(prompt, params) returning one, and a single function instead of a list answers every call. The scores are
scripted the same way (`next_logprobs`, `top_tokens`, `continuations`, `token_scores`), each entry or function
taking the text the model would have read. Every call is recorded in `calls`; a call past the end of its script,
or to a method given no script, raises `ScriptExhausted` naming the method and the end of the prompt.

Like the real engines, it refuses a prompt that does not fit its context with what it is asked to generate (so a
test with a small `n_ctx` fails if the assistant ever sends one), cuts a generation at its stop strings and at
`max_tokens`, and refuses an adapter it has not loaded. It does not enforce `json_schema`: the script writes what
the constrained model would. Tokens are word pieces (letters with their leading space, each digit, each other
character), so `detokenize(tokenize(text)) == text` and token counts grow with the text as a model's do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from device.engines.base import (
    ChatMessage,
    EngineError,
    Generation,
    GenerationParams,
    PrefixState,
    TokenStream,
    common_prefix,
    run_to_end,
)
from device.messages.inbox import Message

_PIECE = re.compile(r"\s*(?:[^\W\d_]+|\d|\S)|\s+")


class ScriptExhausted(AssertionError):
    """The code under test called the fake model more often than the test scripted (or a method it did not)."""


@dataclass(frozen=True)
class Call:
    method: str  # "generate", "next_token_logprobs", "top_next_tokens", "continuation_logprobs", "save_prefix", …
    prompt: str  # the text the model read (for scores: the tokens before the scored ones, as text)
    params: GenerationParams | None = None
    extra: tuple = ()  # scores: the candidate / continuation texts, or n


class Script:
    """Scripted answers of one method, in order, or one function for every call."""

    def __init__(self, method: str, steps: Sequence[Any] | Callable | None):
        self.method = method
        self.fn = steps if callable(steps) else None
        self.steps = None if steps is None or callable(steps) else list(steps)
        self.used = 0

    @property
    def left(self) -> int | None:
        """Entries not used yet (None: a function answers every call)."""
        return None if self.fn is not None else len(self.steps or []) - self.used

    def next(self, prompt: str, *args):
        if self.fn is not None:
            self.used += 1
            return self.fn(prompt, *args)
        if self.steps is None or self.used >= len(self.steps):
            have = "it was given no script" if self.steps is None else \
                f"the script has {len(self.steps)} scripted answers"
            raise ScriptExhausted(f"FakeEngine.{self.method} call #{self.used + 1}, but {have}; "
                                  f"the prompt ends: {prompt[-300:]!r}")
        step = self.steps[self.used]
        self.used += 1
        return step(prompt, *args) if callable(step) else step


class FakeEngine:
    """Implements `device.engines.base.Engine` from scripts; see the module docstring."""

    runtime = "llama"

    def __init__(self, outputs: Sequence[str | Callable] | Callable | None = None, *, n_ctx: int = 2048,
                 name: str = "fake-model", next_logprobs: Sequence | Callable | None = None,
                 top_tokens: Sequence | Callable | None = None, continuations: Sequence | Callable | None = None,
                 token_scores: Sequence | Callable | None = None):
        self.name = name
        self.n_ctx = n_ctx
        self.adapter: str | None = None
        self.adapters: dict[str, Path] = {}
        self.outputs = Script("generate", outputs if outputs is not None else [])
        self.next_logprobs = Script("next_token_logprobs", next_logprobs)
        self.top_tokens = Script("top_next_tokens", top_tokens)
        self.continuations = Script("continuation_logprobs", continuations)
        self.token_scores = Script("token_logprobs", token_scores)
        self.calls: list[Call] = []
        self.context: list[int] = []  # what the KV cache would hold: the prompt reuse a real engine gets
        self._ids: dict[str, int] = {}
        self._pieces: list[str] = []

    # -- what a test reads back -------------------------------------------------------------------------------
    def called(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    @property
    def generations(self) -> list[Call]:
        return self.called("generate")

    def script_left(self) -> dict[str, int | None]:
        """Scripted answers not used yet, per method (a test can assert the code asked for all of them)."""
        return {s.method: s.left for s in (self.outputs, self.next_logprobs, self.top_tokens, self.continuations,
                                           self.token_scores)}

    # -- identity and adapters --------------------------------------------------------------------------------
    @property
    def identity(self) -> str:
        return f"{self.name}+{self.adapter}" if self.adapter else self.name

    @property
    def fingerprint(self) -> str:
        return f"{self.identity}|fake|{self.adapters.get(self.adapter, '') if self.adapter else ''}"

    def load_adapter(self, name: str, path: Path) -> None:
        self.calls.append(Call("load_adapter", "", extra=(name, str(path))))
        self.adapters[name] = Path(path)

    def use_adapter(self, name: str | None) -> None:
        if name is not None and name not in self.adapters:
            raise EngineError(f"adapter {name!r} is not loaded (loaded: {', '.join(self.adapters) or 'none'})")
        if name != self.adapter:
            self.calls.append(Call("use_adapter", "", extra=(name,)))
            self.adapter = name
            self.reset()

    # -- text <-> tokens --------------------------------------------------------------------------------------
    def format_chat(self, messages: list[ChatMessage]) -> str:
        """ChatML, as SmolLM2's and Qwen's templates write it."""
        return "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages) + \
            "<|im_start|>assistant\n"

    def tokenize(self, text: str) -> list[int]:
        out = []
        for piece in _PIECE.findall(text):
            if piece not in self._ids:
                self._ids[piece] = len(self._pieces)
                self._pieces.append(piece)
            out.append(self._ids[piece])
        return out

    def tokenize_prompt(self, prompt: str) -> list[int]:
        return self.tokenize(prompt)

    def detokenize(self, tokens: list[int]) -> str:
        return "".join(self._pieces[t] for t in tokens)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    # -- generation -------------------------------------------------------------------------------------------
    def stream(self, prompt: str, params: GenerationParams) -> TokenStream:
        tokens = self.tokenize_prompt(prompt)
        if len(tokens) + params.max_tokens > self.n_ctx:
            raise EngineError(f"prompt of {len(tokens)} tokens plus {params.max_tokens} to generate exceeds "
                              f"the context of {self.n_ctx}")
        self.calls.append(Call("generate", prompt, params))
        written = self.outputs.next(prompt, params)
        if not isinstance(written, str):
            raise TypeError(f"FakeEngine.generate script gave {written!r}, not a string")
        text, finish = written, "stop"
        hits = [text.find(s) for s in params.stop if s in text]
        if hits:
            text = text[:min(hits)]
        out = self.tokenize(text)
        if len(out) > params.max_tokens:
            out, finish = out[:params.max_tokens], "length"
            text = self.detokenize(out)
        cached = common_prefix(self.context, tokens)
        self.context = tokens + out
        stream = TokenStream(iter(()))
        stream.pieces = self._emit(out, stream, Generation(text, self.name, len(tokens), len(out), 0.001,
                                                           0.001 + 0.001 * len(out), finish, cached))
        return stream

    def _emit(self, out: list[int], stream: TokenStream, result: Generation) -> Iterator[str]:
        for t in out:
            yield self._pieces[t]
        stream.result = result

    def generate(self, prompt: str, params: GenerationParams) -> Generation:
        return run_to_end(self.stream(prompt, params))

    def reset(self) -> None:
        self.context = []

    # -- KV state of a prompt prefix --------------------------------------------------------------------------
    def save_prefix(self, prompt: str) -> PrefixState:
        tokens = self.tokenize_prompt(prompt)
        if len(tokens) >= self.n_ctx:
            raise EngineError(f"prefix of {len(tokens)} tokens does not fit the context of {self.n_ctx}")
        self.calls.append(Call("save_prefix", prompt))
        self.context = list(tokens)
        return PrefixState(self.identity, tuple(tokens), prompt, len(prompt.encode()))

    def restore_prefix(self, state: PrefixState) -> None:
        if state.model != self.identity:
            raise EngineError(f"KV state belongs to {state.model}, not {self.identity}")
        self.calls.append(Call("restore_prefix", state.blob))
        self.context = list(state.tokens)

    # -- scoring ----------------------------------------------------------------------------------------------
    def token_logprobs(self, tokens: list[int]) -> list[float]:
        text = self.detokenize(tokens)
        self.calls.append(Call("token_logprobs", text))
        scores = list(self.token_scores.next(text))
        if len(scores) != len(tokens) - 1:
            raise ValueError(f"token_logprobs script gave {len(scores)} scores for {len(tokens)} tokens")
        return scores

    def next_token_logprobs(self, tokens: list[int], candidates: list[int]) -> list[float]:
        text, names = self.detokenize(tokens), [self._pieces[c] for c in candidates]
        self.calls.append(Call("next_token_logprobs", text, extra=tuple(names)))
        scores = [float(x) for x in self.next_logprobs.next(text, names)]
        if len(scores) != len(candidates):
            raise ValueError(f"next_token_logprobs script gave {len(scores)} scores for candidates {names}")
        self.context = list(tokens)
        return scores

    def top_next_tokens(self, tokens: list[int], n: int) -> list[tuple[int, float]]:
        text = self.detokenize(tokens)
        self.calls.append(Call("top_next_tokens", text, extra=(n,)))
        ranked = [(self.tokenize(piece), float(lp)) for piece, lp in self.top_tokens.next(text, n)]
        if any(len(ids) != 1 for ids, _ in ranked):
            raise ValueError("top_next_tokens script must give single tokens (one word piece each)")
        self.context = list(tokens)
        return [(ids[0], lp) for ids, lp in ranked][:n]

    def continuation_logprobs(self, prefix: list[int], continuations: list[list[int]]) -> list[list[float]]:
        """The script gives, for each continuation, its per-token log-probabilities or one number (its total)."""
        text, conts = self.detokenize(prefix), [self.detokenize(c) for c in continuations]
        self.calls.append(Call("continuation_logprobs", text, extra=tuple(conts)))
        if len(prefix) + max((len(c) for c in continuations), default=0) > self.n_ctx:
            raise EngineError(f"{len(prefix)} tokens and a continuation exceed the context of {self.n_ctx}")
        scored = list(self.continuations.next(text, conts))
        if len(scored) != len(continuations):
            raise ValueError(f"continuation_logprobs script gave {len(scored)} rows for {len(conts)} continuations")
        out = []
        for row, cont in zip(scored, continuations, strict=True):
            if isinstance(row, int | float):
                row = [float(row)] + [0.0] * (len(cont) - 1)
            out.append([float(x) for x in row])
        self.context = list(prefix)
        return out


def chat_parts(prompt: str) -> dict[str, str]:
    """The system and user texts of a prompt the fake formatted (the last of each role)."""
    return {role: body for role, body in re.findall(r"<\|im_start\|>(\w+)\n(.*?)<\|im_end\|>", prompt, re.S)}


@dataclass
class FakeIndex:
    """`MessageIndex.search` over hand-built hits (what ask reads of an index), best first as given."""

    hits: list = field(default_factory=list)
    queries: list[str] = field(default_factory=list)

    @property
    def messages(self) -> dict[int, Message]:
        return {h.id: h.message for h in self.hits}

    def sync(self) -> dict[str, int]:
        return {"added": 0, "embedded": 0, "removed": 0, "size": len(self.hits)}

    def search(self, query: str, k: int = 5) -> list:
        self.queries.append(query)
        return list(self.hits[:k])


def message(text: str, sender: str = "Marco", thread: str = "Dinner Friday",
            ts: datetime | str = "2026-11-20T20:40:00+01:00") -> Message:
    return Message(thread, sender, text, datetime.fromisoformat(ts) if isinstance(ts, str) else ts)
