"""`glassmate ask` and `glassmate index …`: questions about your own messages, answered on the device."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from device import catalog
from device.assistant.core import Assistant
from device.catalog import CatalogError
from device.cli.common import (
    AskModelOpt,
    CtxOpt,
    JsonOpt,
    StoreOpt,
    ThreadsOpt,
    VerifierOpt,
    clear_errors,
    console,
    device_store,
    err,
    open_assistant,
    print_json,
)
from device.engines import EngineError
from device.messages.inbox import read_feed
from device.messages.store import MessageStore

index_app = typer.Typer(help="The on-device search index over stored messages (for `glassmate ask`).",
                        no_args_is_help=True)

KOpt = Annotated[int, typer.Option(help="messages retrieved")]
ShowOpt = Annotated[int | None, typer.Option(help="of them, how many the model reads (default: AskConfig)")]
MinConfidenceOpt = Annotated[float | None, typer.Option(
    help="abstain when the model's probability of not abstaining is below this (default: AskConfig)")]


def open_index(store: MessageStore, threads: int | None):
    from device.ask.embedder import Embedder, fetch_embedder
    from device.ask.message_index import MessageIndex

    with err.status("preparing the embedder (first time: fetch and build, a few seconds)…"):
        fetch_embedder()
    index = MessageIndex(store, Embedder(threads=threads))
    with err.status("indexing new messages…"):
        report = index.sync()
    return index, report


def open_verifier(name: str | None, threads: int | None, n_ctx: int | None, required: bool,
                  beside: Assistant | None = None) -> Assistant | None:
    """The assistant that checks ask's answers: `name`, else the catalog's verify model; None for 'none'. The
    assistant `beside` is reused when it runs that model. A verifier that cannot be opened stops an evaluation
    (its numbers would silently be another pipeline's) and only warns a wearer's question."""
    name = name or catalog.verify_model()
    if not name or name.lower() == "none":
        return None
    if beside is not None and beside.engine.name == name:
        return beside
    try:
        return open_assistant(name, threads, n_ctx, adapters=False)
    except (CatalogError, EngineError) as exc:
        if required:
            raise
        hint = "" if "unknown model" in str(exc) else f" (glassmate models fetch {name.partition('@')[0]})"
        err.print(f"[yellow]answers are not checked by a second model:[/] {exc}{hint}", highlight=False)
        return None


def ask_config(k: int, show: int | None, min_confidence: float | None = None):
    from device.ask.answer import AskConfig

    config = AskConfig(k=k)
    config.show = min(k, show if show is not None else config.show)
    if min_confidence is not None:
        config.min_confidence = min_confidence
    return config


def _as_of(now: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(now) if now else None
    except ValueError:
        raise typer.BadParameter(f"{now!r} is not an ISO time (e.g. 2026-12-06T09:30)", param_hint="--now") from None


def ask(
    question: Annotated[str, typer.Argument(help="what to ask about your messages")],
    feed: Annotated[Path | None, typer.Option(help="add this JSONL feed to the store first")] = None,
    store_path: StoreOpt = None, model: AskModelOpt = None, threads: ThreadsOpt = None, n_ctx: CtxOpt = None,
    k: KOpt = 5, show: ShowOpt = None, min_confidence: MinConfidenceOpt = None,
    now: Annotated[str | None, typer.Option(help="answer as of this ISO time (default: now)")] = None,
    verifier: VerifierOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer from your own messages with citations, or say "I don't see that in your messages"."""
    from device.ask.answer import ask as answer_question

    when = _as_of(now)
    if not question.strip():
        raise typer.BadParameter("the question is empty", param_hint="QUESTION")
    with clear_errors(), device_store(store_path) as store:
        if feed is not None:
            store.add(read_feed(feed))
        index, _ = open_index(store, threads)
        assistant = open_assistant(model or catalog.ask_model(), threads, n_ctx, adapters=False)
        checker = open_verifier(verifier, threads, n_ctx, required=False, beside=assistant)
        with err.status("answering…"):
            result = answer_question(assistant, index, question, when, ask_config(k, show, min_confidence), checker)
        cited = {rid: index.messages[rid] for rid in result.citations}
    if as_json:
        print_json(result.to_json() | {"cited": [
            {"id": rid, "thread": m.thread, "sender": m.sender, "ts": m.ts.isoformat(), "text": m.text}
            for rid, m in cited.items()]})
        return
    console.print(f"[bold]{result.spoken or result.answer}[/]", highlight=False)
    for rid, m in cited.items():
        console.print(f"  [dim][{rid}] {m.ts:%a %d %b %H:%M} · {m.thread} · {m.sender}:[/] {m.text}", highlight=False)
    if result.abstained:
        console.print(f"  [dim]({result.reason})[/]", highlight=False)
    console.print(f"[dim]{result.total_s:.2f} s (retrieval {1000 * result.retrieve_s:.0f} ms)[/]", highlight=False)


@index_app.command("sync")
def index_sync(store_path: StoreOpt = None, feed: Annotated[Path | None, typer.Option(
        help="add this JSONL feed to the store first")] = None, threads: ThreadsOpt = None,
        as_json: JsonOpt = False) -> None:
    """Embed and index stored messages not yet indexed; drop the ones that were deleted."""
    with clear_errors(), device_store(store_path) as store:
        if feed is not None:
            store.add(read_feed(feed))
        _, report = open_index(store, threads)
    if as_json:
        print_json(report)
        return
    console.print(f"index: {report['size']} messages ({report['added']} added, {report['embedded']} embedded, "
                  f"{report['removed']} removed)", highlight=False)


@index_app.command("rebuild")
def index_rebuild(store_path: StoreOpt = None, threads: ThreadsOpt = None) -> None:
    """Drop every stored vector and embed all messages again (after a corrupt vector or a new embedder)."""
    with clear_errors(), device_store(store_path) as store:
        cleared = store.clear_vectors()
        _, report = open_index(store, threads)
    console.print(f"dropped {cleared} vectors; indexed {report['size']} messages", highlight=False)
