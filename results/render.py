"""Render the README's results tables from the reference runs in results/ (the JSON is the source of truth).

    python results/render.py            # print the tables
    python results/render.py --write    # replace the generated blocks in README.md
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"


def quality_table() -> str:
    rows = []
    for path in sorted((HERE / "quality").glob("dialogsum-dev-*.json")):
        r = json.loads(path.read_text())
        rows.append(r)
    order = {"smollm2-135m": 0, "qwen2.5-0.5b": 1, "qwen2.5-1.5b": 2}
    rows.sort(key=lambda r: order.get(r["model"], 9))
    out = ["| model | n | ROUGE-1 | ROUGE-2 | ROUGE-L | echo rate | copy rate | empty rate | words | TTFT p50 (s) "
           "| total p50 (s) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['model']} | {r['n']} | {r['rouge1']:.3f} | {r['rouge2']:.3f} | {r['rougeL']:.3f} | "
                   f"{r['echo_rate']:.2f} | {r.get('copy_rate', float('nan')):.2f} | "
                   f"{r['empty_rate']:.2f} | {r['mean_words']:.0f} | {r['ttft_p50_s']:.2f} | "
                   f"{r['total_p50_s']:.2f} |")
    if rows:
        m = rows[0]["machine"]
        out.append("")
        out.append(f"Machine: {m['cpu']}, {m['cores']} cores, {rows[0]['n_threads']} threads. Command per row: "
                   f"`{rows[0]['command']}` (model varied); per-sample scores in `results/quality/` (no texts: "
                   f"DialogSum is non-commercial).")
    return "\n".join(out)


def demo_table() -> str:
    out = ["| model | task | n | TTFT p50 (s) | total p50 (s) | total max (s) |", "|---|---|---|---|---|---|"]
    cmd = ""
    for path in sorted((HERE / "demo").glob("*.jsonl")):
        events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        meta = json.loads((path.with_suffix(".json")).read_text()) if path.with_suffix(".json").exists() else {}
        cmd = meta.get("command", cmd)
        for task in ("notification", "catch_up", "replies"):
            timings = [e[task]["timings"] for e in events if e[task]["timings"]["total_s"] > 0]
            if not timings:
                continue
            model = events[0][task]["model"]
            out.append(f"| {model} | {task} | {len(timings)} | "
                       f"{statistics.median(t['ttft_s'] for t in timings):.2f} | "
                       f"{statistics.median(t['total_s'] for t in timings):.2f} | "
                       f"{max(t['total_s'] for t in timings):.2f} |")
    if cmd:
        out.append("")
        out.append(f"Command: `{cmd}` (JSON lines in `results/demo/`).")
    return "\n".join(out)


def pii_table() -> str:
    path = HERE / "privacy" / "pii-presidio-synth-v2.json"
    if not path.exists():
        return "(no reference run yet)"
    r = json.loads(path.read_text())
    out = ["| entity | precision | recall | F2 | tokens (tp / fp / fn) |", "|---|---|---|---|---|"]
    for name, sc in [*r["per_entity"].items(), ("**overall**", r["overall"])]:
        out.append(f"| {name} | {sc['precision']:.3f} | {sc['recall']:.3f} | {sc['f2']:.3f} | "
                   f"{sc['tp']} / {sc['fp']} / {sc['fn']} |")
    out.append("| Presidio vanilla (published) | 0.685 | 0.603 | 0.618 | |")
    out.append("")
    out.append(f"Command: `glassmate eval pii --data ../shared/data/pii/presidio_synth_dataset_v2.json --json` "
               f"(n={r['n']}; JSON in `results/privacy/`).")
    return "\n".join(out)


def bench_table() -> str:
    """The latest catalog-wide run (all models, 2 threads) and the quick SmolLM2 run."""
    out = []
    for name in ("catalog-2threads", "quick-smollm2-135m"):
        path = HERE / "bench" / name / "bench.json"
        if not path.exists():
            continue
        r = json.loads(path.read_text())
        if not out:
            out += ["| model | scenario | TTFT p50 (s) | end-to-end p50 (s) | end-to-end p95 (s) | decode tok/s |",
                    "|---|---|---|---|---|---|"]
            for model, entry in r["models"].items():
                top = entry["by_threads"][str(r["summary"][model]["threads"])]
                for scen, sc in top["scenarios"].items():
                    dec = "–" if sc["decode_tok_s"] is None else f"{sc['decode_tok_s']:.1f}"
                    out.append(f"| {model} | {scen} | {sc['ttft_p50_s']:.2f} | {sc['total_p50_s']:.2f} | "
                               f"{sc['total_p95_s']:.2f} | {dec} |")
            out += ["", "| run | model | glassmate/raw decode | glassmate/raw TTFT | speedup vs transformers "
                        "| incremental/cold TTFT | decode / bandwidth ceiling | peak RSS (MB) |",
                    "|---|---|---|---|---|---|---|---|"]
        for model, sm in r["summary"].items():
            top = r["models"][model]["by_threads"][str(sm["threads"])]
            speed = sm.get("speedup_vs_transformers")
            out.append(f"| {name} | {model} | {sm['decode_ratio_vs_raw']:.2f} | {sm['ttft_ratio_vs_raw']:.2f} | "
                       f"{'–' if speed is None else f'{speed:.1f}×'} | {sm['incremental_ttft_ratio']:.3f} | "
                       f"{100 * sm['decode_fraction_of_ceiling']:.0f} % of {sm['decode_ceiling_tok_s']:.0f} tok/s | "
                       f"{top['peak_rss_mb']:.0f} |")
        m = r["machine"]
        out.append(f"| | *{name}: `{r['command']}` — {m['cpu']}, {m['cores']} cores, read bandwidth "
                   f"{m['read_gbs']:.1f} GB/s* | | | | | | |")
    return "\n".join(out) if out else "(no reference run yet)"


def faithfulness_table() -> str:
    rows = [json.loads(p.read_text()) for p in sorted((HERE / "quality").glob("guard-*.json"))]
    if not rows:
        return "(no reference run yet)"
    rows.sort(key=lambda r: (r["model"], r["guard"]))
    out = ["| model | guard | n | unsupported (shown) | guard acted | of which extractive | ROUGE-L | total p50 (s) |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['model']} | {'on' if r['guard'] else 'off'} | {r['n']} | "
                   f"{100 * r['unsupported_rate']:.0f} % | {100 * r['guard_rate']:.0f} % | "
                   f"{100 * r['extractive_rate']:.0f} % | {r['rougeL']:.3f} | {r['total_p50_s']:.2f} |")
    out += ["", f"Command per row: `{rows[0]['command']}` (model and `--guard/--no-guard` varied); per-sample "
                f"scores in `results/quality/guard-*.json`."]
    return "\n".join(out)


def quantize_table() -> str:
    out = []
    for path in sorted((HERE / "quantize").glob("*/report.json")):
        r = json.loads(path.read_text())
        out += ["| variant | runtime | size (MB) | peak RSS (MB) | load (s) | prefill tok/s 1t / 2t | decode tok/s "
                "1t / 2t | decode / ceiling | perplexity | ROUGE-L | JSON valid |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for v in r["variants"]:
            out.append(f"| {v['name']} | {v['runtime']} | {v['size_bytes'] / 1e6:.0f} | {v['peak_rss_mb']:.0f} | "
                       f"{v['load_s']:.2f} | {v['prefill_tok_s_1t']:.0f} / {v['prefill_tok_s']:.0f} | "
                       f"{v['decode_tok_s_1t']:.1f} / {v['decode_tok_s']:.1f} | "
                       f"{100 * v['decode_fraction_of_ceiling']:.0f} % of {v['decode_ceiling_tok_s']:.0f} | "
                       f"{v['perplexity']:.3f} | {v['rouge_l']:.3f} | {100 * v['json_valid_rate']:.0f} % |")
        m = r["machine"]
        rel = path.parent.relative_to(HERE.parent)
        out += ["", f"`{r['command']}` — {m['cpu']}, {m['cores']} cores, read bandwidth {m['read_gbs']:.1f} GB/s, "
                    f"whole run {r['wall_s'] / 60:.1f} min. Perplexity: {r['data']['perplexity']}; ROUGE-L: "
                    f"{r['data']['rouge']}; JSON valid: {r['data']['json']}. Plots: `{rel}/quality_vs_size.png`, "
                    f"`{rel}/quality_vs_speed.png`.", ""]
    return "\n".join(out).rstrip() if out else "(no reference run yet)"


def adapters_table() -> str:
    rows = [json.loads(p.read_text()) for p in sorted((HERE / "quality").glob("dev100-*.json"))]
    if not rows:
        return "(no reference run yet)"
    order = {"smollm2-135m": 0, "qwen2.5-0.5b": 1, "qwen2.5-1.5b": 2}
    rows.sort(key=lambda r: (order.get(r["model"], 9), r["adapter"] or ""))
    out = ["| model | catch_up adapter | size (MB) | n | ROUGE-1 | ROUGE-2 | ROUGE-L | unsupported (shown) | "
           "guard acted | words | total p50 (s) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        size = (r["model_bytes"] + r["adapter_bytes"]) / 1e6
        out.append(f"| {r['model']} | {r['adapter'] or '–'} | {size:.0f} | {r['n']} | {r['rouge1']:.3f} | "
                   f"{r['rouge2']:.3f} | {r['rougeL']:.3f} | {100 * r['unsupported_rate']:.0f} % | "
                   f"{100 * r['guard_rate']:.0f} % | {r['mean_words']:.0f} | {r['total_p50_s']:.2f} |")
    m = rows[0]["machine"]
    out += ["", f"DialogSum dev rows 0–99 (no adapter saw them). Machine: {m['cpu']}, {m['cores']} cores. Command per "
                f"row: `{rows[0]['command']}` (model and `--adapters/--no-adapters` varied); per-sample scores in "
                f"`results/quality/dev100-*.json`."]
    return "\n".join(out)


def replies_table() -> str:
    rows = [json.loads(p.read_text()) for p in sorted((HERE / "quality").glob("replies-*.json"))]
    if not rows:
        return "(no reference run yet)"
    out = ["| model | replies adapter | ranked | MRR | P@1 | drafted | distinct-1 | distinct-2 | pairwise similarity | "
           "identical (shown) | identical (first answer) | JSON valid | drafts p50 (s) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['model']} | {r['adapter'] or '–'} | {r['n_ranked']} | {r['mrr']:.3f} | {r['p_at_1']:.2f} | "
                   f"{r['n_drafted']} | {r['distinct_1']:.2f} | {r['distinct_2']:.2f} | "
                   f"{r['pairwise_similarity']:.2f} | {100 * r['identical_rate']:.0f} % | "
                   f"{100 * r['first_answer_identical_rate']:.0f} % | {100 * r['json_valid_rate']:.0f} % | "
                   f"{r['drafts_p50_s']:.2f} |")
    out += ["", f"Chance MRR with 10 candidates is 0.293. Command per row: `{rows[0]['command']}` (model and "
                "`--adapters/--no-adapters` varied)."]
    return "\n".join(out)


def _guesses(r: dict) -> str:
    """Answers shown, right / wrong, each with how many the wearer heard as a guess; – for runs made before."""
    if "right_sure" not in r:
        return "–"
    return f"{r['right_sure'] + r['right_hedged']} ({r['right_hedged']}) / {r['wrong_sure'] + r['wrong_hedged']} " \
        f"({r['wrong_hedged']})"


def ask_table() -> str:
    rows = [json.loads(p.read_text()) for p in sorted((HERE / "ask").glob("*.json")) if not p.name.startswith("bench")]
    benches = [json.loads(p.read_text()) for p in sorted((HERE / "ask").glob("bench-*.json"))]
    if not rows and not benches:
        return "(no reference run yet)"
    out = []
    if rows:
        out += ["| set | model | checked by | messages read | n (unanswerable) | recall@5 | MAP@5 | answer EM | "
                "answer F1 | citation precision | abstain precision | abstain recall | "
                "shown right / wrong (as a guess) | reading (TTFT) p50 (s) | p50 (s) | p90 (s) |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(rows, key=lambda r: (Path(r["data"]).name != "questions.jsonl", Path(r["data"]).name,
                                             r["model"], bool(r.get("verifier")), r.get("show", 5))):
            out.append(f"| `{Path(r['data']).name}` | {r['model']} | {r.get('verifier') or '–'} | {r.get('show', 5)} | "
                       f"{r['n']} "
                       f"({r['n_unanswerable']}) | {r['recall_at_5']:.2f} | {r['map_at_5']:.2f} | "
                       f"{r['answer_em']:.2f} | {r['answer_f1']:.2f} | {r['citation_precision']:.2f} | "
                       f"{r['abstain_precision']:.2f} | {r['abstain_recall']:.2f} | {_guesses(r)} | "
                       f"{r.get('ttft_p50_s') or float('nan'):.2f} | {r['p50_s']:.2f} | {r['p90_s']:.2f} |")
        out += ["", "Commands: " + "; ".join(f"`{r['command']}`" for r in rows) +
                ". Per-question rows in `results/ask/*.json`.", ""]
    for b in benches:
        ttft = f" (the model reading the messages: {b['ttft_p50_s']:.2f} s)" if b.get("ttft_p50_s") else ""
        p90 = f" (reading: {b['ttft_p90_s']:.2f} s)" if b.get("ttft_p90_s") else ""
        gain = f"; of which the question-gain and word-gain checks p50 {b['question_gain_p50_s']:.2f} s (p90 " \
            f"{b['question_gain_p90_s']:.2f} s) on the answers that reach it" if b.get("question_gain_p50_s") else ""
        if b.get("verifier"):
            gain = f"; the question-gain check p50 {b['question_gain_p50_s']:.2f} s, {b['verifier']} checking " \
                f"the answer against its message p50 {b['support_p50_s']:.2f} s (p90 {b['support_p90_s']:.2f} s) " \
                f"on the answers that reach them; the model's next likeliest answers weighed for " \
                f"{b['next_answers_weighed']} questions"
        samples = b.get("samples") or []
        first = " — the first question, which also reads the system prompt once" if samples and max(
            samples, key=lambda r: r["s"]) is samples[0] else ""
        build = b.get("machine", {}).get("runtime_build", "")
        # the same machine with llama.cpp built for fewer CPU features: what the build is worth, apart from the CPU
        built = ", llama.cpp built for AVX2 without AVX-512 (`CMAKE_ARGS=\"-DGGML_NATIVE=OFF -DGGML_AVX512=OFF " \
            "-DGGML_AVX_VNNI=OFF\"`)" if build and "AVX512 = 1" not in build and "AVX2 = 1" in build else ""
        checked = f", answers checked by {b['verifier']}" if b.get("verifier") else ", no verifier"
        out += [f"With {b['messages']} messages in the store ({b['model']}{checked}, {b['threads']} threads{built}): "
                f"indexing "
                f"{b['embed_per_s']:.0f} messages/s, one new message indexed in {b['index_one_message_ms']:.0f} ms; "
                f"sealed vectors {b['sealed_vectors_mb_per_10k']:.1f} MB and faiss {b['faiss_ram_mb_per_10k']:.1f} MB "
                f"of RAM per 10k messages; retrieval p50 {b['retrieval_p50_ms']:.0f} ms; ask end to end p50 "
                f"{b['ask_p50_s']:.2f} s{ttft}, p90 {b['ask_p90_s']:.2f} s{p90}, max {b['ask_max_s']:.2f} s{first}"
                f"{gain}; "
                f"over {b['questions']} questions. `{b['command']}`", ""]
    return "\n".join(out).rstrip()


def commands_table() -> str:
    rows = [json.loads(p.read_text()) for p in sorted((HERE / "commands").glob("*.json"))]
    if not rows:
        return "(no reference run yet)"
    out = ["| set | n | parser | intent accuracy | slot F1 | rules / LLM / none | p50 per utterance |",
           "|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["data"] != "tests/fixtures/commands/utterances.jsonl", r["data"])):
        src = r["by_source"]
        parser = "rules + LLM fallback" if r["llm"] else "rules only"
        model = f" ({r['model']}, {r['threads']} threads)" if r.get("model") else ""
        p50 = f"{r['p50_ms']:.2f} ms" if r["p50_ms"] < 100 else f"{r['p50_ms'] / 1000:.2f} s"
        out.append(f"| `{Path(r['data']).name}` | {r['n']} | {parser}{model} | {r['intent_accuracy']:.1%} | "
                   f"{r['slot_f1']:.3f} | {src.get('rules', 0)} / {src.get('llm', 0)} / {src.get('none', 0)} | "
                   f"{p50} |")
    out += ["", "Commands: " + "; ".join(f"`{r['command']}`" for r in rows) + "."]
    return "\n".join(out)


def federated_table() -> str:
    runs = [json.loads(p.read_text()) | {"_dir": p.parent.name}
            for p in sorted((HERE / "federated").glob("*/fl.json"))]
    runs = [r for r in runs if "final" in r]
    if not runs:
        return "(no reference run yet)"
    runs.sort(key=lambda r: float(r["config"].get("noise-multiplier", 0)))
    out = ["| noise z | ε (δ=1e-5) | ppl base | ppl global | ppl personalized | Δ personalized vs base | "
           "MRR base | MRR global | MRR personalized | personal from global | canary exposure, bits (bare model) | "
           "MB through the gate / client / round | wall |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        f = r["final"]
        eps = "∞ (no DP)" if f.get("epsilon") is None else f"{f['epsilon']:.2f}"
        audit = f.get("canary_audit") or {}
        canary = f"{audit['exposure_mean']:.2f} ({audit['base_exposure_mean']:.2f})" if audit else "–"
        delta = f["ppl_personalized"] / f["ppl_base"] - 1
        chosen = r["rounds"][-1].get("personal_from_global")
        chosen = "–" if chosen is None else f"{chosen:.0%}"
        g = f"{f['ppl_global']:.1f}" if f["ppl_global"] < 1e4 else f"{f['ppl_global']:.1e}"
        out.append(f"| {f['noise_multiplier']} | {eps} | {f['ppl_base']:.1f} | {g} | "
                   f"{f['ppl_personalized']:.1f} | {delta:+.1%} | {f['mrr_base']:.3f} | {f['mrr_global']:.3f} | "
                   f"{f['mrr_personalized']:.3f} | {chosen} | {canary} | {f['bytes_up_per_client_round'] / 1e6:.1f} | "
                   f"{f.get('wall_s', 0) / 60:.0f} min |")
    for r in runs:
        b = HERE / "federated" / r["_dir"] / "noise_budget.json"
        if b.exists():
            nb = json.loads(b.read_text())
            out += ["", f"Clients per round for noise multiplier {nb['noise_multiplier']} to cost < "
                        f"{nb['tolerance']:.0%} perplexity (its noise, std z·C·√R/m, put on the noise-free global "
                        f"adapter of `{r['_dir']}`, {nb['held_out']} held-out replies, noise-free ppl "
                        f"{nb['ppl_noise_free']:.1f}): **{nb['clients_needed'] or 'more than 50 000'}**. "
                        + ", ".join(f"m={x['clients_per_round']}: " + (f"ppl ×{1 + x['cost']:.1e}" if x["cost"] > 9
                                                                       else f"{x['cost']:+.1%}") for x in nb["rows"])
                        + f". `glassmate fl noise-budget results/federated/{r['_dir']} --noise "
                          f"{nb['noise_multiplier']}`"]
    commands = [HERE / "federated" / r["_dir"] / "command.txt" for r in runs]
    out += ["", "Commands: " + "; ".join(f"`{c.read_text().strip()}`" for c in commands if c.exists()) + "."]
    return "\n".join(out)


BLOCKS = {"quality": quality_table, "demo": demo_table, "pii": pii_table, "bench": bench_table,
          "quantize": quantize_table, "faithfulness": faithfulness_table, "adapters": adapters_table,
          "replies": replies_table, "ask": ask_table, "commands": commands_table, "federated": federated_table}


def render_readme(text: str) -> str:
    for name, fn in BLOCKS.items():
        pattern = re.compile(rf"(<!-- results:{name} -->\n)(?:.*?\n)?(<!-- /results:{name} -->)", re.S)
        text = pattern.sub(lambda m, fn=fn: m.group(1) + fn() + "\n" + m.group(2), text)
    return text


if __name__ == "__main__":
    if "--write" in sys.argv:
        README.write_text(render_readme(README.read_text()))
    else:
        for name, fn in BLOCKS.items():
            print(f"## {name}\n{fn()}\n")
