"""The llama.cpp engine, over llama-cpp-python. The only module in glassmate that imports llama_cpp."""

from __future__ import annotations

import codecs
import ctypes
import json
from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import numpy as np
from llama_cpp import Llama, LlamaGrammar
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from device.engines.base import (
    ChatMessage,
    EngineError,
    Generation,
    GenerationParams,
    PrefixState,
    Stopwatch,
    TokenStream,
    common_prefix,
    continuation_logprobs_by_rescoring,
    default_threads,
    file_fingerprint,
    identity,
    run_to_end,
    stop_prefix_len,
    top_of,
)

RUNTIME = f"llama.cpp (llama-cpp-python {llama_cpp.__version__})"


class LlamaEngine:
    runtime = "llama"

    def __init__(self, name: str, path: Path, n_ctx: int = 4096, n_threads: int | None = None,
                 n_batch: int = 512, seed: int = 0):
        self.name = name
        self.path = Path(path)
        threads = n_threads or default_threads()
        if not self.path.is_file():
            raise EngineError(f"model file {self.path} does not exist (run: glassmate models fetch {name})")
        try:
            self.llm = Llama(model_path=str(self.path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                             n_batch=min(n_batch, n_ctx), seed=seed, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise EngineError(f"llama.cpp could not load {self.path}: {exc}. The file may be corrupt or "
                              f"truncated: run `glassmate models verify`, and `glassmate models fetch {name} "
                              f"--force` to rebuild it") from exc
        self.n_ctx = self.llm.n_ctx()
        self.n_threads = threads
        self._formatter = self._chat_formatter()
        self._grammars: dict[str, LlamaGrammar] = {}
        self._adapters: dict[str, object] = {}  # name -> llama_adapter_lora_p (freed with the model)
        self._adapter_files: dict[str, Path] = {}
        self.adapter: str | None = None

    @property
    def identity(self) -> str:
        return identity(self.name, self.adapter)

    @property
    def build(self) -> str:
        """The CPU features this llama.cpp build uses ("AVX2 = 1 | AVX512 = 0 | …"): a speed depends on them as
        much as on the CPU."""
        return llama_cpp.llama_print_system_info().decode(errors="replace").strip()

    @property
    def fingerprint(self) -> str:
        files = [self.path] + ([self._adapter_files[self.adapter]] if self.adapter else [])
        return "|".join([self.identity, RUNTIME, *(file_fingerprint(f) for f in files)])

    # -- LoRA adapters ------------------------------------------------------------------------------------
    def load_adapter(self, name: str, path: Path) -> None:
        """Load a GGUF LoRA adapter made for this model; `use_adapter(name)` switches it on."""
        if name in self._adapters:
            return
        path = Path(path)
        if not path.is_file():
            raise EngineError(f"adapter file {path} does not exist")
        ptr = llama_cpp.llama_adapter_lora_init(self.llm._model.model, str(path).encode("utf-8"))
        if not ptr:
            raise EngineError(f"llama.cpp could not load the LoRA adapter {path}: not a GGUF LoRA adapter for "
                              f"{self.name} (other architecture or sizes), or the file is corrupt")
        self._adapters[name] = ptr
        self._adapter_files[name] = path

    def use_adapter(self, name: str | None) -> None:
        """Switch the adapter in effect (None: the bare model). The KV cache is cleared on a switch: states
        computed under another adapter are not valid under this one."""
        if name == self.adapter:
            return
        ctx = self.llm._ctx.ctx
        if name is None:
            rc = llama_cpp.llama_set_adapters_lora(ctx, None, 0, None)
        else:
            if name not in self._adapters:
                raise EngineError(f"adapter {name!r} is not loaded (loaded: {', '.join(self._adapters) or 'none'})")
            arr = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self._adapters[name])
            rc = llama_cpp.llama_set_adapters_lora(ctx, arr, 1, (ctypes.c_float * 1)(1.0))
        if rc:
            raise EngineError(f"llama.cpp refused to switch to adapter {name!r} (code {rc})")
        self.adapter = name
        self.reset()

    def _chat_formatter(self) -> Jinja2ChatFormatter:
        meta = self.llm.metadata
        template = meta.get("tokenizer.chat_template")
        if not template:
            raise EngineError(f"{self.path} carries no chat template; glassmate needs an instruction-tuned GGUF")
        vocab = self.llm._model  # token texts for the template's bos/eos variables
        eos = vocab.token_get_text(self.llm.token_eos())
        bos = vocab.token_get_text(self.llm.token_bos()) if self.llm.token_bos() >= 0 else ""
        return Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)

    # -- text <-> tokens ------------------------------------------------------------------------------
    def format_chat(self, messages: list[ChatMessage]) -> str:
        out = self._formatter(messages=[{"role": m.role, "content": m.content} for m in messages])
        return out.prompt

    def tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def tokenize_prompt(self, prompt: str) -> list[int]:
        # The prompt is our own template output: its control tokens are real (message text was neutralised).
        return self.llm.tokenize(prompt.encode("utf-8"), add_bos=self._adds_bos(), special=True)

    def _adds_bos(self) -> bool:
        return bool(self.llm.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true")

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def detokenize(self, tokens: list[int]) -> str:
        return self.llm.detokenize(tokens).decode("utf-8", errors="ignore")

    # -- generation -----------------------------------------------------------------------------------
    def _grammar(self, schema: dict) -> LlamaGrammar:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = LlamaGrammar.from_string(json_grammar(key), verbose=False)
        return self._grammars[key]

    def stream(self, prompt: str, params: GenerationParams) -> TokenStream:
        tokens = self.tokenize_prompt(prompt)
        if len(tokens) + params.max_tokens > self.n_ctx:
            raise EngineError(f"prompt of {len(tokens)} tokens plus {params.max_tokens} to generate exceeds "
                              f"the context of {self.n_ctx}")
        cached = common_prefix(self.llm.input_ids[: self.llm.n_tokens].tolist(), tokens)
        stream = TokenStream(iter(()))
        stream.pieces = self._pieces(tokens, params, stream, cached)
        return stream

    def _pieces(self, tokens: list[int], params: GenerationParams, stream: TokenStream,
                cached: int) -> Iterator[str]:
        """Our own loop over llama.cpp's sampler: create_completion re-detokenizes the whole completion at every
        token and builds a response dict per chunk; this decodes each token once, incrementally."""
        clock = Stopwatch()
        grammar = self._grammar(params.json_schema) if params.json_schema else None
        self.llm.set_seed(params.seed)
        vocab = self.llm._model.vocab
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        out: list[int] = []
        text = ""
        emitted = 0
        finish = "length"
        for tok in self.llm.generate(tokens, top_k=40, top_p=params.top_p, min_p=0.05, temp=params.temperature,
                                     repeat_penalty=params.repeat_penalty, grammar=grammar, reset=True):
            clock.mark_first()
            if llama_cpp.llama_vocab_is_eog(vocab, tok):
                finish = "stop"
                break
            out.append(tok)
            text += decoder.decode(self.llm.detokenize([tok]))
            hits = [text.find(s) for s in params.stop if s in text]
            if hits:
                text = text[:min(hits)]
                finish = "stop"
                break
            safe = len(text) - stop_prefix_len(text, params.stop)  # never stream the start of a stop string
            if safe > emitted:
                yield text[emitted:safe]
                emitted = safe
            if len(out) >= params.max_tokens:
                break
        text += decoder.decode(b"", final=True) if finish == "length" else ""
        if len(text) > emitted:
            yield text[emitted:]
        stream.result = Generation(text, self.name, len(tokens), len(out), clock.ttft, clock.elapsed, finish,
                                   cached)

    def generate(self, prompt: str, params: GenerationParams) -> Generation:
        return run_to_end(self.stream(prompt, params))

    def reset(self) -> None:
        """Forget everything in the context (benchmarks measure cold prompts with it)."""
        self.llm.reset()
        self.llm._ctx.kv_cache_clear()

    # -- KV state of a prompt prefix --------------------------------------------------------------------
    def save_prefix(self, prompt: str) -> PrefixState:
        """Evaluate `prompt` (reusing whatever prefix is already in the context) and snapshot the KV state."""
        tokens = self.tokenize_prompt(prompt)
        if len(tokens) >= self.n_ctx:
            raise EngineError(f"prefix of {len(tokens)} tokens does not fit the context of {self.n_ctx}")
        have = self.llm.input_ids[: self.llm.n_tokens].tolist()
        keep = common_prefix(have, tokens)
        if keep < self.llm.n_tokens:
            self.llm.n_tokens = keep
            self.llm._ctx.kv_cache_seq_rm(-1, keep, -1)
        if keep < len(tokens):
            self.llm.eval(tokens[keep:])
        # Only the KV cells in use (llama_state_get_data writes those); llama-cpp-python's own save_state would
        # also copy its n_batch x n_vocab logits buffer (100 MB for SmolLM2), which a restore never needs: the
        # next generate always decodes at least one token and so refreshes the logits.
        ctx = self.llm._ctx.ctx
        size = llama_cpp.llama_state_get_size(ctx)
        buf = (ctypes.c_uint8 * size)()
        n = llama_cpp.llama_state_get_data(ctx, buf, size)
        blob = ctypes.string_at(buf, n)
        return PrefixState(self.identity, tuple(tokens), blob, len(blob))

    def restore_prefix(self, state: PrefixState) -> None:
        if state.model != self.identity:
            raise EngineError(f"KV state belongs to {state.model}, not {self.identity}")
        have = self.llm.input_ids[: self.llm.n_tokens].tolist()
        if common_prefix(have, list(state.tokens)) == len(state.tokens):
            return  # the context already starts with this prefix
        data = (ctypes.c_uint8 * state.nbytes).from_buffer_copy(state.blob)
        if llama_cpp.llama_state_set_data(self.llm._ctx.ctx, data, state.nbytes) != state.nbytes:
            raise EngineError("llama.cpp refused a saved KV state (another model or build?)")
        n = len(state.tokens)
        self.llm.input_ids[:n] = state.tokens
        self.llm.n_tokens = n
        self.llm._requires_eval = True  # logits are not part of the snapshot

    # -- scoring ------------------------------------------------------------------------------------------
    def _next_logprobs(self, tokens: list[int]) -> np.ndarray:
        if not tokens or len(tokens) >= self.n_ctx:
            raise EngineError(f"{len(tokens)} tokens: nothing to score, or more than the context of {self.n_ctx}")
        have = self.llm.input_ids[: self.llm.n_tokens].tolist()
        keep = min(common_prefix(have, tokens), len(tokens) - 1)  # the last token is run: its logits are wanted
        self.llm.n_tokens = keep  # eval() drops the KV cells past n_tokens
        self.llm.eval(tokens[keep:])
        logits = np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.llm.n_vocab(),)).astype(np.float64)
        top = logits.max()
        return logits - (top + np.log(np.exp(logits - top).sum()))

    def next_token_logprobs(self, tokens: list[int], candidates: list[int]) -> list[float]:
        lp = self._next_logprobs(tokens)
        return [float(lp[c]) for c in candidates]

    def top_next_tokens(self, tokens: list[int], n: int) -> list[tuple[int, float]]:
        return top_of(self._next_logprobs(tokens), n)

    def continuation_logprobs(self, prefix: list[int], continuations: list[list[int]]) -> list[list[float]]:
        """The prefix is decoded once — only what the context does not already hold of it — and each
        continuation after it, then removed from the KV cache; the prefix stays, so scoring an answer right
        after generating it, or under a prompt that differs only at its end, reads a few tokens. A single
        continuation is read in the same decode call as the prefix's unread end."""
        if not prefix or not continuations:
            return continuation_logprobs_by_rescoring(self, prefix, continuations)
        longest = max(len(c) for c in continuations)
        if len(prefix) + longest > self.n_ctx:
            raise EngineError(f"{len(prefix) + longest} tokens exceed the context of {self.n_ctx}")
        if longest > self.llm.n_batch:
            return continuation_logprobs_by_rescoring(self, prefix, continuations)
        have = self.llm.input_ids[: self.llm.n_tokens].tolist()
        keep = min(common_prefix(have, prefix), len(prefix) - 1)  # the prefix's last token is run: its logits
        try:
            self.llm._ctx.kv_cache_seq_rm(-1, keep, -1)
            self.llm.n_tokens = keep
            if len(continuations) == 1 and len(prefix) - keep + longest - 1 <= self.llm.n_batch:
                rows = self._decode(prefix[keep:] + continuations[0][:-1], keep, from_row=len(prefix) - keep - 1)
                out = [_scored(rows, continuations[0])]
            else:
                for i in range(keep, len(prefix), self.llm.n_batch):  # only the last position's logits are read
                    first = self._decode(prefix[i:i + self.llm.n_batch], i)
                out = []
                for cont in continuations:
                    self.llm._ctx.kv_cache_seq_rm(-1, len(prefix), -1)
                    rows = self._decode(cont[:-1], len(prefix), from_row=0) if len(cont) > 1 else first[:0]
                    out.append(_scored(np.concatenate([first, rows]), cont))
            self.llm._ctx.kv_cache_seq_rm(-1, len(prefix), -1)
            self.llm.input_ids[keep:len(prefix)] = prefix[keep:]
            self.llm.n_tokens = len(prefix)
        except BaseException:
            self.reset()  # the context no longer matches its bookkeeping
            raise
        return out

    def _decode(self, tokens: list[int], n_past: int, from_row: int | None = None) -> np.ndarray:
        """Decode `tokens` after position n_past; the logits (a copy, rows x vocab) of the positions from
        `from_row` on, or of the last one. Only those rows are computed: the output layer over a 150k-word
        vocabulary costs as much as a layer of the model per row."""
        self.llm._batch.set_batch(batch=tokens, n_past=n_past, logits_all=False)
        first = len(tokens) - 1 if from_row is None else from_row
        for i in range(first, len(tokens)):
            self.llm._batch.batch.logits[i] = True
        self.llm._ctx.decode(self.llm._batch)
        rows, n_vocab = len(tokens) - first, self.llm.n_vocab()
        return np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(rows * n_vocab,)).reshape(rows, n_vocab).copy()

    def token_logprobs(self, tokens: list[int]) -> list[float]:
        """log p(tokens[i] | tokens[:i]) for i >= 1, from an empty context (perplexity).

        Decodes with logits requested for every position (llama-cpp-python keeps only the last row unless the
        whole model is opened with logits_all, which would cost n_ctx x n_vocab floats for every session)."""
        import numpy as np

        if len(tokens) > self.n_ctx:
            raise EngineError(f"{len(tokens)} tokens exceed the context of {self.n_ctx}")
        self.reset()
        n_vocab = self.llm.n_vocab()
        step = self.llm.n_batch
        out: list[float] = []
        try:
            for i in range(0, len(tokens), step):
                chunk = tokens[i:i + step]
                self.llm._batch.set_batch(batch=chunk, n_past=i, logits_all=True)
                self.llm._ctx.decode(self.llm._batch)
                logits = np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(len(chunk) * n_vocab,))
                logits = logits.reshape(len(chunk), n_vocab).astype(np.float64)
                m = logits.max(axis=1, keepdims=True)
                lp = logits - (m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True)))
                for j in range(len(chunk)):
                    if i + j + 1 < len(tokens):
                        out.append(float(lp[j, tokens[i + j + 1]]))
        finally:
            self.reset()
        return out


def _scored(logits: np.ndarray, cont: list[int]) -> list[float]:
    """log p(cont[j] | …) from the logits row before each token (row j predicts cont[j])."""
    rows = logits[: len(cont)].astype(np.float64)
    m = rows.max(axis=-1, keepdims=True)
    lp = rows - (m + np.log(np.exp(rows - m).sum(axis=-1, keepdims=True)))
    return [float(lp[j, cont[j]]) for j in range(len(cont))]


# llama-cpp-python's schema converter lets a string hold raw control characters (`char ::= [^"\\] | …`), so a
# sampled newline inside a string made the output invalid JSON (json.loads: "Invalid control character");
# llama.cpp's own converter excludes them, as JSON does
_LOOSE_CHAR = 'char ::= [^"\\\\] |'
_JSON_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'


def json_grammar(schema: str) -> str:
    """GBNF for a JSON schema whose strings hold no raw control characters."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    gbnf = json_schema_to_gbnf(schema)
    if _JSON_CHAR not in gbnf:
        if _LOOSE_CHAR not in gbnf:
            raise EngineError("llama-cpp-python's JSON grammar changed: its string characters rule was not found")
        gbnf = gbnf.replace(_LOOSE_CHAR, _JSON_CHAR)
    return gbnf
