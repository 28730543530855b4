"""`glassmate bench`: latency per use case, beside raw llama.cpp, plain transformers and the bandwidth ceiling.

Each model runs in its own worker process (so peak RSS and CPU seconds are its own). Scenarios use the real
assistant on the sample inbox: `notify`, `catchup` (a 20-message thread, cold: empty context, no cached system
prompt), `replies`, `polish`, and `incremental` (the same thread after one more message, with the thread's KV
state kept). End-to-end times include tokenization and sampling. The wrapper comparison runs glassmate's engine and
a raw llama-cpp-python loop on the same prompt tokens, greedy, same thread count, alternating run by run.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lab.machine import peak_rss_mb

PROFILES = {  # threads, memory budget (MiB) for model + context
    "pi-zero2": {"threads": 4, "memory_mb": 420},
    "pi5": {"threads": 4, "memory_mb": 6000},
    "laptop": {"threads": os.cpu_count() or 2, "memory_mb": 12000},
}
WRAPPER_TOKENS = 64
WRAPPER_MIN_RUNS = 5


@dataclass
class BenchConfig:
    models: list[str]
    threads: list[int]
    runs: int
    out: Path
    transformers: bool = True
    profile: str | None = None


# -- measurements -------------------------------------------------------------------------------------------
def read_bandwidth_gbs(mb: int = 512, repeats: int = 5) -> float:
    """Memory read bandwidth: best of `repeats` passes summing an array too large for any cache, on all cores."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    arr = np.ones(mb * (1 << 20) // 8, dtype=np.float64)
    workers = os.cpu_count() or 1
    parts = np.array_split(arr, workers)
    best = float("inf")
    with ThreadPoolExecutor(workers) as pool:
        for _ in range(repeats):
            start = time.perf_counter()
            list(pool.map(np.sum, parts))  # numpy releases the GIL while it reduces
            best = min(best, time.perf_counter() - start)
    return arr.nbytes / best / 1e9


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarize_samples(samples: list[dict]) -> dict:
    ttft = [s["ttft_s"] for s in samples]
    total = [s["total_s"] for s in samples]
    prefill = [s["prefill_tokens"] / s["ttft_s"] for s in samples if s["ttft_s"] > 0 and s["prefill_tokens"]]
    decode = [(s["completion_tokens"] - 1) / (s["total_s"] - s["ttft_s"]) for s in samples
              if s["completion_tokens"] > 1 and s["total_s"] > s["ttft_s"]]
    return {"n": len(samples), "ttft_p50_s": statistics.median(ttft), "ttft_p95_s": pct(ttft, 0.95),
            "total_p50_s": statistics.median(total), "total_p95_s": pct(total, 0.95),
            "prefill_tok_s": statistics.median(prefill) if prefill else None,
            "decode_tok_s": statistics.median(decode) if decode else None}


def _sample(result) -> dict:
    return {"ttft_s": result.ttft_s, "total_s": result.total_s, "prompt_tokens": result.prompt_tokens,
            "prefill_tokens": result.prompt_tokens - getattr(result, "cached_prompt_tokens", 0),
            "completion_tokens": result.completion_tokens}


# -- the worker: one model, one thread count, in its own process -----------------------------------------------
def run_worker(model: str, threads: int, runs: int) -> dict:
    from device.assistant import prompts
    from device.assistant.core import Assistant
    from device.assistant.kvcache import ThreadKVCache
    from device.catalog import require_model
    from device.engines import load_engine
    from device.engines.base import GenerationParams
    from device.engines.llama_raw import RawLlama
    from device.messages.inbox import Message, Thread, group_threads, read_feed

    cpu0 = time.process_time()
    start = time.perf_counter()
    engine = load_engine(model, n_threads=threads)
    load_s = time.perf_counter() - start
    with resources.as_file(resources.files("device") / "data" / "sample_inbox.jsonl") as p:
        inbox = read_feed(p)
    threads_by_name = group_threads(inbox)
    others = [m for m in inbox if not m.from_wearer]
    big = Thread("Weekend", [Message("Weekend", m.sender, m.text, m.ts) for m in others[:20]])
    extra = Message("Weekend", "Priya", "Update: we meet at 9:45 at the south entrance instead.", others[-1].ts)
    bigger = Thread("Weekend", [*big.messages, extra])
    # `notify` times the model's line: a message short enough to be shown as written costs nothing to time
    assistant = Assistant(engine, verbatim_words=0)
    cold = Assistant(engine, reuse_prefixes=False)

    def repeat(fn, before=None) -> list[dict]:
        out = []
        for i in range(runs + 1):  # the first run warms up and is not kept
            if before:
                before()
            r = fn(i)
            if i:
                out.append(_sample(r))
        return out

    # Each run starts from an emptied context (another thread was just used): the realistic scenarios restore
    # only the task's system prompt state, as the assistant does on the glasses; `catchup` restores nothing.
    scenarios = {
        "notify": repeat(lambda i: assistant.notify(others[i % len(others)]), before=engine.reset),
        "catchup": repeat(lambda i: cold.catch_up(big, big.messages), before=engine.reset),
        "replies": repeat(lambda i: assistant.draft_replies(threads_by_name["Dinner Friday"]), before=engine.reset),
        "polish": repeat(lambda i: assistant.polish("uh yeah I'm in um see you at ten at the station",
                                                     threads_by_name["Climbing crew"]), before=engine.reset),
    }
    kv = ThreadKVCache(engine)
    inc = Assistant(engine, reuse_prefixes=False, kv=kv)

    def incremental(i):
        engine.reset()
        kv.drop("Weekend")
        inc.catch_up(big, big.messages)           # summarized once: its KV state is kept
        engine.reset()                             # other threads used the context since
        return inc.catch_up(bigger, bigger.messages)

    scenarios["incremental"] = repeat(incremental)

    # glassmate's engine vs a raw llama-cpp-python loop: same prompt tokens, greedy, alternating
    prompt = engine.format_chat(prompts.summary_messages(
        prompts.thread_header(big.name, big.participants), [prompts.message_line(m) for m in big.messages]))
    raw = RawLlama(require_model(model).path, engine.n_ctx, threads)
    params = GenerationParams(max_tokens=WRAPPER_TOKENS, temperature=0.0, repeat_penalty=1.0)
    ours, theirs = [], []
    for i in range(max(runs, WRAPPER_MIN_RUNS) + 1):  # a ratio of two noisy medians wants a few more samples
        engine.reset()
        g = engine.generate(prompt, params)
        r = raw.run(prompt, WRAPPER_TOKENS)
        if i:
            ours.append({"ttft_s": g.ttft_s, "total_s": g.total_s, "prompt_tokens": g.prompt_tokens,
                         "prefill_tokens": g.prompt_tokens, "completion_tokens": g.completion_tokens})
            theirs.append({k: r[k] for k in ("ttft_s", "total_s", "prompt_tokens", "completion_tokens")}
                          | {"prefill_tokens": r["prompt_tokens"]})
    return {"model": model, "threads": threads, "load_s": load_s,
            "scenarios": {k: {"samples": v, **summarize_samples(v)} for k, v in scenarios.items()},
            "wrapper": {"glassmate": {"samples": ours, **summarize_samples(ours)},
                        "raw_llama_cpp": {"samples": theirs, **summarize_samples(theirs)}, "prompt": prompt},
            "peak_rss_mb": peak_rss_mb(), "cpu_s": time.process_time() - cpu0}


def run_transformers_worker(model: str, threads: int, runs: int, prompt: str) -> dict:
    """Plain transformers, what a user tries first: the same GGUF dequantized to fp32, `generate`, greedy."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from device.catalog import require_model

    torch.set_num_threads(threads)
    spec = require_model(model)
    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(spec.path.parent), gguf_file=spec.path.name)
    net = AutoModelForCausalLM.from_pretrained(str(spec.path.parent), gguf_file=spec.path.name,
                                               dtype=torch.float32)
    load_s = time.perf_counter() - start
    samples = []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
        tokenize_s = time.perf_counter() - t0
        with torch.inference_mode():
            net.generate(**ids, max_new_tokens=1, do_sample=False)
            t1 = time.perf_counter()
            out = net.generate(**ids, max_new_tokens=WRAPPER_TOKENS, do_sample=False)
        n_prompt = ids["input_ids"].shape[1]
        tok.decode(out[0, n_prompt:])
        t3 = time.perf_counter()
        if i:
            # TTFT: tokenization and a one-token generate; end-to-end: tokenization, the full generate, decoding
            samples.append({"ttft_s": t1 - t0, "total_s": tokenize_s + (t3 - t1), "prompt_tokens": n_prompt,
                            "prefill_tokens": n_prompt, "completion_tokens": out.shape[1] - n_prompt})
    return {"model": model, "threads": threads, "load_s": load_s, "samples": samples, **summarize_samples(samples),
            "peak_rss_mb": peak_rss_mb()}


def profile_warning(model: str, file_bytes: int, profile: str | None) -> str | None:
    """A warning when the model (weights, plus ~15 % for a 4k context and ~150 MiB of runtime) exceeds the
    profile's memory budget."""
    if not profile:
        return None
    need_mb = file_bytes / 2**20 * 1.15 + 150
    budget = PROFILES[profile]["memory_mb"]
    if need_mb > budget:
        return f"{model} needs about {need_mb:.0f} MiB; the {profile} profile has {budget} MiB"
    return None


# -- the driver ---------------------------------------------------------------------------------------------
def _worker(args: list[str], stdin: str = "", timeout: int = 3600) -> dict:
    proc = subprocess.run([sys.executable, "-m", "lab.bench", *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"bench worker {' '.join(args[:3])} failed: {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("glassmate", "llama-cpp-python", "torch", "transformers", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def run_bench(cfg: BenchConfig, progress=lambda msg: None) -> dict:
    from device.catalog import path_size, require_model
    from lab.machine import machine_info

    cfg.out.mkdir(parents=True, exist_ok=True)
    warnings = []
    progress("measuring memory bandwidth")
    bw = read_bandwidth_gbs()
    report: dict = {"command": "glassmate " + " ".join(sys.argv[1:]), "machine": machine_info() | {"read_gbs": bw},
                    "versions": versions(), "profile": cfg.profile, "models": {}, "summary": {}, "warnings": warnings}
    for model in cfg.models:
        spec = require_model(model)
        size = path_size(spec.path)
        warning = profile_warning(model, size, cfg.profile)
        if warning:
            warnings.append(warning)
        entry: dict = {"file_bytes": size, "by_threads": {}}
        for t in cfg.threads:
            progress(f"{model}: glassmate, raw llama.cpp, {t} thread(s)")
            entry["by_threads"][str(t)] = _worker(["worker", model, str(t), str(cfg.runs)])
        top = entry["by_threads"][str(max(cfg.threads))]
        if cfg.transformers:
            progress(f"{model}: plain transformers, {max(cfg.threads)} thread(s)")
            try:
                entry["transformers"] = _worker(["transformers", model, str(max(cfg.threads)), str(cfg.runs)],
                                                stdin=top["wrapper"]["prompt"])
            except RuntimeError as exc:
                warnings.append(f"transformers baseline for {model} failed: {exc}")
        ceiling = bw * 1e9 / size
        ours, raw = top["wrapper"]["glassmate"], top["wrapper"]["raw_llama_cpp"]
        sc = top["scenarios"]
        summary = {
            "decode_ratio_vs_raw": ours["decode_tok_s"] / raw["decode_tok_s"],
            "ttft_ratio_vs_raw": ours["ttft_p50_s"] / raw["ttft_p50_s"],
            "incremental_ttft_ratio": sc["incremental"]["ttft_p50_s"] / sc["catchup"]["ttft_p50_s"],
            "decode_ceiling_tok_s": ceiling,
            "decode_fraction_of_ceiling": ours["decode_tok_s"] / ceiling,
            "threads": max(cfg.threads),
        }
        if "transformers" in entry:
            summary["speedup_vs_transformers"] = entry["transformers"]["total_p50_s"] / ours["total_p50_s"]
        report["models"][model] = entry
        report["summary"][model] = summary
    (cfg.out / "bench.json").write_text(json.dumps(report, indent=2))
    (cfg.out / "bench.md").write_text(markdown(report))
    plots(report, cfg.out)
    return report


def markdown(report: dict) -> str:
    lines = ["| model | threads | scenario | TTFT p50 (s) | TTFT p95 (s) | end-to-end p50 (s) | end-to-end p95 (s) "
             "| prefill tok/s | decode tok/s |", "|---|---|---|---|---|---|---|---|---|"]
    for model, entry in report["models"].items():
        for t, w in entry["by_threads"].items():
            for name, s in w["scenarios"].items():
                lines.append(f"| {model} | {t} | {name} | {s['ttft_p50_s']:.3f} | {s['ttft_p95_s']:.3f} | "
                             f"{s['total_p50_s']:.3f} | {s['total_p95_s']:.3f} | {_f(s['prefill_tok_s'])} | "
                             f"{_f(s['decode_tok_s'])} |")
    lines += ["", "| model | glassmate/raw decode | glassmate/raw TTFT | speedup vs transformers | incremental/cold "
              "TTFT | decode % of bandwidth ceiling | peak RSS (MB) | load (s) |", "|---|---|---|---|---|---|---|---|"]
    for model, s in report["summary"].items():
        top = report["models"][model]["by_threads"][str(s["threads"])]
        lines.append(f"| {model} | {s['decode_ratio_vs_raw']:.3f} | {s['ttft_ratio_vs_raw']:.3f} | "
                     f"{_f(s.get('speedup_vs_transformers'))}× | {s['incremental_ttft_ratio']:.3f} | "
                     f"{100 * s['decode_fraction_of_ceiling']:.0f} % of {s['decode_ceiling_tok_s']:.0f} tok/s | "
                     f"{top['peak_rss_mb']:.0f} | {top['load_s']:.2f} |")
    m = report["machine"]
    lines += ["", f"Machine: {m['cpu']}, {m['cores']} cores ({', '.join(m['flags'])}), measured read bandwidth "
                  f"{m['read_gbs']:.1f} GB/s. Command: `{report['command']}`."]
    return "\n".join(lines) + "\n"


def _f(x) -> str:
    return "–" if x is None else f"{x:.1f}"


def plots(report: dict, out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    models = list(report["models"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((axes[0], "ttft_p50_s", "time to first token (p50)"),
                           (axes[1], "total_p50_s", "end-to-end (p50)")):
        names = list(next(iter(report["models"].values()))["by_threads"].values())[0]["scenarios"]
        width = 0.8 / max(1, len(models))
        for i, model in enumerate(models):
            top = report["models"][model]["by_threads"][str(report["summary"][model]["threads"])]
            ax.bar([j + i * width for j in range(len(names))], [top["scenarios"][n][key] for n in names], width,
                   label=model)
        ax.set_xticks([j + width * (len(models) - 1) / 2 for j in range(len(names))], list(names))
        ax.set_ylabel("seconds")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = range(len(models))
    ax.bar([x - 0.2 for x in xs], [report["summary"][m]["decode_ceiling_tok_s"] for m in models], 0.4,
           label="bandwidth ceiling")
    ax.bar([x + 0.2 for x in xs], [report["summary"][m]["decode_fraction_of_ceiling"]
                                   * report["summary"][m]["decode_ceiling_tok_s"] for m in models], 0.4,
           label="glassmate decode")
    ax.set_xticks(list(xs), models)
    ax.set_ylabel("tokens / s")
    ax.set_title("decode speed vs memory-bandwidth ceiling")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "decode_vs_ceiling.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    kind, model, threads, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if kind == "worker":
        result = run_worker(model, threads, runs)
    else:
        result = run_transformers_worker(model, threads, runs, sys.stdin.read())
    print(json.dumps(result))
