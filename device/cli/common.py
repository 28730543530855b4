"""What every command shares: the consoles, option types, one error path, one progress bar, one result writer,
and opening an assistant or a thread."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, DownloadColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn

from device import catalog
from device.ask.embedder import EmbedderError
from device.assistant.core import Assistant, AssistantError, Result
from device.assistant.prefix_store import PrefixStore
from device.catalog import CatalogError
from device.engines import EngineError, load_engine
from device.messages.inbox import FeedError, Message, Thread, group_threads, read_feed
from device.messages.store import MessageStore, StoreError
from device.paths import cache_dir, state_dir
from device.privacy.crypto import KeyFileError
from device.tasks import Task

console = Console()
err = Console(stderr=True)

ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="catalog model (default: the catalog's) or a "
                                              "built variant: NAME@Q8_0, NAME@onnx-int8 (glassmate quantize)")]
AskModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="catalog model or built variant (default: the "
                                                 "catalog's ask model, the one ask's thresholds were chosen on)")]
VerifierOpt = Annotated[str | None, typer.Option("--verifier", help="the model that checks each answer against its "
                                                 "message (default: the catalog's verify model); 'none': no check")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", "-t", help="CPU threads (default: all cores)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]
AdaptersOpt = Annotated[bool, typer.Option("--adapters/--no-adapters", help="use the task adapters built for this "
                                           "model (glassmate adapters build); llama.cpp models only")]
CtxOpt = Annotated[int | None, typer.Option("--n-ctx", help="context size in tokens (default: the catalog's)")]
ThreadOpt = Annotated[str | None, typer.Option("--thread", help="thread name, when the file holds several")]
StoreOpt = Annotated[Path | None, typer.Option("--store", help="message store (default: the device store)")]
OutOpt = Annotated[Path | None, typer.Option(help="write the result JSON here too")]

RUNTIME_ERRORS = (CatalogError, EngineError, FeedError, StoreError, AssistantError, KeyFileError, EmbedderError)


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


@contextmanager
def clear_errors() -> Iterator[None]:
    """Turn the runtime's own errors into one clear line and a non-zero exit."""
    try:
        yield
    except RUNTIME_ERRORS as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None


def progress(*extra: ProgressColumn, transient: bool = True) -> Progress:
    """The one progress bar: what is being done, a bar, done/total, plus any extra columns."""
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    *extra, console=err, transient=transient)


def command_line() -> str:
    return " ".join(["glassmate", *sys.argv[1:]])


def write_result(out: Path | None, doc: dict[str, Any]) -> None:
    """Write a reference run: the result plus the command that made it (every number in the docs has one)."""
    if out is None:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc | {"command": command_line()}, indent=2, ensure_ascii=False) + "\n")


def print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, ensure_ascii=False))


def fetch_with_progress(spec: catalog.ModelSpec, force: bool) -> None:
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        dl = bar.add_task(f"{spec.name}: downloading carriers", total=len(spec.parts))
        asm = bar.add_task(f"{spec.name}: reassembling + sha256", total=spec.size or None, visible=False)

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage == "download":
                bar.update(dl, completed=done, total=total,
                           description=f"{spec.name}: carrier {min(done + 1, total)}/{total}")
            else:
                bar.update(dl, visible=False)
                bar.update(asm, completed=done, total=total, visible=True)

        catalog.fetch(spec, progress=on_progress, force=force)


def open_assistant(model: str | None, threads: int | None, n_ctx: int | None, adapters: bool = True,
                   adapter_files: dict[Task, Path] | None = None) -> Assistant:
    from device.engines.adapters import attach

    name = model or catalog.default_model()
    with err.status(f"loading {name}…"):
        engine = load_engine(name, n_ctx=n_ctx, n_threads=threads)
        tasks = attach(engine, name, adapter_files, registered=adapters, personal=state_dir() if adapters else None)
    spec = catalog.require_model(name)
    base = catalog.get_model(spec.base) if spec.base else spec
    return Assistant(engine, adapters=tasks, prefix_store=PrefixStore(cache_dir() / "prefixes"),
                     paraphrase=base.paraphrase)


def feed_or_sample(feed: Path | None) -> list[Message]:
    """The feed's messages, or the bundled sample inbox's."""
    if feed is None:
        with resources.as_file(resources.files("device") / "data" / "sample_inbox.jsonl") as p:
            return read_feed(p)
    return read_feed(feed)


def single_thread(path: Path, thread: str | None) -> Thread:
    threads = group_threads(read_feed(path))
    if thread:
        if thread not in threads:
            raise typer.BadParameter(f"{path} has no thread named {thread!r}; it has: {', '.join(threads)}",
                                     param_hint="--thread")
        return threads[thread]
    if len(threads) > 1:
        raise typer.BadParameter(f"{path} holds {len(threads)} threads ({', '.join(threads)}); choose one",
                                 param_hint="--thread")
    return next(iter(threads.values()))


def device_store(path: Path | None) -> MessageStore:
    return MessageStore(path or state_dir() / "glassmate.db")


def fresh_store(name: str, shared: bool = False) -> MessageStore:
    """A store of the session's own (the demo's, the HUD's), emptied first: a replay starts from nothing."""
    db = state_dir() / name
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    return MessageStore(db, shared=shared)


def latency(r: Result) -> str:
    return f"ttft {r.ttft_s:.2f}s · total {r.total_s:.2f}s · {r.model}"


def print_thread(name: str, note: Result | None, summary: Result, replies: Result, new: int = 0) -> None:
    lines = []
    if note is not None:
        lines.append(f"[bold yellow]🔔 {note.text}[/]\n   [dim]{latency(note)}[/]")
    if summary.flags:
        lines.append(f"[bold red]⚠ treat with care:[/] {', '.join(summary.flags)}")
    chunks = f" · {summary.chunks} chunks" if summary.chunks > 1 else ""
    lines.append(f"[bold]Catch-up:[/] {summary.text}\n   [dim]{latency(summary)}{chunks}[/]")
    lines.append("[bold]Replies:[/]\n" + "\n".join(f"   {i}. {r}" for i, r in enumerate(replies.replies, 1))
                 + f"\n   [dim]{latency(replies)}[/]")
    title = f"{name}" + (f" · {new} new" if new else "")
    console.print(Panel("\n".join(lines), title=title, title_align="left", highlight=False))
