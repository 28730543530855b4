"""Raw llama.cpp: a minimal loop over llama-cpp-python with no glassmate code, the benchmark's baseline.

Tokenization and sampling are inside the timing, as in glassmate's own end-to-end numbers.
"""

from __future__ import annotations

import time
from pathlib import Path

from llama_cpp import Llama


class RawLlama:
    def __init__(self, path: Path, n_ctx: int, n_threads: int):
        self.llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads,
                         n_batch=512, verbose=False)

    def run(self, prompt: str, max_tokens: int) -> dict:
        """Greedy decoding of up to `max_tokens` from an empty context; times and token ids."""
        self.llm.reset()
        self.llm._ctx.kv_cache_clear()
        start = time.perf_counter()
        tokens = self.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        first = None
        out: list[int] = []
        for tok in self.llm.generate(tokens, temp=0.0, repeat_penalty=1.0, reset=True):
            if first is None:
                first = time.perf_counter()
            if tok == self.llm.token_eos():
                break
            out.append(tok)
            if len(out) >= max_tokens:
                break
        end = time.perf_counter()
        return {"ttft_s": (first or end) - start, "total_s": end - start, "prompt_tokens": len(tokens),
                "completion_tokens": len(out), "tokens": out}
