"""`glassmate summarize | reply | demo`: the assistant's tasks on a thread file or a replayed inbox."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from device import catalog
from device.cli.common import (
    AdaptersOpt,
    CtxOpt,
    JsonOpt,
    ModelOpt,
    ThreadOpt,
    ThreadsOpt,
    clear_errors,
    console,
    err,
    feed_or_sample,
    fetch_with_progress,
    fresh_store,
    latency,
    open_assistant,
    print_json,
    print_thread,
    single_thread,
)
from device.privacy import open_gate
from device.tasks import Task


def summarize(
    path: Annotated[Path, typer.Argument(help="a JSONL thread file: {thread, sender, text, ts} per line")],
    model: ModelOpt = None, threads: ThreadsOpt = None, n_ctx: CtxOpt = None, thread: ThreadOpt = None,
    adapters: AdaptersOpt = True, as_json: JsonOpt = False,
) -> None:
    """Summarize a thread and draft three replies."""
    with clear_errors():
        t = single_thread(path, thread)  # a bad file fails before a model loads
        assistant = open_assistant(model, threads, n_ctx, adapters)
        start = time.perf_counter()
        with err.status("summarizing…"):
            summary = assistant.catch_up(t, t.messages)
        with err.status("drafting replies…"):
            replies = assistant.draft_replies(t)
        total = time.perf_counter() - start
    if as_json:
        print_json({"thread": t.name, "summary": summary.text, "replies": replies.replies, "model": summary.model,
                    "adapters": {task: assistant.adapters.get(task) for task in (Task.CATCH_UP, Task.DRAFT_REPLIES)},
                    "timings": {"ttft_s": round(summary.ttft_s, 3), "total_s": round(total, 3)},
                    "tasks": {"summary": summary.to_json(), "replies": replies.to_json()}})
        return
    print_thread(t.name, None, summary, replies)


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
    if adapter is not None and not adapter.is_file():
        raise typer.BadParameter(f"{adapter} is not a file", param_hint="--adapter")
    with clear_errors():
        t = single_thread(path, thread)
        assistant = open_assistant(model, threads, n_ctx, adapters, {Task.DRAFT_REPLIES: adapter} if adapter else None)
        with err.status("drafting…"):
            result = assistant.polish(dictate, t) if dictate is not None else assistant.draft_replies(t)
    if as_json:
        out = {"thread": t.name, "model": result.model, "adapter": assistant.adapters.get(result.kind),
               "timings": result.timings()}
        out.update({"reply": result.text} if dictate is not None else {"replies": result.replies})
        print_json(out)
        return
    if dictate is not None:
        console.print(f"[bold]{result.text}[/]  [dim]{latency(result)}[/]", highlight=False)
    else:
        for i, r in enumerate(result.replies, 1):
            console.print(f"  {i}. {r}", highlight=False)
        console.print(f"  [dim]{latency(result)}[/]", highlight=False)


def demo(
    feed: Annotated[Path | None, typer.Option(help="JSONL feed to replay (default: the bundled sample inbox)")] = None,
    model: ModelOpt = None, threads: ThreadsOpt = None, n_ctx: CtxOpt = None,
    realtime: Annotated[bool, typer.Option(help="replay with the feed's own timing (gaps capped at 3 s)")] = False,
    adapters: AdaptersOpt = True, as_json: JsonOpt = False,
) -> None:
    """Replay an inbox through the assistant: per arriving burst, a notification, a catch-up and three replies."""
    from device.glasses.demo import replay_inbox

    with clear_errors():
        messages = feed_or_sample(feed)
        spec = catalog.get_model(model or catalog.default_model())
        if not spec.is_fetched():  # the demo is the zero-configuration path: fetch what it needs
            fetch_with_progress(spec, force=False)
        assistant = open_assistant(spec.name, threads, n_ctx, adapters)
        with fresh_store("demo.db") as store:
            if not as_json:
                in_effect = ", ".join(f"{task}: {name}" for task, name in sorted(assistant.adapters.items()))
                console.print(f"[bold]glassmate demo[/] — {len(messages)} messages, model "
                              f"[cyan]{assistant.engine.name}[/], {assistant.engine.n_threads} threads, adapters: "
                              f"{in_effect or 'none'}; store {store.path}", highlight=False)
            sent = 0
            status = err.status("replaying…")

            def working_on(step: str) -> None:
                status.update(step)
                status.start()

            try:
                for card in replay_inbox(assistant, messages, store, open_gate(store), realtime=realtime,
                                         on_step=working_on):
                    status.stop()  # the card is printed below the spinner, not through it
                    sent += card.telemetry_sent
                    if as_json:
                        print(json.dumps(card.to_json(), ensure_ascii=False), flush=True)
                    else:
                        print_thread(card.thread, card.notification, card.catch_up, card.replies,
                                     new=card.new_messages)
            finally:
                status.stop()
        if not as_json:
            console.print(f"[dim]{sent} latency reports (numbers only) passed the egress gate; see "
                          f"`glassmate privacy audit`. Next: `glassmate summarize FILE.jsonl`, "
                          f"`glassmate reply FILE.jsonl`, `glassmate models list`.[/]")
