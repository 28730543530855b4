"""`glassmate quantize …`: build GGUF and ONNX variants and measure them (a plugin of the device CLI).

Registered under the `glassmate.commands` entry point, so the glasses runtime never imports the build tools.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from device.catalog import CatalogError, human_size
from device.engines import EngineError
from quantize.gguf_variants import DEFAULT_TYPES, QuantizeError, build_gguf_variants, parse_types
from quantize.onnx_variants import build_onnx_variants, parse_precisions

app = typer.Typer(help="Build quantized variants (GGUF, ONNX Runtime) and the size/speed/quality report.",
                  no_args_is_help=True)
console = Console()
err = Console(stderr=True)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="catalog model to build from")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(1)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), console=err, transient=True)


def _show(specs, as_json: bool) -> None:
    rows = [{"name": s.name, "runtime": s.runtime, "precision": s.quant, "size": s.size, "sha256": s.sha256,
             "path": str(s.path)} for s in specs]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("variant", "runtime", "size", "sha256")
    for r in rows:
        table.add_row(r["name"], r["runtime"], human_size(r["size"]), r["sha256"][:16] + "…")
    console.print(table)


@app.command("gguf")
def gguf_cmd(model: ModelOpt = "smollm2-135m",
             types: Annotated[str, typer.Option(help="comma-separated llama.cpp types")] = ",".join(DEFAULT_TYPES),
             threads: Annotated[int, typer.Option("--threads", "-t")] = 2,
             force: Annotated[bool, typer.Option(help="rebuild variants that exist")] = False,
             as_json: JsonOpt = False) -> None:
    """Dequantize MODEL to an exact F32 GGUF, then requantize it with llama.cpp to each type (MODEL@TYPE)."""
    _build(lambda: parse_types(types),
           lambda kinds, on: build_gguf_variants(model, kinds, threads=threads, force=force, progress=on), as_json)


@app.command("onnx")
def onnx_cmd(model: ModelOpt = "smollm2-135m",
             precision: Annotated[str, typer.Option(help="comma-separated: fp32,int8,int4")] = "fp32,int8,int4",
             force: Annotated[bool, typer.Option(help="rebuild variants that exist")] = False,
             as_json: JsonOpt = False) -> None:
    """Export MODEL to an ONNX decoder with KV cache (MODEL@onnx-fp32) and quantize it (…@onnx-int8, …@onnx-int4)."""
    _build(lambda: parse_precisions(precision),
           lambda kinds, on: build_onnx_variants(model, kinds, force=force, progress=on), as_json)


def _build(parse, build, as_json: bool) -> None:
    """Parse the requested kinds, build them under a progress bar (stage i of n), then list what exists."""
    try:
        kinds = parse()
        with _progress() as bar:
            task = bar.add_task("building", total=len(kinds) + 1)
            specs = build(kinds, lambda stage, i, n: bar.update(task, description=stage, completed=i))
    except (QuantizeError, CatalogError) as exc:
        raise _fail(str(exc)) from None
    _show(specs, as_json)


@app.command("report")
def report_cmd(models: Annotated[str, typer.Option(help="comma-separated catalog models")] = "smollm2-135m",
               data: Annotated[Path, typer.Option(help="DialogSum-format JSONL")] = Path(
                   "../shared/data/dialogsum/dialogsum.dev.jsonl"),
               n: Annotated[int, typer.Option(help="dialogues to summarize for ROUGE-L")] = 50,
               n_json: Annotated[int, typer.Option(help="reply drafts for the JSON-valid rate")] = 6,
               only: Annotated[str | None, typer.Option(help="measure only these variants (comma-separated)")] = None,
               out: Annotated[Path, typer.Option(help="output folder")] = Path("quantize-report"),
               as_json: JsonOpt = False) -> None:
    """Measure every built variant in one run: size, peak RSS, load, prefill/decode speed at 1 and 2 threads,
    perplexity, ROUGE-L, JSON-valid rate and the bandwidth ceiling. Writes report.json, report.md and plots."""
    from quantize.report import run_report

    model_list = [m.strip() for m in models.split(",") if m.strip()]
    try:
        with _progress() as bar:
            task = bar.add_task("variants", total=1)

            def on_variant(i: int, total: int, name: str) -> None:
                bar.update(task, total=total, completed=i, description=name or "done")

            def on_stage(stage: str) -> None:
                name = bar.tasks[0].description.split(" · ")[0]
                bar.update(task, description=f"{name} · {stage}")
            report = run_report(model_list, data, n, n_json, out, on_variant, on_stage,
                                only=[o.strip() for o in only.split(",")] if only else None)
    except (CatalogError, EngineError, FileNotFoundError, ValueError, RuntimeError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        print(json.dumps(report, indent=2))
        return
    console.print((out / "report.md").read_text(), highlight=False)
    console.print(f"wrote {out}/report.json, report.md, quality_vs_size.png, quality_vs_speed.png")
