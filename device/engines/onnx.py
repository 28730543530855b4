"""The ONNX Runtime engine: the same interface as the llama.cpp engine, over a folder `glassmate quantize onnx` built.

The folder holds `model.onnx` (a decoder with KV-cache inputs/outputs: `past_key_values.N.key|value` in,
`present.N.key|value` out), `tokenizer.json`, `tokenizer_config.json`, `generation_config.json` and the chat
template. Decoding is our own loop: one `session.run` per token with the KV cache carried as numpy arrays
(optimum's `generate` wrapper was measured 3–4× slower). JSON-constrained output masks the logits with
llguidance's token mask compiled from the JSON schema. The only module in glassmate that imports onnxruntime.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer
from tokenizers.decoders import DecodeStream

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
    run_to_end,
    stop_prefix_len,
    top_of,
)

RUNTIME = f"ONNX Runtime {ort.__version__}"
PREFILL_CHUNK = 256  # tokens per prefill call: bounds the logits buffer (chunk x vocab floats)
REPEAT_WINDOW = 64  # llama.cpp's default penalty window
TOP_K = 40
MIN_P = 0.05


class OnnxEngine:
    runtime = "onnx"

    def __init__(self, name: str, folder: Path, n_ctx: int = 4096, n_threads: int | None = None, seed: int = 0):
        self.name = name
        self.path = Path(folder)
        self.n_ctx = n_ctx
        self.n_threads = n_threads or default_threads()
        model_file = self.path / "model.onnx"
        if not model_file.is_file():
            raise EngineError(f"{self.path} holds no model.onnx (run: glassmate quantize onnx --model "
                              f"{name.partition('@')[0]})")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.n_threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(model_file), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise EngineError(f"ONNX Runtime could not load {model_file}: {str(exc).splitlines()[0][:300]}. "
                              f"The file may be corrupt: run `glassmate models verify` and rebuild it with "
                              f"`glassmate quantize onnx`") from exc
        self._read_io()
        self._load_tokenizer()
        self._template = self._load_template()
        self._rng = np.random.default_rng(seed)
        self._grammars: dict[str, str] = {}
        self._lltok = None
        self.reset()

    # -- loading ----------------------------------------------------------------------------------------
    def _read_io(self) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        self._kv_names = sorted((n for n in inputs if n.startswith("past_key_values.")),
                                key=lambda n: (int(n.split(".")[1]), n.split(".")[2]))
        if not self._kv_names or "input_ids" not in inputs:
            raise EngineError(f"{self.path}/model.onnx is not a decoder with a KV cache (export it with "
                              f"task text-generation-with-past)")
        first = inputs[self._kv_names[0]]
        self._kv_heads, self._head_dim = int(first.shape[1]), int(first.shape[3])
        self._kv_dtype = np.float16 if "float16" in first.type else np.float32
        self._has_positions = "position_ids" in inputs
        self._out_names = ["logits"] + [n.replace("past_key_values.", "present.") for n in self._kv_names]

    def _load_tokenizer(self) -> None:
        try:
            self.tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
            cfg = json.loads((self.path / "tokenizer_config.json").read_text(encoding="utf-8"))
            gen = json.loads((self.path / "generation_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, Exception) as exc:
            raise EngineError(f"{self.path} lacks a readable tokenizer ({exc}); rebuild it with "
                              f"`glassmate quantize onnx`") from exc
        self._cfg = cfg
        self._bos = _token_text(cfg.get("bos_token"))
        self._eos = _token_text(cfg.get("eos_token"))
        self._add_bos = bool(cfg.get("add_bos_token", False)) and self._bos is not None
        eos_ids = gen.get("eos_token_id")
        eos_ids = eos_ids if isinstance(eos_ids, list) else [eos_ids] if eos_ids is not None else []
        if self._eos is not None and self.tokenizer.token_to_id(self._eos) is not None:
            eos_ids.append(self.tokenizer.token_to_id(self._eos))
        self._eos_ids = frozenset(int(i) for i in eos_ids)
        if not self._eos_ids:
            raise EngineError(f"{self.path} names no end-of-sequence token")
        self._bos_id = self.tokenizer.token_to_id(self._bos) if self._bos else None

    def _load_template(self):
        tpl = self._cfg.get("chat_template")
        file = self.path / "chat_template.jinja"
        if not tpl and file.is_file():
            tpl = file.read_text(encoding="utf-8")
        if not tpl:
            raise EngineError(f"{self.path} carries no chat template; glassmate needs an instruction-tuned model")
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        return env.from_string(tpl)

    # -- text <-> tokens ------------------------------------------------------------------------------
    def format_chat(self, messages: list[ChatMessage]) -> str:
        return self._template.render(messages=[{"role": m.role, "content": m.content} for m in messages],
                                     add_generation_prompt=True, bos_token=self._bos or "",
                                     eos_token=self._eos or "")

    def tokenize(self, text: str) -> list[int]:
        # Message text: control-token spellings inside it are plain text, never real control tokens.
        self.tokenizer.encode_special_tokens = True
        try:
            return self.tokenizer.encode(text, add_special_tokens=False).ids
        finally:
            self.tokenizer.encode_special_tokens = False

    def tokenize_prompt(self, prompt: str) -> list[int]:
        ids = self.tokenizer.encode(prompt, add_special_tokens=False).ids
        if self._add_bos and self._bos_id is not None and (not ids or ids[0] != self._bos_id):
            ids = [self._bos_id, *ids]
        return ids

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def detokenize(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    # -- LoRA adapters: llama.cpp's; an ONNX graph would need the adapter merged into a rebuilt model ---------
    adapter: str | None = None

    @property
    def identity(self) -> str:
        return self.name

    @property
    def fingerprint(self) -> str:
        files = sorted(f for f in self.path.iterdir() if f.is_file())
        return "|".join([self.identity, f"onnxruntime {ort.__version__}", *(file_fingerprint(f) for f in files)])

    def load_adapter(self, name: str, path: Path) -> None:
        raise EngineError(f"LoRA adapters run on the llama.cpp engine; {self.name} is an ONNX model. Use the "
                          f"GGUF model ({self.name.partition('@')[0]}) or run without adapters")

    def use_adapter(self, name: str | None) -> None:
        if name is not None:
            raise EngineError(f"adapter {name!r}: LoRA adapters run on the llama.cpp engine, not ONNX Runtime")

    # -- the KV cache -----------------------------------------------------------------------------------
    def reset(self) -> None:
        empty = np.zeros((1, self._kv_heads, 0, self._head_dim), dtype=self._kv_dtype)
        self._past = [empty] * len(self._kv_names)
        self._tokens: list[int] = []

    def _truncate(self, keep: int) -> None:
        if keep < len(self._tokens):
            self._past = [p[:, :, :keep] for p in self._past]
            self._tokens = self._tokens[:keep]

    def _forward(self, tokens: list[int]) -> np.ndarray:
        """Run `tokens` after the cached ones; returns their logits (n x vocab) and extends the cache."""
        n_past = len(self._tokens)
        feed: dict[str, np.ndarray] = {
            "input_ids": np.asarray([tokens], dtype=np.int64),
            "attention_mask": np.ones((1, n_past + len(tokens)), dtype=np.int64),
        }
        if self._has_positions:
            feed["position_ids"] = np.arange(n_past, n_past + len(tokens), dtype=np.int64)[None, :]
        feed.update(zip(self._kv_names, self._past, strict=True))
        out = self.session.run(self._out_names, feed)
        self._past = out[1:]
        self._tokens.extend(tokens)
        return out[0][0]

    def _prefill(self, tokens: list[int]) -> np.ndarray:
        """Evaluate what of `tokens` is not cached yet; returns the logits after the last token."""
        keep = common_prefix(self._tokens, tokens)
        keep = min(keep, len(tokens) - 1)  # the last prompt token is always run: its logits start the decode
        self._truncate(keep)
        logits = None
        for i in range(keep, len(tokens), PREFILL_CHUNK):
            logits = self._forward(tokens[i:i + PREFILL_CHUNK])[-1]
        assert logits is not None
        return logits

    def save_prefix(self, prompt: str) -> PrefixState:
        tokens = self.tokenize_prompt(prompt)
        if len(tokens) >= self.n_ctx:
            raise EngineError(f"prefix of {len(tokens)} tokens does not fit the context of {self.n_ctx}")
        keep = common_prefix(self._tokens, tokens)
        self._truncate(keep)
        for i in range(keep, len(tokens), PREFILL_CHUNK):
            self._forward(tokens[i:i + PREFILL_CHUNK])
        blob = [p.copy() for p in self._past]
        return PrefixState(self.identity, tuple(tokens), blob, sum(p.nbytes for p in blob))

    def restore_prefix(self, state: PrefixState) -> None:
        if state.model != self.identity:
            raise EngineError(f"KV state belongs to {state.model}, not {self.identity}")
        if common_prefix(self._tokens, list(state.tokens)) == len(state.tokens):
            return
        if not isinstance(state.blob, list) or len(state.blob) != len(self._kv_names):
            raise EngineError("the saved KV state does not fit this ONNX model")
        self._past = [p.copy() for p in state.blob]
        self._tokens = list(state.tokens)

    # -- scoring ------------------------------------------------------------------------------------------
    def token_logprobs(self, tokens: list[int]) -> list[float]:
        """log p(tokens[i] | tokens[:i]) for i >= 1, from an empty context (perplexity)."""
        if len(tokens) > self.n_ctx:
            raise EngineError(f"{len(tokens)} tokens exceed the context of {self.n_ctx}")
        self.reset()
        out: list[float] = []
        for i in range(0, len(tokens), PREFILL_CHUNK):
            chunk = tokens[i:i + PREFILL_CHUNK]
            logits = self._forward(chunk).astype(np.float64)
            lp = logits - _logsumexp(logits)
            for j in range(len(chunk)):
                if i + j + 1 < len(tokens):
                    out.append(float(lp[j, tokens[i + j + 1]]))
        self.reset()
        return out

    def continuation_logprobs(self, prefix: list[int], continuations: list[list[int]]) -> list[list[float]]:
        """The prefix is evaluated once (only what the cache does not hold of it), each continuation after it and
        then cut off again: the prefix stays cached."""
        if not prefix or not continuations:
            return continuation_logprobs_by_rescoring(self, prefix, continuations)
        longest = max(len(c) for c in continuations)
        if len(prefix) + longest > self.n_ctx:
            raise EngineError(f"{len(prefix) + longest} tokens exceed the context of {self.n_ctx}")
        logits = self._prefill(prefix).astype(np.float64)
        first = logits - _logsumexp(logits[None, :])[0]
        out: list[list[float]] = []
        for cont in continuations:
            lps = [float(first[cont[0]])] if cont else []
            for i in range(0, len(cont) - 1, PREFILL_CHUNK):
                rows = self._forward(cont[i:min(i + PREFILL_CHUNK, len(cont) - 1)]).astype(np.float64)
                lp = rows - _logsumexp(rows)
                lps += [float(lp[j, cont[i + j + 1]]) for j in range(len(rows))]
            self._truncate(len(prefix))
            out.append(lps)
        return out

    def next_token_logprobs(self, tokens: list[int], candidates: list[int]) -> list[float]:
        lp = self._next_logprobs(tokens)
        return [float(lp[c]) for c in candidates]

    def top_next_tokens(self, tokens: list[int], n: int) -> list[tuple[int, float]]:
        return top_of(self._next_logprobs(tokens), n)

    def _next_logprobs(self, tokens: list[int]) -> np.ndarray:
        if not tokens or len(tokens) >= self.n_ctx:
            raise EngineError(f"{len(tokens)} tokens: nothing to score, or more than the context of {self.n_ctx}")
        logits = self._prefill(tokens).astype(np.float64)
        return logits - _logsumexp(logits[None, :])[0]

    # -- generation -----------------------------------------------------------------------------------
    def stream(self, prompt: str, params: GenerationParams) -> TokenStream:
        tokens = self.tokenize_prompt(prompt)
        if len(tokens) + params.max_tokens > self.n_ctx:
            raise EngineError(f"prompt of {len(tokens)} tokens plus {params.max_tokens} to generate exceeds "
                              f"the context of {self.n_ctx}")
        cached = min(common_prefix(self._tokens, tokens), len(tokens) - 1)
        stream = TokenStream(iter(()))
        stream.pieces = self._pieces(tokens, params, stream, cached)
        return stream

    def _matcher(self, schema: dict):
        import llguidance  # only constrained generation needs it

        if self._lltok is None:
            self._lltok = llguidance.LLTokenizer(self.tokenizer.to_str(), eos_token=min(self._eos_ids))
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = llguidance.LLMatcher.grammar_from_json_schema(
                key, defaults={"whitespace_flexible": False})
        matcher = llguidance.LLMatcher(self._lltok, self._grammars[key], log_level=0)
        if matcher.is_error():
            raise EngineError(f"the JSON schema does not compile to a grammar: {matcher.get_error()}")
        return matcher

    def _pieces(self, tokens: list[int], params: GenerationParams, stream: TokenStream,
                cached: int) -> Iterator[str]:
        clock = Stopwatch()
        self._rng = np.random.default_rng(params.seed)
        matcher = self._matcher(params.json_schema) if params.json_schema else None
        logits = self._prefill(tokens)
        decoder = DecodeStream(skip_special_tokens=True)
        out: list[int] = []
        text = ""
        emitted = 0
        finish = "length"
        while True:
            tok = self._sample(logits, params, tokens + out, matcher)
            clock.mark_first()
            if tok in self._eos_ids:
                finish = "stop"
                break
            if matcher is not None:
                matcher.consume_token(tok)
            out.append(tok)
            text += decoder.step(self.tokenizer, tok) or ""
            hits = [text.find(s) for s in params.stop if s in text]
            if hits:
                text = text[:min(hits)]
                finish = "stop"
                break
            safe = len(text) - stop_prefix_len(text, params.stop)
            if safe > emitted:
                yield text[emitted:safe]
                emitted = safe
            if matcher is not None and matcher.is_stopped():
                finish = "stop"
                break
            if len(out) >= params.max_tokens:
                break
            logits = self._forward([tok])[-1]
        if len(text) > emitted:
            yield text[emitted:]
        stream.result = Generation(text, self.name, len(tokens), len(out), clock.ttft, clock.elapsed, finish,
                                   cached)

    def _sample(self, logits: np.ndarray, params: GenerationParams, history: list[int], matcher) -> int:
        """llama.cpp's chain, in its order: repeat penalty, top-k, top-p, min-p, temperature, draw."""
        logits = logits.astype(np.float32, copy=True)
        if matcher is not None:
            bits = np.frombuffer(matcher.compute_bitmask(), dtype=np.uint8)
            allowed = np.unpackbits(bits, bitorder="little")[:logits.shape[0]].astype(bool)
            if allowed.shape[0] < logits.shape[0]:
                allowed = np.pad(allowed, (0, logits.shape[0] - allowed.shape[0]))
            logits[~allowed] = -np.inf
        if params.repeat_penalty != 1.0 and history:
            recent = np.unique(np.asarray(history[-REPEAT_WINDOW:], dtype=np.int64))
            vals = logits[recent]
            logits[recent] = np.where(vals > 0, vals / params.repeat_penalty, vals * params.repeat_penalty)
        if params.temperature <= 0:
            return int(np.argmax(logits))
        k = min(TOP_K, int(np.isfinite(logits).sum()) or 1)
        top = np.argpartition(-logits, k - 1)[:k]
        top = top[np.argsort(-logits[top])]
        probs = np.exp(logits[top] - logits[top[0]])
        probs /= probs.sum()
        cut = int(np.searchsorted(np.cumsum(probs), params.top_p)) + 1  # top-p keeps at least one
        top, probs = top[:cut], probs[:cut]
        keep = probs >= MIN_P * probs[0]
        top = top[keep]
        scaled = logits[top] / params.temperature
        p = np.exp(scaled - scaled.max())
        p /= p.sum()
        return int(top[self._rng.choice(len(top), p=p)])

    def generate(self, prompt: str, params: GenerationParams) -> Generation:
        return run_to_end(self.stream(prompt, params))


def _token_text(tok) -> str | None:
    if isinstance(tok, dict):
        return tok.get("content")
    return tok


def _logsumexp(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    return m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True))
