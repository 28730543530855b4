"""The benchmark's own smoke test: it runs end to end on the real model and writes what it promises.
No timing is asserted here; the numbers live in results/bench/."""

from __future__ import annotations

import json

import pytest

from lab.bench import BenchConfig, pct, profile_warning, read_bandwidth_gbs, run_bench, summarize_samples


def test_percentiles_and_rates():
    samples = [{"ttft_s": t, "total_s": t + 1.0, "prefill_tokens": 100, "completion_tokens": 11}
               for t in (0.1, 0.2, 0.3, 0.4)]
    s = summarize_samples(samples)
    assert s["ttft_p50_s"] == 0.25 and abs(s["ttft_p95_s"] - pct([0.1, 0.2, 0.3, 0.4], 0.95)) < 1e-12
    assert s["decode_tok_s"] == 10.0
    assert s["prefill_tok_s"] == pytest.approx((100 / 0.2 + 100 / 0.3) / 2)  # median of per-run rates


def test_profiles_warn_when_a_model_does_not_fit():
    from device.catalog import get_model

    big = get_model("qwen2.5-1.5b").size
    assert "pi-zero2" in profile_warning("qwen2.5-1.5b", big, "pi-zero2")
    assert profile_warning("qwen2.5-1.5b", big, "pi5") is None
    assert profile_warning("qwen2.5-1.5b", big, None) is None


def test_bandwidth_is_measured():
    assert read_bandwidth_gbs(mb=64, repeats=2) > 0.1


def test_bench_smoke(tmp_path, model_spec):
    cfg = BenchConfig(models=[model_spec.name], threads=[2], runs=1, out=tmp_path, transformers=True,
                      profile="pi-zero2")
    report = run_bench(cfg)
    written = {p.name for p in tmp_path.iterdir()}
    assert {"bench.json", "bench.md", "latency.png", "decode_vs_ceiling.png"} <= written
    data = json.loads((tmp_path / "bench.json").read_text())
    summary = data["summary"][model_spec.name]
    assert {"decode_ratio_vs_raw", "ttft_ratio_vs_raw", "speedup_vs_transformers", "incremental_ttft_ratio",
            "decode_fraction_of_ceiling"} <= set(summary)
    scenarios = data["models"][model_spec.name]["by_threads"]["2"]["scenarios"]
    assert set(scenarios) == {"notify", "catchup", "replies", "polish", "incremental"}
    assert all(s["samples"] and s["total_p50_s"] > 0 for s in scenarios.values())
    wrapper = data["models"][model_spec.name]["by_threads"]["2"]["wrapper"]
    assert wrapper["glassmate"]["samples"][0]["prompt_tokens"] == wrapper["raw_llama_cpp"]["samples"][0][
        "prompt_tokens"]  # same prompt tokens on both sides
    assert data["machine"]["read_gbs"] > 0 and data["versions"]["llama-cpp-python"] == "0.3.36"
    assert report["warnings"] == []  # SmolLM2 fits the Pi Zero 2's memory budget
