"""`glassmate import whatsapp|telegram|signal`: chat exports into the wearer's encrypted message store.

An import is all or nothing: the whole export is parsed first, so a damaged file stores nothing and names its
`file:line`; then every message goes into the store in one transaction. The store deduplicates by a keyed digest
of (thread, sender, time, text), so importing the same export again adds nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from device.ask.embedder import EmbedderError, embedder_dir
from device.catalog import CatalogError
from device.cli.ask import open_index
from device.cli.common import JsonOpt, StoreOpt, clear_errors, console, device_store, err, print_json
from device.messages.exports import ChatExport, parse_signal, parse_telegram, parse_whatsapp
from device.messages.store import MessageStore, StoreError

app = typer.Typer(help="Import chat exports (WhatsApp, Telegram, Signal) into the encrypted message store, "
                       "where `glassmate ask` searches them.", no_args_is_help=True)

ChatOpt = Annotated[str | None, typer.Option("--chat", help="the chat's name in glassmate (default: from the file "
                                             "or folder name)")]
MeOpt = Annotated[str | None, typer.Option("--me", help="your name as the export writes it: those messages become "
                                           "yours")]
TzOpt = Annotated[str | None, typer.Option("--tz", help="the time zone the export's clock times are in, e.g. "
                                           "Europe/Berlin (default: this machine's)")]
IndexOpt = Annotated[bool, typer.Option("--index/--no-index", help="add the new messages to the search index of "
                                        "`glassmate ask` now, if its embedder is installed")]

LABELS = {"whatsapp": "WhatsApp", "telegram": "Telegram", "signal": "Signal"}
INDEX_HINT = "`glassmate index sync` (or the next `glassmate ask`) will add them"


def _index(store: MessageStore) -> tuple[dict[str, int] | None, str | None]:
    """Bring ask's index up to the store, as `glassmate ask` does; (its report, None) or (None, why not).
    The messages are already stored, so nothing here may fail the import."""
    if not (embedder_dir() / "model.onnx").is_file():
        # fetching the embedder downloads ~90 MB: `ask` does that on first use, an import should not
        return None, f"the search index of `glassmate ask` has no embedder here yet; {INDEX_HINT}"
    try:
        _, report = open_index(store, threads=None)
    except (EmbedderError, CatalogError, StoreError, ImportError, OSError, RuntimeError) as exc:
        return None, f"the new messages are not in the search index of `glassmate ask` yet ({exc}); {INDEX_HINT}"
    return report, None


def _store(export: ChatExport, path: Path, store_path: Path | None, index: bool, as_json: bool) -> None:
    # The device store (state_dir()/glassmate.db) is the persistent one `glassmate ask` and `index` search; the
    # HUD's and the demo's stores are `fresh_store`s, emptied at every start, so an import there would vanish.
    with clear_errors(), device_store(store_path) as store:
        before = store.message_ids()
        ids = store.add(export.messages, read=True)  # history read in the messenger: not "new" on the glasses
        added = len(set(ids) - before)
        report, index_note = _index(store) if index and added else (None, None)
        where = str(store.path)
    doc: dict[str, Any] = {
        "source": export.source, "file": str(path), "store": where, "chats": export.chats,
        "parsed": len(export.messages), "added": added, "duplicates": len(export.messages) - added,
        "skipped": export.skipped, "notes": export.notes, "index": report, "index_note": index_note,
    }
    if as_json:
        print_json(doc)
    else:
        _print(doc)
    if index_note:
        err.print(f"[yellow]note:[/] {escape(index_note)}", highlight=False)


def _print(doc: dict[str, Any]) -> None:
    chats = ", ".join(escape(c) for c in doc["chats"])
    console.print(f"[bold]{LABELS[doc['source']]}[/] {escape(doc['file'])} → {len(doc['chats'])} chat(s): {chats}",
                  highlight=False)
    console.print(f"  {doc['parsed']} messages parsed · [green]{doc['added']} added[/] · "
                  f"{doc['duplicates']} duplicates skipped", highlight=False)
    if doc["skipped"]:
        skipped = ", ".join(f"{n} {kind}" for kind, n in doc["skipped"].items())
        console.print(f"  [dim]skipped: {skipped}[/]", highlight=False)
    for note in doc["notes"]:
        console.print(f"  [yellow]assumed:[/] {escape(note)}", highlight=False)
    if doc["index"] is not None:
        console.print(f"  [dim]ask index: {doc['index']['added']} added, {doc['index']['size']} messages[/]",
                      highlight=False)
    console.print(f"  [dim]store: {escape(doc['store'])}[/]", highlight=False)


@app.command("whatsapp")
def whatsapp(
    path: Annotated[Path, typer.Argument(help="the exported chat .txt (Android or iOS; English or German)")],
    chat: ChatOpt = None, me: MeOpt = None, tz: TzOpt = None, store_path: StoreOpt = None, index: IndexOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Import a WhatsApp "Export chat" .txt file."""
    with clear_errors():
        export = parse_whatsapp(path, chat=chat, me=me, tz=tz)
    _store(export, path, store_path, index, as_json)


@app.command("telegram")
def telegram(
    path: Annotated[Path, typer.Argument(help="Telegram Desktop's result.json (one chat or the full export)")],
    me: MeOpt = None,
    tz: Annotated[str | None, typer.Option("--tz", help="the zone to show times in, and to read old exports' "
                                           "local times (default: this machine's)")] = None,
    store_path: StoreOpt = None, index: IndexOpt = True, as_json: JsonOpt = False,
) -> None:
    """Import a Telegram Desktop JSON export (Settings → Advanced → Export Telegram data, format JSON)."""
    with clear_errors():
        export = parse_telegram(path, me=me, tz=tz)
    _store(export, path, store_path, index, as_json)


@app.command("signal")
def signal(
    path: Annotated[Path, typer.Argument(help="a chat folder written by signal-export, or the chat.md in it")],
    chat: ChatOpt = None,
    me: Annotated[str | None, typer.Option("--me", help="your name in the export, if not \"Me\" (signal-export's "
                                           "name for your own messages)")] = None,
    tz: TzOpt = None, store_path: StoreOpt = None, index: IndexOpt = True, as_json: JsonOpt = False,
) -> None:
    """Import one chat exported from Signal Desktop by signal-export (sigexport)."""
    with clear_errors():
        export = parse_signal(path, chat=chat, me=me, tz=tz)
    _store(export, path, store_path, index, as_json)
