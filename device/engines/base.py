"""The one engine interface every runtime implements; the assistant talks only to this."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]
Runtime = Literal["llama", "onnx"]  # llama.cpp (a GGUF file) or ONNX Runtime (a folder: model.onnx + tokenizer)


class EngineError(Exception):
    """A model that cannot be loaded or run, worded for the person at the terminal."""


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass
class GenerationParams:
    max_tokens: int = 128
    temperature: float = 0.2
    top_p: float = 0.9
    repeat_penalty: float = 1.1
    stop: tuple[str, ...] = ()
    seed: int = 0
    json_schema: dict[str, Any] | None = None  # constrain the output to this JSON schema


@dataclass
class Generation:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float
    total_s: float
    finish_reason: str = "stop"
    cached_prompt_tokens: int = 0  # prompt tokens whose KV state was reused, not recomputed

    def timings(self) -> dict[str, float]:
        return {"ttft_s": round(self.ttft_s, 4), "total_s": round(self.total_s, 4)}


@dataclass
class TokenStream:
    """Iterate to receive text pieces as they are decoded; `result` is filled once the stream ends."""

    pieces: Iterator[str]
    result: Generation | None = None

    def __iter__(self) -> Iterator[str]:
        yield from self.pieces


@dataclass
class PrefixState:
    """The KV state after evaluating a prompt prefix, restorable to skip recomputing it."""

    model: str
    tokens: tuple[int, ...]
    blob: Any
    nbytes: int


@runtime_checkable
class Engine(Protocol):
    name: str  # the catalog model name
    runtime: Runtime
    n_ctx: int
    adapter: str | None  # the LoRA adapter in effect (None: the bare model)

    @property
    def identity(self) -> str: ...  # name, plus the adapter: KV states are only valid under the same one

    @property
    def fingerprint(self) -> str: ...  # identity plus the files (and runtime) behind it: for KV states kept on disk

    def load_adapter(self, name: str, path: Path) -> None: ...

    def use_adapter(self, name: str | None) -> None: ...

    def format_chat(self, messages: list[ChatMessage]) -> str: ...

    def count_tokens(self, text: str) -> int: ...

    def tokenize(self, text: str) -> list[int]: ...

    def tokenize_prompt(self, prompt: str) -> list[int]: ...

    def detokenize(self, tokens: list[int]) -> str: ...

    def stream(self, prompt: str, params: GenerationParams) -> TokenStream: ...

    def generate(self, prompt: str, params: GenerationParams) -> Generation: ...

    def reset(self) -> None: ...

    def save_prefix(self, prompt: str) -> PrefixState: ...

    def restore_prefix(self, state: PrefixState) -> None: ...

    def token_logprobs(self, tokens: list[int]) -> list[float]: ...

    def next_token_logprobs(self, tokens: list[int], candidates: list[int]) -> list[float]:
        """log p(candidate | tokens) for each candidate token. The tokens stay in the context (what is already
        there is reused), so a generation that continues them reads only what it adds."""
        ...

    def top_next_tokens(self, tokens: list[int], n: int) -> list[tuple[int, float]]:
        """The n likeliest next tokens after `tokens`, with their log-probabilities, likeliest first (the tokens
        stay in the context, as for next_token_logprobs)."""
        ...

    def continuation_logprobs(self, prefix: list[int], continuations: list[list[int]]) -> list[list[float]]:
        """For each continuation, log p(its tokens | prefix + its earlier tokens): candidates scored after one
        shared prompt (the prompt is evaluated once where the runtime can keep it)."""
        ...


def top_of(logprobs, n: int) -> list[tuple[int, float]]:
    """The n largest entries of a log-probability vector (numpy), largest first: a partial sort of the
    vocabulary, not a full one."""
    import numpy as np

    n = min(n, len(logprobs))
    best = np.argpartition(-logprobs, n - 1)[:n]
    return [(int(i), float(logprobs[i])) for i in best[np.argsort(-logprobs[best])]]


def continuation_logprobs_by_rescoring(engine, prefix: list[int], continuations: list[list[int]]) \
        -> list[list[float]]:
    """The plain way: score prefix + continuation from scratch for each continuation."""
    return [engine.token_logprobs(prefix + c)[len(prefix) - 1:] for c in continuations]


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None

    def mark_first(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()

    @property
    def ttft(self) -> float:
        return (self.first or time.perf_counter()) - self.start

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def default_threads() -> int:
    """Every core this process may run on."""
    return max(1, len(os.sched_getaffinity(0)))


def run_to_end(stream: TokenStream) -> Generation:
    """Drain a stream; its Generation (what `Engine.generate` returns)."""
    for _ in stream:
        pass
    assert stream.result is not None
    return stream.result


def stop_prefix_len(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest tail of `text` that is a proper prefix of a stop string (held back from streaming)."""
    best = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:n]):
                best = max(best, n)
                break
    return best


def identity(name: str, adapter: str | None) -> str:
    return f"{name}+{adapter}" if adapter else name


def file_fingerprint(path: Path) -> str:
    """A file as it is now: a rebuilt model or adapter under the same name gets another fingerprint."""
    st = Path(path).stat()
    return f"{Path(path).resolve()}:{st.st_size}:{st.st_mtime_ns}"


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
