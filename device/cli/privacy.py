"""`glassmate privacy …`: what left the device, and erasing what should not stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from device.cli.common import JsonOpt, StoreOpt, clear_errors, console, device_store, print_json
from device.messages.retention import apply_retention, forget_thread
from device.paths import state_dir
from device.privacy import audit_log

app = typer.Typer(help="What left the device, and erasing what should not stay.", no_args_is_help=True)


@app.command("audit")
def privacy_audit(
    tail: Annotated[int, typer.Option("--tail", "-n", help="show the last N decisions (0: all)")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Every egress decision: when, kind, size, destination, allowed or refused, and why."""
    entries = audit_log().entries()
    shown = entries[-tail:] if tail else entries
    if as_json:
        print_json(shown)
        return
    table = Table(title=f"egress audit ({len(entries)} decisions, {sum(e['allowed'] for e in entries)} allowed)")
    for col in ("when", "kind", "bytes", "destination", "decision", "why"):
        table.add_column(col)
    for e in shown:
        table.add_row(e["ts"], e["kind"], str(e["bytes"]), e["destination"],
                      "[green]allowed[/]" if e["allowed"] else "[red]refused[/]", e["reason"])
    console.print(table)


@app.command("forget")
def privacy_forget(
    thread: Annotated[str, typer.Option("--thread", help="the thread to erase everywhere on the device")],
    store_path: StoreOpt = None, as_json: JsonOpt = False,
) -> None:
    """Erase one thread: messages, summaries, drafts and cached model state. Says what cannot be undone."""
    with clear_errors(), device_store(store_path) as store:
        report = forget_thread(store, thread, state_dir())
    if as_json:
        print_json(report)
        return
    console.print(f"erased {report['messages']} messages, {report['derived']} summaries/drafts and "
                  f"{report['kv_files']} cached model states of {thread!r}", highlight=False)
    for line in report["cannot_undo"]:
        console.print(f"[yellow]cannot undo:[/] {line}", highlight=False)


@app.command("retain")
def privacy_retain(
    days: Annotated[float, typer.Option("--days", help="keep messages newer than this many days")] = 30.0,
    store_path: StoreOpt = None, as_json: JsonOpt = False,
) -> None:
    """Apply retention: delete messages (and their summaries, drafts, caches) older than --days."""
    with clear_errors(), device_store(store_path) as store:
        report = apply_retention(store, datetime.now(UTC) - timedelta(days=days), state_dir())
    if as_json:
        print_json(report)
    else:
        console.print(f"deleted {report['messages']} messages and {report['derived']} summaries/drafts older "
                      f"than {days:g} days; {report['kv_files']} cached model states removed", highlight=False)
