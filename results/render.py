"""Render the generated blocks of README.md and docs/**/*.md from the reference runs in results/.

The JSON in results/ is the source of truth: every measured number on the front page and the topic pages sits
between a `<!-- results:NAME -->` line and its `<!-- /results:NAME -->` line and is written here, never by hand.

    python results/render.py              # print every block (or: render.py NAME ... for some)
    python results/render.py --write      # rewrite the stale blocks in README.md and docs/**/*.md
    python results/render.py --check      # exit 1 naming each stale block (and unknown ones); writes nothing

The `cli` block (docs/cli.md) runs `glassmate ... --help` in-process and so needs the project's environment
(`.venv/bin/python results/render.py`); where the CLI cannot be imported that block is left as it is, with a
warning, and everything else is still rendered and checked.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CATALOG = ROOT / "models" / "catalog.toml"

ORDER = {"smollm2-135m": 0, "qwen2.5-0.5b": 1, "qwen2.5-1.5b": 2}


class Unavailable(Exception):
    """A block that cannot be rendered in this environment (e.g. the CLI is not importable): left as it is."""


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _catalog() -> dict:
    return tomllib.loads(CATALOG.read_text())


def _pct(x: float, digits: int = 0) -> str:
    return f"{100 * x:.{digits}f} %"


def _n(x: int) -> str:
    """10000 → '10 000'."""
    return f"{x:,}".replace(",", " ")


def _secs(x: float) -> str:
    return f"{x:.2f} s"


def _flags(machine: dict) -> str:
    return ", ".join(machine.get("flags", [])) or "CPU flags not recorded"


def _is_avx2_build(b: dict) -> bool:
    """A run whose llama.cpp was built for AVX2 without AVX-512 (on cores that have it): not the native build."""
    build = b.get("machine", {}).get("runtime_build", "")
    return bool(build) and "AVX512 = 1" not in build and "AVX2 = 1" in build


# ---------------------------------------------------------------------------------------------------- catalog


def catalog_table() -> str:
    cat = _catalog()
    roles = {}
    for role in ("default", "ask", "verify"):
        name = cat.get(role)
        if name:
            base, _, variant = name.partition("@")
            roles.setdefault(base, []).append(f"{role}" + (f" (as `@{variant}`)" if variant else ""))
    out = ["| name | upstream file | params · quant | size (MB) | license | carried by (PyPI, pinned) | role |",
           "|---|---|---|---|---|---|---|"]
    for name, m in cat["models"].items():
        parts = m["parts"]
        if len(parts) == 1:
            carrier = f"`{parts[0]['package']}=={parts[0]['version']}`"
        else:
            carrier = f"`{parts[0]['package']}` … `{parts[-1]['package']}` ({len(parts)} wheels) " \
                      f"`=={parts[0]['version']}`"
        out.append(f"| `{name}` | {m['upstream']} `{m['file']}` | {m['params']} · {m['quant']} | "
                   f"{m['size'] / 1e6:.0f} | {m['license']} | {carrier} | {', '.join(roles.get(name, [])) or '–'} |")
    out += ["", "Generated from `models/catalog.toml` (sizes are the upstream files', checked by sha256 on fetch)."]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------- summaries


def _quality_rows() -> list[dict]:
    rows = [_load(p) for p in sorted((HERE / "quality").glob("dialogsum-dev-*.json"))]
    rows.sort(key=lambda r: ORDER.get(r["model"], 9))
    return rows


def quality_table() -> str:
    rows = _quality_rows()
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


def default_model_note() -> str:
    """Why the catalog's default is the default: the copy/echo rates, ROUGE-L and latency of `quality`."""
    rows = _quality_rows()
    default = _catalog()["default"]
    d = next((r for r in rows if r["model"] == default), None)
    if d is None:
        return f"(no summaries run of the default model `{default}` yet)"
    others = [r for r in rows if r is not d]

    def copies(r: dict) -> str:
        return f"{round(r['copy_rate'] * r['n'])} of {r['n']}"

    best = max(rows, key=lambda r: r["rougeL"])
    fastest = min(rows, key=lambda r: r["total_p50_s"])
    against = [f"{copies(r)} for `{r['model']}`" + (f" (which also echoed its instructions in "
                                                     f"{round(r['echo_rate'] * r['n'])})" if r["echo_rate"] > 0 else "")
               for r in others]
    if len(against) > 1:
        against = [", ".join(against[:-1]) + " and " + against[-1]]
    parts = [f"`{default}` replayed the chat in {copies(d)} summaries, against {''.join(against) or 'no other run'}."]
    parts.append(f"Its ROUGE-L is {d['rougeL']:.3f}" + (" (the best of the catalog)." if best is d else
                                                        f" (best: `{best['model']}`, {best['rougeL']:.3f})."))
    parts.append(f"A catch-up summary takes it {_secs(d['ttft_p50_s'])} to the first token and "
                 f"{_secs(d['total_p50_s'])} in all (p50, {d['n_threads']} threads)" +
                 ("" if fastest is d else f", against {_secs(fastest['ttft_p50_s'])} / "
                                          f"{_secs(fastest['total_p50_s'])} for `{fastest['model']}`") + ".")
    return " ".join(parts)


def faithfulness_table() -> str:
    rows = [_load(p) for p in sorted((HERE / "quality").glob("guard-*.json"))]
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


def _adapter_rows() -> list[dict]:
    rows = [_load(p) for p in sorted((HERE / "quality").glob("dev100-*.json"))]
    rows.sort(key=lambda r: (ORDER.get(r["model"], 9), r["adapter"] or ""))
    return rows


def adapters_table() -> str:
    rows = _adapter_rows()
    if not rows:
        return "(no reference run yet)"
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


def adapters_note() -> str:
    """Each adapted model against itself bare and against the largest bare model, from the `adapters` rows."""
    rows = _adapter_rows()
    bare = {r["model"]: r for r in rows if not r["adapter"]}
    if not bare:
        return "(no reference run yet)"
    big = max(bare.values(), key=lambda r: r["model_bytes"])
    out = []
    for r in rows:
        if not r["adapter"] or r["model"] not in bare:
            continue
        b = bare[r["model"]]
        size = r["model_bytes"] + r["adapter_bytes"]
        out.append(f"- `{r['model']}` with its {r['adapter_bytes'] / 1e6:.1f} MB catch-up adapter "
                   f"({size / 1e6:.0f} MB in all, {size / big['model_bytes']:.0%} of `{big['model']}`'s file): "
                   f"ROUGE-L {b['rougeL']:.3f} → **{r['rougeL']:.3f}** ({r['rougeL'] / b['rougeL']:.1f}× its bare "
                   f"score; bare `{big['model']}`: {big['rougeL']:.3f}); the guard acted on "
                   f"{_pct(b['guard_rate'])} → {_pct(r['guard_rate'])} of summaries; {b['mean_words']:.0f} → "
                   f"{r['mean_words']:.0f} words; {_secs(b['total_p50_s'])} → {_secs(r['total_p50_s'])} per summary "
                   f"(p50).")
    return "\n".join(out)


def replies_table() -> str:
    rows = [_load(p) for p in sorted((HERE / "quality").glob("replies-*.json"))]
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
    out += ["", f"Chance MRR with 10 candidates is {_chance_mrr(10):.3f}. Command per row: `{rows[0]['command']}` "
                "(model and `--adapters/--no-adapters` varied)."]
    return "\n".join(out)


def _meaning_runs() -> list[tuple[str, dict]]:
    """(label, result) of each meaning-set run: `results/meaning/<label>.json`, in the order of their labels."""
    return [(p.stem, _load(p)) for p in sorted((HERE / "meaning").glob("*.json")) if not p.stem.startswith("factcc")]


def meaning_table() -> str:
    runs = _meaning_runs()
    if not runs:
        return "(no reference run yet)"
    out = ["| run | model | part | n | summaries misread | notifications misread | of which shown as written | "
           "summaries missing the point | summary p50 (s) | notification p50 (s) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for label, r in runs:
        out.append(f"| {label} | {r['model']} | {r['part']} | {r['n']} | {_pct(r['summary_error_rate'], 1)} | "
                   f"{_pct(r['notification_error_rate'], 1)} | {_pct(r.get('notification_verbatim_rate', 0.0))} | "
                   f"{_pct(r['summary_miss_rate'], 1)} | {r['summary_p50_s']:.2f} | {r['notification_p50_s']:.2f} |")
    out += ["", "Command per row: in each file's `command` (`results/meaning/<run>.json`, every shown text and "
                "what was judged wrong in it); the `before` rows ran the pipeline of commit 7390fcd."]
    return "\n".join(out)


def factcc_table() -> str:
    rows = [_load(p) for p in sorted((HERE / "meaning").glob("factcc-*.json"))]
    if not rows:
        return "(no reference run yet)"
    out = ["| split | model | planted (n) | references (n) | margin (nats) | prior weight | caught | false alarms | "
           "caught: negation | caught: participants | caught: roles | p50 (s) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        k = r["catch_by_kind"]
        out.append(f"| {r['split']} | {r['model']} | {r['n_planted']} | {r['n_clean']} | {r['margin']:g} | "
                   f"{r['prior_weight']:g} | {_pct(r['catch_rate'], 1)} | {_pct(r['false_alarm_rate'], 1)} | "
                   f"{_pct(k.get('negation', 0))} | {_pct(k.get('participants', 0))} | {_pct(k.get('roles', 0))} | "
                   f"{r['p50_s']:.2f} |")
    out += ["", f"Command per row: `{rows[-1]['command']}` (split and settings varied); per-row deltas (no "
                "DialogSum text) in `results/meaning/factcc-*.json`."]
    return "\n".join(out)


def _reading_paths() -> list[Path]:
    """The blind readings of the reply set in the order they were made: the first, then its follow-ups."""
    return sorted((HERE / "replies").glob("reading-tune*.json"), key=lambda p: (p.stem != "reading-tune", p.name))


def replies_reading_table() -> str:
    """The reply set's tune part, per drafting variant: the judge's numbers beside a blind reading of every draft
    (one row per variant and reading; each reading compared its variants side by side)."""
    readings = _reading_paths()
    if not readings:
        return "(no reference run yet)"
    out = ["| reading | variant | what it does | judge: usable | judge: served | read: sendable drafts | read: on "
           "request threads | read: on news threads | read: threads with one to send | p50 / p90 (s) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for n, path in enumerate(readings, 1):
        reading = _load(path)
        for arm, r in reading["arms"].items():
            run = _load(HERE / "replies" / f"tune-{arm}.json")
            judged = run["set"]
            out.append(f"| {n} | `{arm}` | {run['pipeline']} | {_pct(judged['usable_rate'], 1)} | "
                       f"{_pct(judged['served_rate'])} | {r['send']}/{r['drafts']} | "
                       f"{r['request_send']}/{r['request_drafts']} | {r['news_send']}/{r['news_drafts']} | "
                       f"{r['threads_with_a_sendable_draft']}/{reading['threads']} | "
                       f"{judged['latency_p50_s']:.1f} / {judged['latency_p90_s']:.1f} |")
        notes.append(f"reading {n} (`{path.name}`): {reading['threads']} threads ({reading['excluded']} left out), "
                     f"by {reading['reader']}")
    out += ["", f"Model `{run['set']['model']}`, 2 threads, {run['set']['n_threads']} tune threads. Each draft was "
                f"asked \"{reading['question']}\" — " + "; ".join(notes) + ". Runs and every verdict with its "
                "reason: `results/replies/`."]
    return "\n".join(out)


def _chance_mrr(k: int) -> float:
    return sum(1 / i for i in range(1, k + 1)) / k


# ---------------------------------------------------------------------------------------------------- demo


def _demo_runs() -> list[tuple[Path, list[dict], dict]]:
    runs = []
    for path in sorted((HERE / "demo").glob("*.jsonl")):
        events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        meta = _load(path.with_suffix(".json")) if path.with_suffix(".json").exists() else {}
        runs.append((path, events, meta))
    return runs


def _demo_stats(events: list[dict], task: str) -> dict | None:
    timings = [e[task]["timings"] for e in events if e[task]["timings"]["total_s"] > 0]
    if not timings:
        return None
    return {"model": events[0][task]["model"], "n": len(timings),
            "ttft_p50": statistics.median(t["ttft_s"] for t in timings),
            "total_p50": statistics.median(t["total_s"] for t in timings),
            "total_max": max(t["total_s"] for t in timings)}


def demo_table() -> str:
    """For docs/latency.md (its gallery link is relative to docs/)."""
    out = ["| model | task | n | TTFT p50 (s) | total p50 (s) | total max (s) |", "|---|---|---|---|---|---|"]
    cmd = ""
    for _path, events, meta in _demo_runs():
        cmd = meta.get("command", cmd)
        for task in ("notification", "catch_up", "replies"):
            s = _demo_stats(events, task)
            if s:
                out.append(f"| {s['model']} | {task} | {s['n']} | {s['ttft_p50']:.2f} | {s['total_p50']:.2f} | "
                           f"{s['total_max']:.2f} |")
    if cmd:
        out.append("")
        out.append(f"Command: `{cmd}` (JSON lines in `results/demo/`; every thread as the wearer read it: "
                   f"[gallery](gallery.md)).")
    return "\n".join(out)


def _tap_runs() -> list[dict]:
    return [_load(p) for p in sorted((HERE / "bench").glob("tap-*.json"))]


def tap_wait_table() -> str:
    """`glassmate bench-glance`: what the wearer waits for after tapping a card, prepared in the background or not."""
    runs = _tap_runs()
    if not runs:
        return "(no bench-glance run yet)"
    out = ["| model | tap after the card (s) | prepare | n | tap → catch-up p50 / p90 (s) | "
           "tap → drafts p50 / p90 (s) |", "|---|---|---|---|---|---|"]
    notes = []
    for r in sorted(runs, key=lambda r: (ORDER.get(r["model"], 9), r["after_s"])):
        for arm in ("off", "on"):
            row = r["summary"].get(arm)
            if row:
                out.append(f"| {r['model']} | {r['after_s']:g} | {arm} | {row['n']} | "
                           f"{row['to_summary_s']['p50']:.2f} / {row['to_summary_s']['p90']:.2f} | "
                           f"{row['to_chips_s']['p50']:.2f} / {row['to_chips_s']['p90']:.2f} |")
        notes.append(f"`{r['command']}` ({r['threads']} threads, {r['machine'].get('cpu') or 'CPU'})")
    out.append("")
    out.append("Sample inbox, arms alternating run by run in one process, each with a fresh assistant over the same "
               "engine. Commands: " + "; ".join(notes) + ".")
    return "\n".join(out)


def _fence(text: str) -> str:
    """A fenced block that the text itself cannot close."""
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}text\n{text}\n{ticks}"


def gallery() -> str:
    """Every burst of the committed demo runs: notification, catch-up and the three drafts, as the demo showed them."""
    runs = _demo_runs()
    if not runs:
        return "(no demo run yet)"
    out = []
    for path, events, meta in runs:
        models = sorted({e[t]["model"] for e in events for t in ("notification", "catch_up", "replies")})
        adapters = sorted({str(e[t]["adapter"]) for e in events for t in ("notification", "catch_up", "replies")
                           if e[t].get("adapter")} | ({str(meta["adapters"])} if meta.get("adapters") else set()))
        machine = meta.get("machine", {})
        out += [f"## `{path.relative_to(ROOT)}`", "",
                f"- Command: `{meta.get('command', 'none recorded')}`",
                f"- Model: {', '.join(f'`{m}`' for m in models)}",
                f"- Adapters: {', '.join(f'`{a}`' for a in adapters) if adapters else 'none recorded'}",
                f"- Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores"
                + (f"; whole run {meta['wall_s']:.0f} s" if meta.get("wall_s") else ""),
                f"- {len(events)} bursts over {len({e['thread'] for e in events})} threads, in the order they "
                f"arrived", ""]
        for i, e in enumerate(events, 1):
            note, summary, replies = e["notification"], e["catch_up"], e["replies"]
            new = e.get("new_messages")
            lines = [f"🔔 {note['text']}", ""]
            if summary.get("flags"):
                lines += [f"⚠ treat with care: {', '.join(summary['flags'])}", ""]
            chunks = f" ({summary['chunks']} chunks)" if summary.get("chunks", 1) > 1 else ""
            lines += [f"Catch-up{chunks}: {summary['text']}", "", "Replies:"]
            lines += [f"  {k}. {r}" for k, r in enumerate(replies["replies"], 1)]
            out += [f"### {i}. {e['thread']}" + (f" · {new} new" if new else ""), "", _fence("\n".join(lines)), "",
                    f"<sub>notification {_secs(note['timings']['total_s'])} · catch-up "
                    f"{_secs(summary['timings']['total_s'])} · replies {_secs(replies['timings']['total_s'])} "
                    f"(first token {_secs(note['timings']['ttft_s'])} / {_secs(summary['timings']['ttft_s'])} / "
                    f"{_secs(replies['timings']['ttft_s'])})</sub>", ""]
    return "\n".join(out).rstrip()


# ---------------------------------------------------------------------------------------------------- privacy


def pii_table() -> str:
    path = HERE / "privacy" / "pii-presidio-synth-v2.json"
    if not path.exists():
        return "(no reference run yet)"
    r = _load(path)
    out = ["| entity | precision | recall | F2 | tokens (tp / fp / fn) |", "|---|---|---|---|---|"]
    for name, sc in [*r["per_entity"].items(), ("**overall**", r["overall"])]:
        out.append(f"| {name} | {sc['precision']:.3f} | {sc['recall']:.3f} | {sc['f2']:.3f} | "
                   f"{sc['tp']} / {sc['fp']} / {sc['fn']} |")
    # Presidio's own published scores on this data set, for comparison (not a run of ours)
    out.append("| Presidio vanilla (published) | 0.685 | 0.603 | 0.618 | |")
    out.append("")
    out.append(f"Command: `glassmate eval pii --data ../shared/data/pii/presidio_synth_dataset_v2.json --json` "
               f"(n={r['n']}; JSON in `results/privacy/`).")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------- latency


def _bench_runs() -> list[tuple[str, dict]]:
    runs = []
    for name in ("catalog-2threads", "quick-smollm2-135m"):
        path = HERE / "bench" / name / "bench.json"
        if path.exists():
            runs.append((name, _load(path)))
    return runs


def bench_table() -> str:
    """The latest catalog-wide run (all models, 2 threads) and the quick SmolLM2 run."""
    out = []
    for name, r in _bench_runs():
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


def q8_lever_table() -> str:
    """The GGUF type of the default model, Q4_K_M (the catalog file) against Q8_0 built from it, in one run."""
    path = HERE / "bench" / "q8-vs-q4-1.5b" / "bench.json"
    if not path.exists():
        return "(no run yet)"
    r = _load(path)
    out = ["| model | scenario | TTFT p50 (s) | end-to-end p50 (s) | prefill tok/s | decode tok/s |",
           "|---|---|---|---|---|---|"]
    for model, entry in r["models"].items():
        for scen, sc in entry["by_threads"][str(r["summary"][model]["threads"])]["scenarios"].items():
            dec = "–" if sc["decode_tok_s"] is None else f"{sc['decode_tok_s']:.1f}"
            out.append(f"| {model} | {scen} | {sc['ttft_p50_s']:.2f} | {sc['total_p50_s']:.2f} | "
                       f"{sc['prefill_tok_s']:.0f} | {dec} |")
    m = r["machine"]
    out += ["", f"`{r['command']}` (folder copied to `results/bench/q8-vs-q4-1.5b/`) — {m['cpu']}, {m['cores']} "
                f"cores, read bandwidth {m['read_gbs']:.1f} GB/s."]
    return "\n".join(out)


def bench_baselines_table() -> str:
    """glassmate against raw llama.cpp and plain transformers on the same cold catch-up prompt."""
    runs = _bench_runs()
    if not runs:
        return "(no reference run yet)"
    name, r = runs[0]
    out = ["| model | prompt tokens | TTFT p50 (s): glassmate / raw llama.cpp / transformers fp32 | "
           "decode tok/s: glassmate / raw llama.cpp / transformers fp32 |", "|---|---|---|---|"]
    for model, entry in r["models"].items():
        top = entry["by_threads"][str(r["summary"][model]["threads"])]
        w = top.get("wrapper") or {}
        g, raw, tf = w.get("glassmate"), w.get("raw_llama_cpp"), entry.get("transformers")
        if not g or not raw:
            continue
        tokens = g["samples"][0].get("prompt_tokens", "?") if g.get("samples") else "?"
        tf_ttft = f"{tf['ttft_p50_s']:.2f}" if tf else "–"
        tf_dec = f"{tf['decode_tok_s']:.1f}" if tf else "–"
        out.append(f"| {model} | {tokens} | {g['ttft_p50_s']:.2f} / {raw['ttft_p50_s']:.2f} / {tf_ttft} | "
                   f"{g['decode_tok_s']:.1f} / {raw['decode_tok_s']:.1f} / {tf_dec} |")
    m = r["machine"]
    out += ["", f"The cold catch-up prompt of `results/bench/{name}` (`{r['command']}`; {m['cpu']}, {m['cores']} "
                f"cores; transformers: the same GGUF dequantized to fp32, `generate`, greedy)."]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------- quantize


def quantize_table() -> str:
    """For docs/quantization.md (its plot links are relative to docs/)."""
    out = []
    for path in sorted((HERE / "quantize").glob("*/report.json")):
        r = _load(path)
        exact = {v["base"]: v["perplexity"] for v in r["variants"] if v["name"].endswith("@F32")}
        out += ["| variant | runtime | size (MB) | peak RSS (MB) | load (s) | prefill tok/s 1t / 2t | decode tok/s "
                "1t / 2t | decode / ceiling | perplexity | vs F32 | ROUGE-L | JSON valid |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for v in r["variants"]:
            ref = exact.get(v["base"])
            delta = "–" if ref is None else f"{v['perplexity'] / ref - 1:+.2%}"
            out.append(f"| {v['name']} | {v['runtime']} | {v['size_bytes'] / 1e6:.0f} | {v['peak_rss_mb']:.0f} | "
                       f"{v['load_s']:.2f} | {v['prefill_tok_s_1t']:.0f} / {v['prefill_tok_s']:.0f} | "
                       f"{v['decode_tok_s_1t']:.1f} / {v['decode_tok_s']:.1f} | "
                       f"{100 * v['decode_fraction_of_ceiling']:.0f} % of {v['decode_ceiling_tok_s']:.0f} | "
                       f"{v['perplexity']:.3f} | {delta} | {v['rouge_l']:.3f} | {100 * v['json_valid_rate']:.0f} % |")
        m = r["machine"]
        rel = path.parent.relative_to(ROOT)
        ranked = sorted((v for v in r["variants"] if v["base"] in exact and not v["name"].endswith("@F32")),
                        key=lambda v: v["perplexity"])
        out += ["", f"`{r['command']}` — {m['cpu']}, {m['cores']} cores, read bandwidth {m['read_gbs']:.1f} GB/s, "
                    f"whole run {r['wall_s'] / 60:.1f} min. Perplexity: {r['data']['perplexity']}; ROUGE-L: "
                    f"{r['data']['rouge']} ({r['variants'][0]['n_summaries']} summaries); JSON valid: "
                    f"{r['data']['json']} ({r['variants'][0]['n_json']} drafts). Plots: "
                    f"[quality vs size](../{rel}/quality_vs_size.png), "
                    f"[quality vs speed](../{rel}/quality_vs_speed.png).", "",
                "Closest to the exact model first (perplexity against F32): " + ", ".join(
                    f"`{v['name']}` {v['perplexity'] / exact[v['base']] - 1:+.1%} ({v['size_bytes'] / 1e6:.0f} MB)"
                    for v in ranked) + ".", ""]
    return "\n".join(out).rstrip() if out else "(no reference run yet)"


# ---------------------------------------------------------------------------------------------------- ask


def _ask_evals() -> list[tuple[Path, dict]]:
    rows = [(p, _load(p)) for p in sorted((HERE / "ask").glob("*.json")) if not p.name.startswith("bench")]
    rows.sort(key=lambda pr: (Path(pr[1]["data"]).name != "questions.jsonl", Path(pr[1]["data"]).name,
                              pr[1]["model"], bool(pr[1].get("verifier")), pr[1].get("show", 5)))
    return rows


def _ask_benches() -> list[dict]:
    """The bench-ask runs: with the verifier first, the native llama.cpp build before the AVX2-only one."""
    benches = [_load(p) for p in sorted((HERE / "ask").glob("bench-*.json"))]
    return sorted(benches, key=lambda b: (not b.get("verifier"), _is_avx2_build(b)))


def _guesses(r: dict) -> str:
    """Answers shown, right / wrong, each with how many the wearer heard as a guess; – for runs made before."""
    if "right_sure" not in r:
        return "–"
    return f"{r['right_sure'] + r['right_hedged']} ({r['right_hedged']}) / {r['wrong_sure'] + r['wrong_hedged']} " \
        f"({r['wrong_hedged']})"


def ask_table() -> str:
    rows = [r for _p, r in _ask_evals()]
    if not rows:
        return "(no reference run yet)"
    out = ["| set | model | checked by | messages read | n (unanswerable) | recall@5 | MAP@5 | answer EM | "
           "answer F1 | citation precision | abstain precision | abstain recall | "
           "shown right / wrong (as a guess) | reading (TTFT) p50 (s) | p50 (s) | p90 (s) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| `{Path(r['data']).name}` | {r['model']} | {r.get('verifier') or '–'} | {r.get('show', 5)} | "
                   f"{r['n']} "
                   f"({r['n_unanswerable']}) | {r['recall_at_5']:.2f} | {r['map_at_5']:.2f} | "
                   f"{r['answer_em']:.2f} | {r['answer_f1']:.2f} | {r['citation_precision']:.2f} | "
                   f"{r['abstain_precision']:.2f} | {r['abstain_recall']:.2f} | {_guesses(r)} | "
                   f"{r.get('ttft_p50_s') or float('nan'):.2f} | {r['p50_s']:.2f} | {r['p90_s']:.2f} |")
    m = rows[0]["machine"]
    out += ["", f"Machine: {m['cpu']}, {m['cores']} cores ({_flags(m)}). Commands: " +
            "; ".join(f"`{r['command']}`" for r in rows) + ". Per-question rows in `results/ask/*.json`."]
    return "\n".join(out)


def ask_bench_lines() -> str:
    benches = _ask_benches()
    if not benches:
        return "(no reference run yet)"
    out = []
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
        # the same machine with llama.cpp built for fewer CPU features: what the build is worth, apart from the CPU
        built = ", llama.cpp built for AVX2 without AVX-512 (`CMAKE_ARGS=\"-DGGML_NATIVE=OFF -DGGML_AVX512=OFF " \
            "-DGGML_AVX_VNNI=OFF\"`)" if _is_avx2_build(b) else ""
        checked = f", answers checked by {b['verifier']}" if b.get("verifier") else ", no verifier"
        out += [f"- With {_n(b['messages'])} messages in the store ({b['model']}{checked}, {b['threads']} threads"
                f"{built}): indexing "
                f"{b['embed_per_s']:.0f} messages/s, one new message indexed in {b['index_one_message_ms']:.0f} ms; "
                f"sealed vectors {b['sealed_vectors_mb_per_10k']:.1f} MB and faiss {b['faiss_ram_mb_per_10k']:.1f} MB "
                f"of RAM per 10k messages; retrieval p50 {b['retrieval_p50_ms']:.0f} ms; ask end to end p50 "
                f"{b['ask_p50_s']:.2f} s{ttft}, p90 {b['ask_p90_s']:.2f} s{p90}, max {b['ask_max_s']:.2f} s{first}"
                f"{gain}; "
                f"over {b['questions']} questions. `{b['command']}`"]
    m = benches[0]["machine"]
    out += ["", f"Machine: {m['cpu']}, {m['cores']} cores ({_flags(m)})."]
    return "\n".join(out)


def _handled(r: dict) -> tuple[int, int]:
    """Questions handled (answered with F1 ≥ 0.5, or abstained on when unanswerable) and wrong answers shown."""
    s = r["samples"]
    handled = sum((x["answerable"] and not x["abstained"] and x["f1"] >= 0.5) or
                  (not x["answerable"] and x["abstained"]) for x in s)
    wrong = sum(not x["abstained"] and (not x["answerable"] or x["f1"] < 0.5) for x in s)
    return handled, wrong


def _ask_pairs() -> list[tuple[dict, dict]]:
    """(no verifier, verifier) runs of the catalog's ask model on each question set, reading 5 messages."""
    ask_model = _catalog().get("ask")
    runs = [r for _p, r in _ask_evals() if r["model"] == ask_model and r.get("show", 5) == 5]
    by_set: dict[str, dict[bool, dict]] = {}
    for r in runs:
        by_set.setdefault(Path(r["data"]).name, {})[bool(r.get("verifier"))] = r
    return [(v[False], v[True]) for v in by_set.values() if False in v and True in v]


def ask_verifier_table() -> str:
    pairs = _ask_pairs()
    if not pairs:
        return "(no reference run yet)"

    def arrow(a: float, b: float) -> str:
        return f"{a:.2f} → **{b:.2f}**" if round(b, 2) > round(a, 2) else f"{a:.2f} → {b:.2f}"

    out = ["| set | n (unanswerable) | handled / wrong shown, no verifier | with the verifier | answer F1 | "
           "citation precision | abstention precision | abstention recall |", "|---|---|---|---|---|---|---|---|"]
    for a, b in pairs:
        ha, wa = _handled(a)
        hb, wb = _handled(b)
        out.append(f"| `{Path(a['data']).name}` | {a['n']} ({a['n_unanswerable']}) | {ha} / {wa} | {hb} / {wb} | "
                   f"{arrow(a['answer_f1'], b['answer_f1'])} | "
                   f"{arrow(a['citation_precision'], b['citation_precision'])} | "
                   f"{arrow(a['abstain_precision'], b['abstain_precision'])} | "
                   f"{arrow(a['abstain_recall'], b['abstain_recall'])} |")
    out += ["", f"`{pairs[0][1]['model']}` reading {pairs[0][1].get('show', 5)} messages, `--verifier none` → "
                f"checked by `{pairs[0][1]['verifier']}` (min_support {pairs[0][1].get('min_support')}). Handled: "
                f"answered with F1 ≥ 0.5, or abstained on when unanswerable. Abstention precision: of the questions "
                f"abstained on, the share that were unanswerable; recall: of the unanswerable questions, the share "
                f"abstained on. Rows from the runs in the `ask` table."]
    return "\n".join(out)


def ask_hedged_table() -> str:
    pairs = _ask_pairs()
    rows = [b for _a, b in pairs if "right_sure" in b]
    if not rows:
        return "(no reference run yet)"
    out = ["| set | right answers shown (as a guess) | wrong answers shown (as a guess) | "
           "wrong answers heard as sure |", "|---|---|---|---|"]
    for r in rows:
        out.append(f"| `{Path(r['data']).name}` | {r['right_sure'] + r['right_hedged']} ({r['right_hedged']}) | "
                   f"{r['wrong_sure'] + r['wrong_hedged']} ({r['wrong_hedged']}) | {r['wrong_sure']} |")
    held = [r for r in rows if Path(r["data"]).name != "questions.jsonl"]
    if held:
        wrong = sum(r["wrong_sure"] + r["wrong_hedged"] for r in held)
        right = sum(r["right_sure"] + r["right_hedged"] for r in held)
        out += ["", f"Over the {len(held)} held-out sets {sum(r['wrong_hedged'] for r in held)} of {wrong} wrong "
                    f"answers are heard as guesses with their words, and {sum(r['right_hedged'] for r in held)} of "
                    f"{right} right ones are too (the answer is still said first). Hedged below P(yes) "
                    f"{rows[0].get('sure_support')} (`AskConfig.sure_support`)."]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------- glasses


def commands_table() -> str:
    rows = [_load(p) for p in sorted((HERE / "commands").glob("*.json"))]
    if not rows:
        return "(no reference run yet)"
    out = ["| set | n | parser | intent accuracy | slot precision | slot recall | slot F1 | rules / LLM / none | "
           "p50 per utterance |", "|---|---|---|---|---|---|---|---|---|"]
    rows.sort(key=lambda r: (r["data"] != "tests/fixtures/commands/utterances.jsonl", r["data"]))
    for r in rows:
        src = r["by_source"]
        parser = "rules + LLM fallback" if r["llm"] else "rules only"
        model = f" ({r['model']}, {r['threads']} threads)" if r.get("model") else ""
        p50 = f"{r['p50_ms']:.2f} ms" if r["p50_ms"] < 100 else f"{r['p50_ms'] / 1000:.2f} s"
        out.append(f"| `{Path(r['data']).name}` | {r['n']} | {parser}{model} | {r['intent_accuracy']:.1%} | "
                   f"{r['slot_precision']:.3f} | {r['slot_recall']:.3f} | {r['slot_f1']:.3f} | "
                   f"{src.get('rules', 0)} / {src.get('llm', 0)} / {src.get('none', 0)} | {p50} |")
    notes = [f"`{Path(r['data']).name}`: {r['note']}" for r in rows if r.get("note")]
    out += ["", "Commands: " + "; ".join(f"`{r['command']}`" for r in rows) + "." +
            (" Notes: " + "; ".join(notes) + "." if notes else "")]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------- federated


def _fl_runs() -> list[dict]:
    """The 10-client runs with personalization (the scale runs, dp-*, have their own table)."""
    runs = [_load(p) | {"_dir": p.parent.name} for p in sorted((HERE / "federated").glob("*/fl.json"))]
    runs = [r for r in runs if "final" in r and not r["_dir"].startswith("dp-")]
    runs.sort(key=lambda r: float(r["config"].get("noise-multiplier", 0)))
    return runs


def federated_table() -> str:
    runs = _fl_runs()
    if not runs:
        return "(no reference run yet)"
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
    audits = [r["final"]["canary_audit"] for r in runs if r["final"].get("canary_audit")]
    if audits:
        out += ["", f"Canary exposure: the mean over the planted secrets of log2({audits[0]['candidates'] + 1}) − "
                    f"log2(rank among {audits[0]['candidates']} random candidates); the maximum possible is "
                    f"{audits[0]['max_possible']:.2f} bits."]
    for r in runs:
        b = HERE / "federated" / r["_dir"] / "noise_budget.json"
        if b.exists():
            nb = _load(b)
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


def _scale_runs() -> list[dict]:
    runs = [_load(p) | {"_dir": p.parent.name} for p in sorted((HERE / "federated").glob("dp-*/fl.json"))]
    runs = [r for r in runs if "final" in r]
    runs.sort(key=lambda r: (float(r["config"].get("noise-multiplier", 0)), -int(r["config"]["clients-per-round"])))
    return runs


def dp_scale_table() -> str:
    runs = _scale_runs()
    if not runs:
        return "(no reference run yet)"
    free = {int(r["config"]["clients-per-round"]): r["final"]["ppl_global"] for r in runs
            if float(r["config"].get("noise-multiplier", 0)) == 0}
    budget_path = next((HERE / "federated" / r["_dir"] / "noise_budget.json" for r in runs
                        if (HERE / "federated" / r["_dir"] / "noise_budget.json").exists()), None)
    budget = _load(budget_path) if budget_path else None
    predicted = {x["clients_per_round"]: x for x in budget["rows"]} if budget else {}
    ref = max(free) if free else None
    against = f"vs no noise at {ref}" if ref else "no noise-free run yet"
    out = ["| clients per round | noise z | ε (δ = 1e-5) | clients evaluating | held-out ppl, bare | "
           f"ppl, global adapter | vs bare | cost of the noise ({against}) | noise budget's prediction | wall |",
           "|---|---|---|---|---|---|---|---|---|---|"]

    def rel(x: float) -> str:
        return f"×{x:.1e}" if x > 10 else f"{x - 1:+.1%}"
    for r in runs:
        f, c = r["final"], r["config"]
        m, z = int(c["clients-per-round"]), float(c.get("noise-multiplier", 0))
        g = f["ppl_global"]
        eps = "∞ (no DP)" if f.get("epsilon") is None else f"{f['epsilon']:.2f}"
        evaluating = r["rounds"][-1].get("evaluated")
        same = evaluating == int(c.get("eval-clients", 0) or evaluating)
        cost = "–" if z == 0 or ref is None or not same else rel(g / free[ref])
        pred = predicted.get(m) if z and budget and z == budget["noise_multiplier"] else None
        pred_s = "–" if pred is None else (f"×{1 + pred['cost']:.1e}" if pred["cost"] > 9 else f"{pred['cost']:+.1%}")
        gs = f"{g:.1f}" if g < 1e4 else f"{g:.1e}"
        out.append(f"| {m} | {z} | {eps} | {evaluating} | {f['ppl_base']:.1f} | {gs} | {rel(g / f['ppl_base'])} | "
                   f"{cost} | {pred_s} | {f.get('wall_s', 0) / 60:.0f} min |")
    c = runs[0]["config"]
    out += ["", f"SmolLM2-135M, {c['num-rounds']} rounds, every client in every round (no amplification by "
                f"sampling), {c['local-steps']} local steps of {c['batch-size']} replies at lr {c['lr']}, LoRA r = "
                f"{c['lora-r']} on the attention of the last {c['lora-top-layers']} layers, updates clipped to "
                f"{c['clipping-norm']}; the Ubuntu IRC users with {c['min-messages']}+ replies from rank "
                f"{c['first-client']} on; evaluated on the first {c['eval-clients']} clients' held-out replies "
                f"({c['eval-examples']} each, never trained on; a run with fewer clients evaluates on those it "
                f"has, and its bare perplexity differs). Wall times on 2 cores, runs sharing them with other "
                f"work."]
    if budget:
        out += ["", f"The prediction: the noise {budget['rounds']} rounds at z = {budget['noise_multiplier']} add "
                    f"(std z·C·√R/m) put on the noise-free global adapter of `{budget_path.parent.name}` "
                    f"(`glassmate fl noise-budget results/federated/{budget_path.parent.name} --noise "
                    f"{budget['noise_multiplier']}`); clients per round for < {budget['tolerance']:.0%}: "
                    f"**{budget['clients_needed'] or 'more than 50 000'}**."]
    script = HERE / "federated" / "dp-scale.sh"
    if script.exists():
        out += ["", f"All of it: `{script.relative_to(ROOT)}`."]
    return "\n".join(out)


def wearer_life_table() -> str:
    path = HERE / "learning" / "wearer-life" / "life.json"
    if not path.exists():
        return "(no reference run yet)"
    doc = _load(path)
    days = doc["config"]["days"]
    out = ["| arm | " + " | ".join(f"day {d}" for d in range(1, days + 1)) + " |",
           "|---|" + "---|" * days]
    for arm, ds in doc["summary"].items():
        out.append(f"| {arm}: drafts picked | " + " | ".join(f"{100 * d['pick_rate']:.0f}% ({d['closeness']:.2f})"
                                                          for d in ds) + " |")
    for arm, ds in doc["summary"].items():
        out.append(f"| {arm}: ppl of the true reply | " + " | ".join(f"{d['ppl']:.0f}" for d in ds) + " |")
    learned = [r for r in doc["rows"] if r.get("learned")]
    decisions = ", ".join(f"wearer {r['wearer']} {r['arm']} after day {r['day']}: {r['learned']['decision']}"
                          + (f" ({math.exp(r['learned']['loss_before']):.0f} → "
                             f"{math.exp(r['learned']['loss_after']):.0f})" if "loss_after" in r["learned"] else "")
                          for r in learned)
    shown = sum(d["shown"] for d in next(iter(doc["summary"].values())))
    out += ["", f"{doc['wearers']} wearers (the Ubuntu IRC users with the most replies), {days} days each, "
                f"{doc['config']['shown_per_day']} replies a day drafted for ({shown} per arm); a draft is picked "
                f"when its word F1 with the real reply is ≥ {doc['config']['pick_at']} (in brackets: the mean F1 "
                f"of the best draft); learning after every {doc['config']['learn_every']} days. "
                f"Federated start: `{doc['federated_run']}`. The learning runs (perplexity of the 20 most recent "
                f"sends, held out, under the adapter in effect → under the new one): {decisions}.",
            "", f"`{doc['command']}`"]
    return "\n".join(out)


def fl_drafts_note() -> str:
    paths = sorted((HERE / "federated").glob("*/personal-drafts-*.json"))
    if not paths:
        return "(no reference run yet)"
    out = []
    for p in paths:
        d = _load(p)
        out.append(f"`{d['command']}` loads the personalized adapter of client {d['client']} of "
                   f"`{d['run']}` ({d['adapter_bytes'] / 1e6:.1f} MB GGUF LoRA on `{d['model']}`) into the llama.cpp "
                   f"engine and compares it with the bare model on {d['n']} of the wearer's held-out conversations: "
                   f"perplexity of what they really replied {d['ppl_true_reply_bare']:.0f} → "
                   f"{d['ppl_true_reply_personal']:.0f}; {d['drafts_changed']} of {d['n']} sets of drafts changed "
                   f"(`{p.relative_to(ROOT)}`).")
    return "\n\n".join(out)


# ---------------------------------------------------------------------------------------------------- glance


def glance_table() -> str:
    """README.md's results at a glance: one row per capability, linking the docs/ page with the full table."""
    rows: list[tuple[str, str, str, str]] = []
    cat = _catalog()
    for _path, events, _meta in _demo_runs()[:1]:
        stats = [_demo_stats(events, t) for t in ("notification", "catch_up", "replies")]
        if all(stats):
            rows.append((f"`make demo`, default model (`{stats[0]['model']}`)",
                         "notification / catch-up / three drafts, total p50 (max)",
                         " / ".join(f"{s['total_p50']:.1f} s ({s['total_max']:.1f})" for s in stats),
                         "[latency](docs/latency.md), [gallery](docs/gallery.md)"))
    taps = [r for r in _tap_runs() if {"off", "on"} <= r["summary"].keys()]
    if taps:
        t = max(taps, key=lambda r: r["after_s"])
        off, on = t["summary"]["off"]["to_chips_s"]["p50"], t["summary"]["on"]["to_chips_s"]["p50"]
        rows.append((f"The tap, default model (`{t['model']}`, sample inbox, tap {t['after_s']:g} s after the card)",
                     "tap → three drafts on the display, p50: made at the tap → prepared when the card showed",
                     f"{off:.1f} s → **{on:.1f} s**", "[latency](docs/latency.md#the-tap)"))
    adapted = _adapter_rows()
    if adapted:
        bare = {r["model"]: r for r in adapted if not r["adapter"]}
        parts = []
        for model in sorted(bare, key=lambda m: ORDER.get(m, 9)):
            withs = [r for r in adapted if r["model"] == model and r["adapter"]]
            parts.append(f"{model} {bare[model]['rougeL']:.3f}" +
                         (f" → **{withs[0]['rougeL']:.3f}**" if withs else " (no adapter)"))
        rows.append((f"Catch-up summaries (DialogSum dev, {adapted[0]['n']} unseen dialogues)",
                     "ROUGE-L without → with the catch-up adapter", "; ".join(parts),
                     "[models](docs/models.md#task-adapters)"))
    meaning = dict(_meaning_runs())
    before, after = (next((r for label, r in meaning.items() if label.startswith(f"untouched-{i}")), None)
                     for i in (1, 2))
    if before and after:
        value = (f"{_pct(before['summary_error_rate'], 1)} → **{_pct(after['summary_error_rate'], 1)}** / "
                 f"{_pct(before['notification_error_rate'], 1)} → **{_pct(after['notification_error_rate'], 1)}**")
        pb, pa = before.get("person_reading"), after.get("person_reading")
        if pb and pa:
            value += (f"; read by a person: {len(pb['summaries_misread'])}/{pb['summaries_judged']} → "
                      f"**{len(pa['summaries_misread'])}/{pa['summaries_judged']}** / "
                      f"{len(pb['notifications_misread'])}/{pb['notifications_judged']} → "
                      f"**{len(pa['notifications_misread'])}/{pa['notifications_judged']}**")
        rows.append((f"Meaning of what is shown (meaning set, untouched part, {after['n']} chats, `{after['model']}`)",
                     "summaries / notifications stating a misreading (the set's patterns): before → after",
                     value, "[assistant](docs/assistant.md#meaning-who-does-what)"))
    report = HERE / "meaning" / "factcc-report-qwen2.5-1.5b.json"
    if report.exists():
        r = _load(report)
        rows.append((f"Contrast check on planted errors (DialogSum, {r['n_planted']} + {r['n_clean']})",
                     "planted errors caught / references as written flagged",
                     f"{_pct(r['catch_rate'], 1)} / {_pct(r['false_alarm_rate'], 1)}",
                     "[assistant](docs/assistant.md#the-contrast-check-on-planted-errors)"))
    guards = [_load(p) for p in sorted((HERE / "quality").glob("guard-*.json"))]
    g = {r["guard"]: r for r in guards if r["model"] == "smollm2-135m"}
    if False in g and True in g:
        rows.append((f"Faithfulness guard (smollm2-135m, {g[True]['n']} dialogues)",
                     "summaries shown with an unsupported name, number or time: guard off → on",
                     f"{_pct(g[False]['unsupported_rate'])} → {_pct(g[True]['unsupported_rate'])}",
                     "[assistant](docs/assistant.md#faithfulness-guard)"))
    readings = [_load(p) for p in _reading_paths()]
    if readings:
        arms: dict[str, dict] = {}
        for reading in readings:  # a variant read twice keeps its latest reading
            arms |= reading["arms"]
        first, last = next(iter(readings[0]["arms"])), list(readings[-1]["arms"])[-1]
        a, b = arms[first], arms[last]
        rows.append((f"Reply drafts read blind (reply set, tune part, {readings[0]['threads']} non-scam threads, "
                     f"`{_load(HERE / 'replies' / f'tune-{last}.json')['set']['model']}`)",
                     "drafts a person would send as is; threads with one to send: first pipeline → default",
                     f"{a['send']}/{a['drafts']} → **{b['send']}/{b['drafts']}**; "
                     f"{arms[first]['threads_with_a_sendable_draft']}/{readings[0]['threads']} → "
                     f"**{arms[last]['threads_with_a_sendable_draft']}/{readings[-1]['threads']}**",
                     "[assistant](docs/assistant.md#reply-drafts)"))
    reps = sorted((_load(p) for p in sorted((HERE / "quality").glob("replies-*.json"))),
                  key=lambda r: (ORDER.get(r["model"], 9), r["adapter"] or ""))
    if reps:
        rows.append(("Reply drafts (IRC dev)", f"MRR of the true reply among 10 (chance {_chance_mrr(10):.3f})",
                     "; ".join(f"{r['model']} {'+ adapter ' if r['adapter'] else ''}{r['mrr']:.3f}" for r in reps),
                     "[assistant](docs/assistant.md#reply-drafts)"))
    for path in sorted((HERE / "quantize").glob("*/report.json")):
        r = _load(path)
        exact = {v["base"]: v for v in r["variants"] if v["name"].endswith("@F32")}
        base = next((v for v in r["variants"] if v["name"] in exact), None)
        if base:
            f32 = exact[base["name"]]
            rows.append((f"Quantization ({base['name']})", "the catalog file against the exact F32 model: "
                         "perplexity, size",
                         f"{base['perplexity'] / f32['perplexity'] - 1:+.2%} at {base['size_bytes'] / 1e6:.0f} MB "
                         f"(F32: {f32['size_bytes'] / 1e6:.0f} MB)", "[quantization](docs/quantization.md)"))
    bench = _bench_runs()
    if bench:
        _name, r = bench[0]
        dec = [s["decode_ratio_vs_raw"] for s in r["summary"].values()]
        inc = [s["incremental_ttft_ratio"] for s in r["summary"].values()]
        rows.append(("Engine overhead; incremental catch-up (catalog, 2 threads)",
                     "decode speed glassmate / raw llama.cpp; first token after one more message / cold",
                     f"{min(dec):.2f}–{max(dec):.2f}; {min(inc):.3f}–{max(inc):.3f}", "[latency](docs/latency.md)"))
    pii = HERE / "privacy" / "pii-presidio-synth-v2.json"
    if pii.exists():
        o = _load(pii)["overall"]
        rows.append(("PII detection (presidio synth v2)", "token precision / recall (F2)",
                     f"{o['precision']:.3f} / {o['recall']:.3f} ({o['f2']:.3f})",
                     "[privacy](docs/privacy.md#pii-detection-and-redaction)"))
    pairs = _ask_pairs()
    if pairs:
        metrics = ("answer_f1", "citation_precision", "abstain_precision", "abstain_recall")
        project = [b for _a, b in pairs if Path(b["data"]).name == "questions.jsonl"]
        held = [b for _a, b in pairs if Path(b["data"]).name != "questions.jsonl"]
        for label, chosen in (("project set", project), (f"{len(held)} held-out sets, lowest–highest", held)):
            if not chosen:
                continue
            vals = [f"{min(r[k] for r in chosen):.2f}" + ("" if len(chosen) == 1 else
                                                         f"–{max(r[k] for r in chosen):.2f}") for k in metrics]
            n = sum(r["n"] for r in chosen)
            rows.append((f"Ask my messages, {label} ({n} questions)",
                         f"`{chosen[0]['model']}` checked by `{chosen[0]['verifier']}`: answer F1 · citation "
                         f"precision · abstention precision / recall",
                         f"{vals[0]} · {vals[1]} · {vals[2]} / {vals[3]}", "[ask](docs/ask.md#evaluation)"))
    native = [b for b in _ask_benches() if b.get("verifier") == cat.get("verify") and not _is_avx2_build(b)]
    if native:
        b = native[0]
        rows.append((f"Ask with {_n(b['messages'])} messages stored",
                     f"`{b['model']}` checked by `{b['verifier']}`: end to end p50 / p90 (retrieval p50)",
                     f"{b['ask_p50_s']:.2f} s / {b['ask_p90_s']:.2f} s ({b['retrieval_p50_ms']:.0f} ms)",
                     "[ask](docs/ask.md#latency)"))
    cmds = {Path(r["data"]).name: r for r in (_load(p) for p in sorted((HERE / "commands").glob("*.json")))}
    if "heldout.jsonl" in cmds and "free_phrasing.jsonl" in cmds:
        h, f = cmds["heldout.jsonl"], cmds["free_phrasing.jsonl"]
        rows.append(("Voice commands", "intent accuracy: rules on the held-out set (its first-contact misses since "
                     "fixed) / LLM fallback on free phrasing",
                     f"{h['intent_accuracy']:.1%} / {f['intent_accuracy']:.1%}",
                     "[glasses](docs/glasses.md#commands-as-function-calls)"))
    fl = _fl_runs()
    if fl:
        f0 = fl[0]["final"]
        dp = [r["final"] for r in fl if r["final"].get("epsilon") is not None]
        value = f"{f0['ppl_base']:.0f} → {f0['ppl_personalized']:.1f} (no DP)"
        if dp:
            value += f"; → {dp[-1]['ppl_personalized']:.1f} at ε = {dp[-1]['epsilon']:.2f}"
        rows.append((f"Federated personalization ({fl[0]['config']['num-clients']} wearers, "
                     f"{fl[0]['config']['num-rounds']} rounds, smollm2-135m)",
                     "held-out perplexity of the true reply: bare → personalized", value,
                     "[federated](docs/federated.md)"))
    out = ["| capability | measured | result | more |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    out += ["", "Every number here and on the topic pages in `docs/` is generated from the reference runs in "
                "`results/` by `python results/render.py --write`; the machine and command of each run are on its "
                "page. The dated logs in `docs/experiments/` are not regenerated."]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------- CLI


CLI_ENV = {"COLUMNS": "100", "LINES": "50", "TERMINAL_WIDTH": "100", "NO_COLOR": "1", "TERM": "dumb",
           "_TYPER_FORCE_DISABLE_TERMINAL": "1", "FORCE_COLOR": "", "PY_COLORS": "", "GITHUB_ACTIONS": ""}


def cli_reference() -> str:
    """`glassmate --help` and the help of every command group and command, run in-process at a fixed width."""
    saved = {k: os.environ.get(k) for k in CLI_ENV}
    for k, v in CLI_ENV.items():  # typer reads some of these when it is imported
        if v:
            os.environ[k] = v
        else:
            os.environ.pop(k, None)
    try:
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        try:
            import click
            from typer.main import get_command
            from typer.testing import CliRunner

            from device.cli import app
        except Exception as e:  # any import failure leaves the block as it is
            raise Unavailable(f"cannot import the CLI (device.cli:app): {type(e).__name__}: {e}") from e
        runner = CliRunner()
        env = {k: (v or None) for k, v in CLI_ENV.items()}
        paths: list[list[str]] = []

        def walk(cmd: click.Command, path: list[str]) -> None:
            paths.append(path)
            if isinstance(cmd, click.Group):
                for name, sub in sorted(cmd.commands.items()):
                    if not sub.hidden:
                        walk(sub, [*path, name])

        walk(get_command(app), [])
        out = []
        for path in paths:
            result = runner.invoke(app, [*path, "--help"], prog_name="glassmate", env=env, color=False)
            if result.exit_code != 0:
                raise Unavailable(f"`glassmate {' '.join(path)} --help` exited {result.exit_code}: "
                                  f"{result.output[-300:]}")
            text = "\n".join(line.rstrip() for line in result.output.replace(str(ROOT), ".").splitlines()).strip("\n")
            title = " ".join(["glassmate", *path])
            out += [f"### `{title}`", "", _fence(text), ""]
        toc = ", ".join(f"[`{' '.join(['glassmate', *p])}`](#{_anchor(' '.join(['glassmate', *p]))})"
                        for p in paths[1:])
        return "\n".join([f"Commands: {toc}.", "", *out]).rstrip()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _anchor(title: str) -> str:
    """GitHub's heading anchor for a heading that is `title` in backticks."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


# ---------------------------------------------------------------------------------------------------- driver


BLOCKS: dict[str, Callable[[], str]] = {
    "catalog": catalog_table, "glance": glance_table, "default-model": default_model_note,
    "quality": quality_table, "faithfulness": faithfulness_table, "adapters": adapters_table,
    "adapters-note": adapters_note, "replies": replies_table, "replies-reading": replies_reading_table,
    "meaning": meaning_table, "factcc": factcc_table, "demo": demo_table, "gallery": gallery,
    "tap-wait": tap_wait_table, "q8-lever": q8_lever_table,
    "pii": pii_table, "bench": bench_table, "bench-baselines": bench_baselines_table, "quantize": quantize_table,
    "ask": ask_table, "ask-bench": ask_bench_lines, "ask-verifier": ask_verifier_table, "ask-hedged": ask_hedged_table,
    "commands": commands_table, "federated": federated_table, "dp-scale": dp_scale_table,
    "wearer-life": wearer_life_table, "fl-drafts": fl_drafts_note, "cli": cli_reference,
}

# a marker on a line of its own; a name in backticks in prose is not a block
BLOCK_RE = re.compile(r"^(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)^(<!-- /results:(?P=name) -->)$",
                      re.S | re.M)


def targets() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))] if DOCS.exists() else [README]


class Renderer:
    """Renders each block once per run; remembers which blocks could not be rendered and which are unknown."""

    def __init__(self) -> None:
        self.cache: dict[str, str | Unavailable] = {}
        self.unknown: list[tuple[Path, str]] = []

    def block(self, name: str) -> str | Unavailable:
        if name not in self.cache:
            try:
                self.cache[name] = BLOCKS[name]()
            except Unavailable as e:
                self.cache[name] = e
        return self.cache[name]

    def render(self, path: Path, text: str) -> tuple[str, list[str]]:
        """The text with its blocks rendered, and the names of the blocks that changed."""
        changed: list[str] = []

        def sub(m: re.Match) -> str:
            name = m.group("name")
            if name not in BLOCKS:
                self.unknown.append((path, name))
                return m.group(0)
            body = self.block(name)
            if isinstance(body, Unavailable):
                return m.group(0)
            new = body + "\n"
            if new != m.group("body"):
                changed.append(name)
            return m.group(1) + new + m.group(4)

        return BLOCK_RE.sub(sub, text), changed


def render_readme(text: str) -> str:
    """README.md's text with its blocks rendered (kept for callers of the earlier version)."""
    return Renderer().render(README, text)[0]


def main(argv: list[str]) -> int:
    write, check = "--write" in argv, "--check" in argv
    names = [a for a in argv if not a.startswith("-")]
    if not (write or check):
        for name in names or BLOCKS:
            if name not in BLOCKS:
                print(f"unknown block {name!r}; blocks: {', '.join(BLOCKS)}", file=sys.stderr)
                return 2
            try:
                print(f"## {name}\n{BLOCKS[name]()}\n")
            except Unavailable as e:
                print(f"## {name}\n(skipped: {e})\n")
        return 0
    r = Renderer()
    stale = []
    for path in targets():
        text = path.read_text()
        new, changed = r.render(path, text)
        if changed:
            stale += [f"{path.relative_to(ROOT)}: block {name}" for name in changed]
            if write:
                path.write_text(new)
    for name, e in r.cache.items():
        if isinstance(e, Unavailable):
            print(f"warning: block {name} left as it is: {e}", file=sys.stderr)
    for path, name in r.unknown:
        print(f"{path.relative_to(ROOT)}: unknown block {name!r} (not rendered by results/render.py)", file=sys.stderr)
    if check:
        for line in stale:
            print(f"stale: {line}")
        if stale or r.unknown:
            print("run `python results/render.py --write`" if stale else "", file=sys.stderr)
            return 1
        return 0
    for line in stale:
        print(f"rewrote: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
