"""`glassmate quantize report`: size, memory, speed and quality of every built variant, measured in one run.

Each variant is measured in its own worker process (`python -m quantize.report VARIANT …`), so its peak RSS and
load time are its own. Per variant, in this order:
1. load at 2 threads; prefill and decode speed (best of 2); peak RSS so far — the model serving a request;
2. perplexity on held-in chat text (DialogSum dialogues after the first `--n`, 2 windows of 512 tokens);
3. ROUGE-L of the assistant's catch-up summaries of the first `--n` DialogSum dialogues;
4. JSON-valid rate of the assistant's first, JSON-constrained reply-draft pass on the first `--n-json` dialogues;
5. a fresh load at 1 thread and its prefill/decode speed.
The decode ceiling is the machine's measured read bandwidth divided by the bytes a token reads (the weights).
"""

from __future__ import annotations

import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

PPL_WINDOW = 512
PPL_WINDOWS = 2
SPEED_PROMPT_TOKENS = 384
SPEED_DECODE_TOKENS = 64
SPEED_PROMPT = ("Write a long, detailed story about a lighthouse keeper who finds a message in a bottle. "
                "Describe every day of the following month.")


@dataclass
class VariantRow:
    name: str
    base: str
    runtime: str
    precision: str
    size_bytes: int
    load_s: float
    peak_rss_mb: float
    prefill_tok_s: float  # at 2 threads
    decode_tok_s: float  # at 2 threads
    prefill_tok_s_1t: float
    decode_tok_s_1t: float
    perplexity: float
    ppl_tokens: int
    rouge_l: float
    summary_p50_s: float
    json_valid_rate: float
    n_summaries: int
    n_json: int
    decode_ceiling_tok_s: float = 0.0
    decode_fraction_of_ceiling: float = 0.0
    stage_s: dict[str, float] = field(default_factory=dict)  # where the measuring time went


def _progress(stage: str) -> None:
    print(f"@progress {stage}", file=sys.stderr, flush=True)


def speed(engine) -> tuple[float, float]:
    """(prefill tok/s, decode tok/s), best of two: a cold 384-token prompt and one token, then 64 greedy tokens
    on the same prompt, whose prefix is then cached, so that run's time after its first token is pure decode."""
    from device.engines.base import ChatMessage, GenerationParams

    filler = " ".join(["The keeper climbed the stairs and lit the lamp again."] * 64)
    ids = engine.tokenize(filler)
    body = engine.detokenize(ids[: SPEED_PROMPT_TOKENS - 60])
    prompt = engine.format_chat([ChatMessage("user", body + "\n\n" + SPEED_PROMPT)])
    best_prefill, best_decode = 0.0, 0.0
    for _ in range(2):
        engine.reset()
        one = engine.generate(prompt, GenerationParams(max_tokens=1, temperature=0))
        best_prefill = max(best_prefill, one.prompt_tokens / one.ttft_s)
        gen = engine.generate(prompt, GenerationParams(max_tokens=SPEED_DECODE_TOKENS, temperature=0,
                                                       repeat_penalty=1.0))
        if gen.completion_tokens > 1:
            best_decode = max(best_decode, (gen.completion_tokens - 1) / (gen.total_s - gen.ttft_s))
    engine.reset()
    return best_prefill, best_decode


def ppl_text(data: Path, skip: int) -> str:
    """Held-in chat text: DialogSum dialogues after the ones the ROUGE eval summarizes, as `Name: text` lines."""
    from lab.evaluation import dialogue_messages, read_dialogsum

    rows = read_dialogsum(data, skip + 60)[skip:]
    return "\n\n".join("\n".join(f"{m.sender}: {m.text}" for m in dialogue_messages(r["dialogue"], "c"))
                       for r in rows)


def perplexity(engine, text: str) -> tuple[float, int]:
    ids = engine.tokenize(text)
    if len(ids) < PPL_WINDOW * PPL_WINDOWS:
        raise ValueError(f"perplexity text has {len(ids)} tokens; needs {PPL_WINDOW * PPL_WINDOWS}")
    logprobs: list[float] = []
    for w in range(PPL_WINDOWS):
        logprobs += engine.token_logprobs(ids[w * PPL_WINDOW:(w + 1) * PPL_WINDOW])
    return math.exp(-statistics.fmean(logprobs)), len(logprobs)


def json_valid_rate(engine, data: Path, n: int) -> float:
    """Share of reply drafts whose first JSON-constrained pass is complete JSON with three non-empty replies."""
    from device.assistant import prompts
    from device.assistant.core import REPLIES_TOKENS, REPLY_CONTEXT_MESSAGES
    from device.engines.base import GenerationParams
    from device.messages.inbox import group_threads
    from lab.evaluation import dialogue_messages, read_dialogsum

    rows = read_dialogsum(data, n)
    ok = 0
    for row in rows:
        thread = group_threads(dialogue_messages(row["dialogue"], "Conversation"))["Conversation"]
        header = prompts.thread_header(thread.name, thread.participants)
        lines = [prompts.message_line(m) for m in thread.messages[-REPLY_CONTEXT_MESSAGES:]]
        prompt = engine.format_chat(prompts.replies_messages(header, lines))
        gen = engine.generate(prompt, GenerationParams(max_tokens=REPLIES_TOKENS, temperature=0.2,
                                                       json_schema=prompts.REPLIES_SCHEMA))
        try:
            obj = json.loads(gen.text)
            ok += all(isinstance(obj.get(k), str) and obj[k].strip() for k in prompts.REPLY_KEYS)
        except (json.JSONDecodeError, AttributeError):
            pass
    return ok / len(rows) if rows else 0.0


def measure(name: str, data: Path, n: int, n_json: int, n_ctx: int = 2048) -> VariantRow:
    from device.assistant.core import Assistant
    from device.catalog import get_model, path_size
    from device.engines import load_engine
    from lab.evaluation import eval_summaries
    from lab.machine import peak_rss_mb

    spec = get_model(name)
    stages: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(stage: str) -> None:
        now = time.perf_counter()
        stages[stage] = round(now - clock[0], 1)
        clock[0] = now
    _progress("load")
    start = time.perf_counter()
    engine = load_engine(name, n_ctx=n_ctx, n_threads=2)
    load_s = time.perf_counter() - start
    _progress("speed at 2 threads")
    prefill2, decode2 = speed(engine)
    peak = peak_rss_mb()
    lap("load_and_speed_2t")
    _progress("perplexity")
    ppl, ppl_tokens = perplexity(engine, ppl_text(data, n))
    lap("perplexity")
    _progress(f"ROUGE-L of {n} summaries")
    summaries = eval_summaries(Assistant(engine), data, n,
                               progress=lambda i, total: _progress(f"summary {i}/{total}"))
    lap("summaries")
    _progress(f"JSON-valid rate of {n_json} reply drafts")
    jv = json_valid_rate(engine, data, n_json)
    lap("reply_drafts")
    del engine
    gc.collect()
    _progress("speed at 1 thread")
    one = load_engine(name, n_ctx=n_ctx, n_threads=1)
    prefill1, decode1 = speed(one)
    lap("speed_1t")
    return VariantRow(name=name, base=spec.base or spec.name, runtime=spec.runtime, precision=spec.quant,
                      size_bytes=path_size(spec.path), load_s=round(load_s, 3), peak_rss_mb=round(peak, 1),
                      prefill_tok_s=round(prefill2, 1), decode_tok_s=round(decode2, 2),
                      prefill_tok_s_1t=round(prefill1, 1), decode_tok_s_1t=round(decode1, 2),
                      perplexity=round(ppl, 4), ppl_tokens=ppl_tokens, rouge_l=summaries.rougeL,
                      summary_p50_s=summaries.total_p50_s, json_valid_rate=round(jv, 3), n_summaries=summaries.n,
                      n_json=n_json, stage_s=stages)


# -- the driver ----------------------------------------------------------------------------------------------
def variants_of(models: list[str]) -> list[str]:
    """Every built variant of `models`, plus each catalog file itself, in a stable order (GGUF then ONNX)."""
    from device.catalog import get_model, load_variants

    built = load_variants()
    out: list[str] = []
    for model in models:
        base = get_model(model)
        names = [model] if base.is_fetched() else []
        names += [v for v, s in built.items() if s.base == model and s.is_fetched()]
        out += sorted(names, key=lambda v: (get_model(v).runtime != "llama", v))
    return out


def run_worker(name: str, data: Path, n: int, n_json: int, on_stage=lambda s: None, timeout: int = 1800) -> dict:
    proc = subprocess.Popen([sys.executable, "-m", "quantize.report", name, str(data), str(n), str(n_json)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tail: list[str] = []
    assert proc.stderr is not None and proc.stdout is not None
    for line in proc.stderr:
        if line.startswith("@progress "):
            on_stage(line[len("@progress "):].strip())
        else:
            tail = (tail + [line.rstrip()])[-20:]
    out = proc.stdout.read()
    if proc.wait(timeout) != 0:
        raise RuntimeError(f"measuring {name} failed: {' | '.join(tail[-5:])}")
    return json.loads(out.strip().splitlines()[-1])


def run_report(models: list[str], data: Path, n: int, n_json: int, out: Path, on_variant=lambda i, n, v: None,
               on_stage=lambda s: None, only: list[str] | None = None) -> dict:
    from lab.bench import read_bandwidth_gbs, versions
    from lab.machine import machine_info

    if not Path(data).is_file():
        raise FileNotFoundError(f"{data}: no such file (DialogSum dev set, e.g. ../shared/data/dialogsum/"
                                f"dialogsum.dev.jsonl)")
    names = only or variants_of(models)
    if not names:
        raise ValueError(f"no variants of {', '.join(models)} are built: run `glassmate quantize gguf` and "
                         f"`glassmate quantize onnx` first")
    out.mkdir(parents=True, exist_ok=True)
    on_stage("measuring memory read bandwidth")
    bw = read_bandwidth_gbs()
    started = time.perf_counter()
    rows = []
    for i, name in enumerate(names):
        on_variant(i, len(names), name)
        row = run_worker(name, data, n, n_json, on_stage)
        ceiling = bw * 1e9 / row["size_bytes"]
        row["decode_ceiling_tok_s"] = round(ceiling, 1)
        row["decode_fraction_of_ceiling"] = round(row["decode_tok_s"] / ceiling, 3)
        rows.append(row)
    on_variant(len(names), len(names), "")
    report = {
        "command": "glassmate " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("glassmate") else
        f"glassmate quantize report --models {','.join(models)} --n {n} --n-json {n_json}",
        "machine": machine_info() | {"read_gbs": round(bw, 2)},
        "versions": versions() | _versions("onnxruntime", "optimum-onnx", "gguf", "llguidance"),
        "data": {"rouge": f"{Path(data).name}: first {n} dialogues", "json": f"first {n_json} dialogues",
                 "perplexity": f"{Path(data).name}: dialogues {n}+, {PPL_WINDOWS} windows of {PPL_WINDOW} tokens"},
        "wall_s": round(time.perf_counter() - started, 1),
        "variants": rows,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(markdown(report))
    plots(report, out)
    return report


def _versions(*pkgs: str) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for p in pkgs:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    return out


def markdown(report: dict) -> str:
    lines = ["| variant | runtime | size (MB) | peak RSS (MB) | load (s) | prefill tok/s 1t / 2t "
             "| decode tok/s 1t / 2t | decode % of ceiling | perplexity | ROUGE-L | JSON valid |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["variants"]:
        lines.append(
            f"| {r['name']} | {r['runtime']} | {r['size_bytes'] / 1e6:.0f} | {r['peak_rss_mb']:.0f} | "
            f"{r['load_s']:.2f} | {r['prefill_tok_s_1t']:.0f} / {r['prefill_tok_s']:.0f} | "
            f"{r['decode_tok_s_1t']:.1f} / {r['decode_tok_s']:.1f} | {100 * r['decode_fraction_of_ceiling']:.0f} % | "
            f"{r['perplexity']:.3f} | {r['rouge_l']:.3f} | {100 * r['json_valid_rate']:.0f} % |")
    m = report["machine"]
    lines += ["", f"Machine: {m['cpu']}, {m['cores']} cores, measured read bandwidth {m['read_gbs']:.1f} GB/s; "
                  f"whole run {report['wall_s'] / 60:.1f} min. Perplexity: {report['data']['perplexity']}; "
                  f"ROUGE-L: {report['data']['rouge']}; JSON valid: {report['data']['json']}. "
                  f"Command: `{report['command']}`."]
    return "\n".join(lines) + "\n"


def plots(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["variants"]
    colors = {"llama": "tab:blue", "onnx": "tab:orange"}
    for fname, xkey, xlabel, scale in (("quality_vs_size.png", "size_bytes", "file size (MB)", 1e-6),
                                       ("quality_vs_speed.png", "decode_tok_s", "decode tokens/s (2 threads)", 1)):
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
        for ax, ykey, ylabel in ((axes[0], "perplexity", "perplexity (lower is better)"),
                                 (axes[1], "rouge_l", "ROUGE-L of summaries (higher is better)"),
                                 (axes[2], "json_valid_rate", "JSON-valid reply drafts")):
            for r in rows:
                x = r[xkey] * scale
                ax.scatter(x, r[ykey], color=colors.get(r["runtime"], "gray"))
                ax.annotate(r["name"].partition("@")[2] or r["precision"], (x, r[ykey]), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        axes[0].set_yscale("log")
        fig.suptitle(f"{fname.removesuffix('.png').replace('_', ' ')}: blue = llama.cpp GGUF, orange = ONNX Runtime")
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    variant, data_path, n_arg, n_json_arg = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(asdict(measure(variant, data_path, n_arg, n_json_arg))))
