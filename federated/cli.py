"""`glassmate adapters …`: build (train → GGUF LoRA → register) and list task adapters. A plugin of the device
CLI (entry point `glassmate.commands`), so the glasses runtime never imports training code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from device.adapters import TASKS, load_adapters
from device.catalog import CatalogError, human_size

app = typer.Typer(help="Task adapters (LoRA) for the small models: build them here, the assistant loads them.",
                  no_args_is_help=True)
console = Console()
err = Console(stderr=True)


@app.command("build")
def build_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="catalog model to adapt (its GGUF is the base)")],
    task: Annotated[str, typer.Option(help=f"one of: {', '.join(TASKS)}")] = "catch_up",
    data: Annotated[Path, typer.Option(help="training data: DialogSum-format JSONL for catch_up")] = Path(
        "../shared/data/dialogsum/dialogsum.dev.jsonl"),
    epochs: Annotated[float | None, typer.Option(help="override the recipe's epochs")] = None,
    limit: Annotated[int | None, typer.Option(help="train on the first N examples only (smoke runs)")] = None,
    holdout: Annotated[int | None, typer.Option(help="first rows kept for evaluation (default: the recipe's)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the training report as JSON")] = False,
) -> None:
    """Train the task's LoRA on MODEL (fixed seed; resumes from its checkpoint if interrupted), export it as a GGUF
    LoRA adapter under models/built/adapters/ and register it with its sha256."""
    from device.inbox import FeedError
    from federated.task_adapters import build

    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=err) as progress:
            bar = progress.add_task(f"training {model}.{task}", total=None, loss="-")
            out = build(model, task, data, epochs=epochs, limit=limit, holdout=holdout,
                        progress=lambda step, total, loss: progress.update(bar, completed=step, total=total,
                                                                           loss=f"{loss:.3f}"))
    except (CatalogError, FeedError, ValueError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(out, indent=2))
        return
    r = out["report"]
    console.print(f"[bold]{out['adapter']}[/] → {out['file']} ({human_size(out['size'])}), {out['examples']} examples "
                  f"({out['dropped_unfaithful']} unfaithful references dropped), {r['steps']} steps in "
                  f"{r['wall_s']:.0f} s, loss {r['first_loss']:.3f} → {r['last_loss']:.3f}", highlight=False)


@app.command("list")
def list_cmd(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Registered adapters: model, task, file, size, how each was built."""
    try:
        specs = load_adapters()
    except CatalogError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps([{"name": s.name, "model": s.model, "task": s.task, "file": str(s.path),
                           "present": s.path.is_file(), "sha256": s.sha256, "size": s.size,
                           "made_by": s.made_by, "trained_rows": len(s.training_ids())} for s in specs.values()],
                         indent=2))
        return
    table = Table("adapter", "task", "size", "present", "trained rows", "built by")
    for s in specs.values():
        table.add_row(s.name, s.task, human_size(s.size), "yes" if s.path.is_file() else "no",
                      str(len(s.training_ids())), s.made_by)
    console.print(table)
