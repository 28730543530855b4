"""The lab's commands: `glassmate eval …`, `glassmate bench`, `glassmate bench-ask` (plugins of the device CLI).

Registered under the `glassmate.commands` entry point, so the glasses runtime never imports evaluations or
benchmarks. Each command imports its lab module when it runs, and names the extra to install when one is missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from device import catalog
from device.assistant.core import VERBATIM_WORDS
from device.assistant.meaning_check import MeaningCheck
from device.cli.ask import KOpt, MinConfidenceOpt, ShowOpt, ask_config, open_verifier
from device.cli.common import (
    AdaptersOpt,
    AskModelOpt,
    CtxOpt,
    JsonOpt,
    ModelOpt,
    OutOpt,
    ThreadsOpt,
    VerifierOpt,
    clear_errors,
    console,
    err,
    fail,
    open_assistant,
    print_json,
    progress,
    write_result,
)
from device.messages.inbox import group_threads, read_feed
from device.tasks import Task

eval_app = typer.Typer(help="Measure the assistant on data sets given by path.", no_args_is_help=True)

QUESTIONS = Path("tests/fixtures/ask/questions.jsonl")
IRC_TRAIN = Path("../shared/data/ubuntu_irc/train")
WearersOpt = Annotated[Path, typer.Option(help="Ubuntu IRC folder whose users stand in for wearers")]


@contextmanager
def needs(extra: str) -> Iterator[None]:
    """A lab dependency that is not installed is named with the extra that installs it."""
    try:
        yield
    except ImportError as exc:
        raise fail(f"this command needs {exc.name or exc}: pip install 'glassmate[{extra}]'") from None


def _exclude(adapter: str | None) -> set[str]:
    """The rows that trained an adapter: an evaluation refuses to score it on them."""
    from device.engines.adapters import load_adapters

    return load_adapters()[adapter].training_ids() if adapter else set()


def _print_metrics(title: str, summary: dict) -> None:
    table = Table("metric", "value", title=title)
    for k, v in summary.items():
        table.add_row(k, str(v))
    console.print(table)


@eval_app.command("summaries")
def eval_summaries_cmd(
    data: Annotated[Path | None, typer.Option(help="DialogSum-format JSONL (dialogue + summary fields): ROUGE, "
                                              "unsupported spans")] = None,
    meaning: Annotated[Path | None, typer.Option(help="the project's meaning set (tests/fixtures/meaning/chats.jsonl):"
                                                 " misreadings in shown summaries and notifications")] = None,
    part: Annotated[str, typer.Option(help="which part of --meaning: tune, untouched (scored once, at the end) or "
                                      "all")] = "tune",
    model: ModelOpt = None, threads: ThreadsOpt = None, n_ctx: CtxOpt = None,
    n: Annotated[int, typer.Option("--n", help="first N dialogues")] = 20,
    guard: Annotated[bool, typer.Option(help="the faithfulness guard (measure with it on and off)")] = True,
    reported: Annotated[bool, typer.Option(help="English messages read in reported form (the sender's 'I' as "
                                                "their name, the wearer as 'You')")] = True,
    check: Annotated[bool, typer.Option(help="the contrast check (off on the glasses): drop sentences whose "
                                             "contrast (negation flipped, people swapped) the model prefers")] = False,
    acts: Annotated[bool, typer.Option(help="drop sentences giving a person an act (asking you, offering, "
                                            "refusing) that none of their messages backs")] = True,
    examples: Annotated[bool, typer.Option(help="worked examples in the summary prompt")] = True,
    verbatim_words: Annotated[int, typer.Option(help="a message of at most this many words is its own "
                                                     "notification (0: always the model's line)")] = VERBATIM_WORDS,
    adapters: AdaptersOpt = True,
    out: Annotated[Path | None, typer.Option(help="write the full result (scores of every sample) here")] = None,
    keep_text: Annotated[bool, typer.Option(help="also write each summary and reference into --out (keep such "
                                                 "files out of the repository: DialogSum is non-commercial)")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Catch-up summaries: with --meaning, the share of shown summaries and notifications that misstate the chat;
    with --data, ROUGE-1/2/L, unsupported-span (faithfulness), echo and empty rates; latency of both."""
    from device.engines.adapters import load_adapters
    from lab.evaluation import eval_summaries, to_json, worst
    from lab.machine import machine_info

    if meaning is None and data is None:
        raise typer.BadParameter("give --meaning (the meaning set) and/or --data (DialogSum)", param_hint="--data")
    if part not in ("tune", "untouched", "all"):
        raise typer.BadParameter(f"{part!r}: one of tune, untouched, all", param_hint="--part")
    if meaning is not None:
        _eval_meaning(meaning, part, model, threads, n_ctx, adapters, guard, reported, check, acts, examples,
                      verbatim_words,
                      out if data is None else None, as_json)
    if data is None:
        return
    with clear_errors(), needs("eval"):
        assistant = open_assistant(model, threads, n_ctx, adapters)
        assistant.paraphrase = True  # the model's own summaries are what is measured, shown on the glasses or not
        assistant.guard, assistant.reported, assistant.check_acts = guard, reported, acts
        assistant.summary_examples = examples
        assistant.meaning = MeaningCheck(assistant.engine) if check else None
        adapter = assistant.adapters.get(Task.CATCH_UP)
        with progress() as bar:
            task = bar.add_task(f"summarizing with {assistant.engine.name}", total=n)
            result = eval_summaries(assistant, data, n, exclude_ids=_exclude(adapter),
                                    progress=lambda done, total: bar.update(task, completed=done, total=total))
    summary = to_json(result, with_samples=False)
    if out:
        spec = catalog.require_model(assistant.engine.name)
        full = to_json(result) | {"data": str(data), "machine": machine_info(),
                                  "model_bytes": catalog.path_size(spec.path),
                                  "adapter_bytes": load_adapters()[adapter].size if adapter else 0}
        if not keep_text:
            for sample in full["samples"]:
                sample.pop("summary", None)
                sample.pop("reference", None)
        write_result(out, full)
    if as_json:
        print_json(summary)
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


def _eval_meaning(path: Path, part: str, model: str | None, threads: int | None, n_ctx: int | None, adapters: bool,
                  guard: bool, reported: bool, check: bool, acts: bool, examples: bool, verbatim_words: int,
                  out: Path | None, as_json: bool) -> None:
    from lab.machine import machine_info
    from lab.meaning import eval_meaning, to_json

    with clear_errors():
        assistant = open_assistant(model, threads, n_ctx, adapters)
        assistant.paraphrase = True  # the model's own summaries are what is measured, shown on the glasses or not
        assistant.guard, assistant.reported, assistant.verbatim_words = guard, reported, verbatim_words
        assistant.check_acts, assistant.summary_examples = acts, examples
        assistant.meaning = MeaningCheck(assistant.engine) if check else None
        with progress() as bar:
            task = bar.add_task(f"summarizing the {part} part with {assistant.engine.name}", total=None)
            result = eval_meaning(assistant, path, part,  # type: ignore[arg-type]
                                  progress=lambda done, total: bar.update(task, completed=done, total=total))
    summary = to_json(result, with_samples=False)
    write_result(out, to_json(result) | {"data": str(path), "guard": guard, "reported": reported, "check": check,
                                         "acts": acts, "examples": examples, "verbatim_words": verbatim_words,
                                         "machine": machine_info()})
    if as_json:
        print_json(summary)
        return
    _print_metrics(f"meaning on {path} ({part}, {result.model}, n={result.n})", summary)
    console.print("[bold]The cases to read first[/] (misreadings shown, then points missed):")
    for s in result.worst():
        console.print(f"- {s['id']} {s['summary_errors'] + s['notification_errors']} missed {len(s['missed'])}\n"
                      f"  🔔 {s['notification']}\n  {s['summary']}", highlight=False)


@eval_app.command("factcc")
def eval_factcc_cmd(
    data: Annotated[Path, typer.Option(help="DialogSum-format JSONL (dialogue + summary): errors are planted into "
                                            "its reference summaries at run time")],
    split: Annotated[str, typer.Option(help="tune (even rows: choose the margin) or report (odd rows)")] = "report",
    margin: Annotated[float | None, typer.Option(help="nats a contrast must win by to flag (default: the "
                                                       "assistant's)")] = None,
    prior_weight: Annotated[float | None, typer.Option(help="how much of the model's preference with no dialogue "
                                                             "to read is taken off (default: the assistant's)")] = None,
    n: Annotated[int, typer.Option("--n", help="first N planted rows (0: all)")] = 0,
    model: ModelOpt = None, threads: ThreadsOpt = None, n_ctx: CtxOpt = None,
    out: OutOpt = None, as_json: JsonOpt = False,
) -> None:
    """The meaning check on a FactCC-style set: negations flipped, participants swapped and roles exchanged in
    DialogSum's reference summaries. Reports the share of planted errors flagged (catch rate, per kind) and of
    references left as written flagged (false alarms)."""
    from device.assistant.meaning_check import DEFAULT_MARGIN, DEFAULT_PRIOR_WEIGHT
    from lab.factcc import build, evaluate
    from lab.machine import machine_info

    if split not in ("tune", "report"):
        raise typer.BadParameter(f"{split!r}: one of tune, report", param_hint="--split")
    with clear_errors():
        items = build(data, split)  # type: ignore[arg-type]
        items = items[:n] if n else items
        assistant = open_assistant(model or catalog.verify_model(), threads, n_ctx, adapters=False)
        with progress() as bar:
            task = bar.add_task(f"checking {len(items)} planted errors with {assistant.engine.name}", total=len(items))
            result = evaluate(assistant, items, split,  # type: ignore[arg-type]
                              DEFAULT_MARGIN if margin is None else margin,
                              DEFAULT_PRIOR_WEIGHT if prior_weight is None else prior_weight,
                              progress=lambda done, total: bar.update(task, completed=done, total=total))
    full = asdict(result) | {"data": str(data), "machine": machine_info()}
    for sample in full["samples"]:  # DialogSum is non-commercial: keep only ids and scores in result files
        for key in ("reference", "sentence", "planted"):
            sample.pop(key, None)
    write_result(out, full)
    summary = {k: v for k, v in asdict(result).items() if k != "samples"}
    if as_json:
        print_json(summary)
        return
    _print_metrics(f"meaning check on planted errors ({split}, {result.model})", summary)


@eval_app.command("replies")
def eval_replies_cmd(
    reply_set: Annotated[Path | None, typer.Option("--set", help="the project's reply set (JSONL, tests/fixtures/"
                                                   "replies/threads.jsonl): drafts judged usable or not")] = None,
    part: Annotated[str, typer.Option(help="which part of --set: tune, untouched (scored once, at the end) or all"
                                      )] = "tune",
    data: Annotated[Path | None, typer.Option(help="a folder of IRC *.raw.txt + *.annotation.txt (ubuntu_irc/dev): "
                                              "ranking MRR and draft diversity")] = None,
    model: ModelOpt = None, threads: ThreadsOpt = None, n_ctx: CtxOpt = None, adapters: AdaptersOpt = True,
    n: Annotated[int, typer.Option("--n", help="reply pairs ranked (true reply among 10 candidates)")] = 50,
    n_drafts: Annotated[int, typer.Option("--n-drafts", help="threads drafted for the diversity numbers")] = 30,
    seed: Annotated[int, typer.Option(help="which pairs and distractors")] = 0,
    examples: Annotated[bool, typer.Option("--examples/--no-examples", help="two worked examples in the drafting "
                                           "prompt (off by default: read blind, they made drafts worse)")] = False,
    rank: Annotated[bool, typer.Option("--rank/--no-rank", help="each intent's draft against the bank's replies, "
                                       "ranked by the model as the wearer's next message")] = False,
    third: Annotated[str, typer.Option(help="the third draft when something is asked: 'later' (the bank's putting "
                                       "it off, the default) or 'ask' (the model's question back)")] = "later",
    out: OutOpt = None, as_json: JsonOpt = False,
) -> None:
    """Reply drafts: with --set, the usable rate (no assistant-speak, role confusion, invented detail, stale plan,
    wrong language, over 30 words, scam leak), threads served and latency; with --data, reply ranking (MRR, P@1 of
    the true reply among 10) and draft diversity."""
    from lab.machine import machine_info
    from lab.reply_evaluation import eval_replies
    from lab.reply_evaluation import to_json as ranking_json
    from lab.reply_set import eval_reply_set
    from lab.reply_set import to_json as set_json

    if reply_set is None and data is None:
        raise typer.BadParameter("give --set (the reply set) and/or --data (an IRC folder)", param_hint="--set")
    if part not in ("tune", "untouched", "all"):
        raise typer.BadParameter(f"{part!r}: one of tune, untouched, all", param_hint="--part")
    doc: dict = {}
    judged = None
    with clear_errors(), needs("eval"):
        assistant = open_assistant(model, threads, n_ctx, adapters)
        assistant.reply_examples = examples
        assistant.rank_drafts = rank
        if third not in ("ask", "later"):
            raise typer.BadParameter(f"{third!r}: ask or later", param_hint="--third")
        assistant.third = third  # type: ignore[assignment]
        with progress() as bar:
            if reply_set is not None:
                task = bar.add_task(f"drafting the {part} part with {assistant.engine.name}", total=None)
                judged = eval_reply_set(assistant, reply_set, part,  # type: ignore[arg-type]
                                        progress=lambda done, total: bar.update(task, completed=done, total=total))
                doc |= {"set": set_json(judged, with_samples=False)}
            if data is not None:
                bars: dict[str, int] = {}

                def tick(stage: str, done: int, total: int) -> None:
                    if stage not in bars:
                        bars[stage] = bar.add_task(f"{stage} with {assistant.engine.name}", total=total)
                    bar.update(bars[stage], completed=done, total=total)
                ranked = eval_replies(assistant, data, n_rank=n, n_drafts=n_drafts, seed=seed, progress=tick,
                                      exclude_ids=_exclude(assistant.adapters.get(Task.DRAFT_REPLIES)))
                doc |= ranking_json(ranked) | {"data": data.name, "seed": seed}  # flat, as the reference runs
    full = doc | ({"set": set_json(judged)} if judged else {})
    write_result(out, full | {"set_file": str(reply_set) if reply_set else None, "machine": machine_info()})
    if as_json:
        print_json(doc)
        return
    if judged is not None:
        table = Table("metric", "value", title=f"reply drafts on {reply_set} ({judged.part}, {judged.model})")
        for k, v in set_json(judged, with_samples=False).items():
            table.add_row(k, str(v))
        console.print(table)
        console.print("[bold]The threads to read first[/] (fewest usable drafts):")
        for s in judged.worst():
            console.print(f"- {s['id']} ({s['usable']}/3 usable)", highlight=False)
            for d in s["drafts"]:
                console.print(f"    {'✓' if not d['failures'] else '✗'} {d['text']}  [dim]{'; '.join(d['why'])}[/]",
                              highlight=False)
    if data is not None:
        table = Table("metric", "value", title=f"reply ranking and diversity on {data.name}")
        for k, v in doc.items():
            if k != "set":
                table.add_row(k, str(v))
        console.print(table)


@eval_app.command("ask")
def eval_ask_cmd(
    data: Annotated[Path, typer.Option(help="question set (JSONL; see lab/ask_evaluation.py)")] = QUESTIONS,
    model: AskModelOpt = None, threads: ThreadsOpt = None, n_ctx: CtxOpt = None,
    k: KOpt = 5, show: ShowOpt = None, min_confidence: MinConfidenceOpt = None,
    out: Annotated[Path | None, typer.Option(help="write the result JSON (with per-question rows) here too")] = None,
    verifier: VerifierOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retrieval recall@5 / MAP@5, answer EM / F1, citation precision, abstention precision / recall."""
    from device.ask.embedder import Embedder, fetch_embedder
    from lab.ask_evaluation import RIGHT_F1, eval_ask, read_questions, to_json
    from lab.machine import machine_info

    with clear_errors(), needs("ask"):
        try:
            questions = read_questions(data)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--data") from None
        config = ask_config(k, show, min_confidence)
        fetch_embedder()
        assistant = open_assistant(model or catalog.ask_model(), threads, n_ctx, adapters=False)
        checker = open_verifier(verifier, threads, n_ctx, required=True, beside=assistant)
        with progress() as bar:
            task = bar.add_task(f"asking {assistant.engine.name}", total=len(questions))
            result = eval_ask(assistant, Embedder(threads=threads), questions, config,
                              progress=lambda done, total: bar.update(task, completed=done), verifier=checker)
    summary = to_json(result, with_samples=False)
    write_result(out, to_json(result) | {"data": str(data), "show": config.show,
                                         "min_confidence": config.min_confidence,
                                         "verifier": checker.engine.name if checker else None,
                                         "min_support": config.min_support if checker else None,
                                         "sure_support": config.sure_support if checker else None,
                                         "machine": machine_info(assistant.engine)})
    if as_json:
        print_json({k: summary[k] for k in ("n", "recall_at_5", "map_at_5", "answer_f1", "citation_precision",
                                            "abstain_precision", "abstain_recall")})
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


@eval_app.command("pii")
def eval_pii_cmd(
    data: Annotated[Path, typer.Option(help="Presidio-format JSON: full_text + spans")],
    limit: Annotated[int | None, typer.Option(help="score N records only")] = None,
    offset: Annotated[int, typer.Option(help="skip the first N records")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Token-level precision, recall and F2 of the PII detector, per entity type and overall."""
    from lab.pii_eval import evaluate

    with needs("pii"), err.status("building gazetteers and scoring…"):
        result = evaluate(data, limit, offset)
    result.pop("errors")
    if as_json:
        print_json(result)
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
    from device.glasses.commands import ContactBook, llm_completer
    from lab.command_evaluation import evaluate, plot_confusion, read_cases
    from lab.machine import machine_info

    with clear_errors(), needs("bench"):
        try:
            cases = read_cases(data)
            book = ContactBook.from_threads(group_threads(read_feed(inbox)),
                                            ContactBook.read_aliases(aliases) if aliases else None)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        assistant = open_assistant(model, threads, n_ctx, adapters=False) if llm else None
        complete = llm_completer(assistant) if assistant else None
        with progress() as bar:
            task = bar.add_task("parsing", total=len(cases))
            report = evaluate(cases, book, complete, progress=lambda: bar.advance(task))
        if confusion:
            plot_confusion(report, confusion)
    doc = report.to_json() | {"data": str(data), "llm": llm, "model": assistant.engine.name if assistant else None,
                              "threads": assistant.engine.n_threads if assistant else None, "machine": machine_info()}
    write_result(out, doc)
    if as_json:
        print_json({k: doc[k] for k in ("n", "intent_accuracy", "slot_f1")})
        return
    table = Table("metric", "value", title=f"commands on {data.name} (n={report.n})")
    for key in ("intent_accuracy", "slot_precision", "slot_recall", "slot_f1", "by_source", "p50_ms"):
        table.add_row(key, str(doc[key]))
    console.print(table)
    for e in report.errors[:15]:
        console.print(f"[dim]{e['utterance']!r}[/] want {e['want']} got {e['got']['intent']} {e['got']['slots']}",
                      highlight=False)


@eval_app.command("learn")
def eval_learn_cmd(
    data: WearersOpt = IRC_TRAIN,
    user_rank: Annotated[int, typer.Option(help="which user: 0 = the one with the most annotated replies")] = 0,
    sends: Annotated[int, typer.Option(help="their most recent replies put in the store")] = 80,
    model: Annotated[str, typer.Option("--model", "-m", help="catalog model to learn on")] = "smollm2-135m",
    out: OutOpt = None, as_json: JsonOpt = False,
) -> None:
    """`glassmate learn` on a simulated wearer: one IRC user's replies as the store of their glasses (in a
    temporary folder), trained, checked on the most recent sends, installed only if better. Writes the report
    (numbers only: no nick, no text)."""
    import tempfile

    from device.messages.store import MessageStore
    from lab.machine import machine_info
    from lab.wearer import fill_store, users_by_replies

    with clear_errors(), needs("train"):
        from federated.learn import learn, llama_check

        users = users_by_replies(data)
        if not 0 <= user_rank < len(users):
            raise typer.BadParameter(f"{data} has {len(users)} users with 50+ replies", param_hint="--user-rank")
        with tempfile.TemporaryDirectory() as tmp, MessageStore(Path(tmp) / "glassmate.db") as store:
            n = fill_store(store, data, users[user_rank], limit=sends)
            with progress() as bar:
                task = bar.add_task("learning", total=None)
                report = learn(store, Path(tmp) / "state", model, check_gguf=llama_check(model),
                               progress=lambda s, t, loss: bar.update(task, completed=s, total=t))
    doc = report.to_json() | {"data": data.name, "user_rank": user_rank, "replies_in_store": n,
                              "machine": machine_info()}
    write_result(out, doc)
    if as_json:
        print_json(doc)
        return
    console.print(f"{report.trained_on} trained on, {report.held_out} held out: perplexity of the true reply "
                  f"{report.perplexity['bare']} bare → {report.perplexity['after']}; {report.decision} "
                  f"({report.wall_s:.0f} s)", highlight=False)


@eval_app.command("wearer-life")
def eval_wearer_life_cmd(
    data: WearersOpt = IRC_TRAIN,
    wearers: Annotated[int, typer.Option(help="the N users with the most annotated replies live it")] = 2,
    days: Annotated[int, typer.Option(help="days of each wearer's life (their log days with enough replies)")] = 6,
    learn_every: Annotated[int, typer.Option(help="the device learns after every K days")] = 2,
    shown: Annotated[int, typer.Option(help="replies per day the glasses draft for and the wearer judges")] = 10,
    pick_at: Annotated[float, typer.Option(help="word F1 with the real reply at which a draft is picked")] = 0.5,
    federated: Annotated[Path | None, typer.Option(
        help="a `glassmate fl sim` run (over other users: --set first-client=N ≥ --wearers) whose global adapter "
             "starts the federated arm; without it that arm is left out")] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="catalog model")] = "smollm2-135m",
    out: Annotated[Path, typer.Option(help="folder for life.json and life.png")] = Path("life-out"),
    as_json: JsonOpt = False,
) -> None:
    """A simulated wearer's life: at each reply the glasses draft, the wearer picks the closest draft or dictates
    the real reply, the device learns every K days. Pick rate and likelihood of the true reply by day, for the
    bare model, on-device learning, and on-device learning from a federated start."""
    import json
    import tempfile

    from lab.machine import machine_info
    from lab.wearer import users_by_replies

    with clear_errors(), needs("train"):
        from lab.wearer_life import ARMS, Life, LifeConfig, config_json, live, plot, summary

        cfg = LifeConfig(days=days, learn_every=learn_every, shown_per_day=shown, pick_at=pick_at)
        users = users_by_replies(data)[:wearers]
        if federated is not None:
            first = int(json.loads((federated / "fl.json").read_text())["config"].get("first-client", 0))
            if first < wearers:
                raise fail(f"{federated} trained on the users from rank {first} on, the wearers among them: its "
                           f"first client must be ≥ {wearers} (--set first-client), so no wearer's own future is in it")
        arms = ARMS if federated is not None else ARMS[:2]
        life = Life.load(model)
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for w, user in enumerate(users):
                rows += live(life, data, user, cfg, arms, Path(tmp) / f"w{w}", federated,
                             progress=lambda line, w=w: err.print(f"wearer {w}: {line}", highlight=False))
    doc = {"model": model, "data": data.name, "wearers": len(users), "config": config_json(cfg),
           "federated_run": federated.name if federated else None, "arms": list(arms),
           "summary": summary(rows), "rows": [r.to_json() | {"wearer": i // (len(arms) * days)}
                                              for i, r in enumerate(rows)], "machine": machine_info()}
    out.mkdir(parents=True, exist_ok=True)
    write_result(out / "life.json", doc)
    plot(doc, out / "life.png")
    if as_json:
        print_json(doc["summary"])
        return
    table = Table("arm", *[f"day {d}" for d in range(1, days + 1)], title="drafts picked % · ppl of the true reply")
    for arm, ds in doc["summary"].items():
        table.add_row(arm, *[f"{100 * d['pick_rate']:.0f}% · {d['ppl']:.0f}" for d in ds])
    console.print(table)


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

    if profile and profile not in PROFILES:
        raise typer.BadParameter(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}",
                                 param_hint="--profile")
    try:
        counts = sorted({int(t) for t in threads.split(",")}) if threads else None
    except ValueError:
        raise typer.BadParameter(f"{threads!r} is not a comma-separated list of numbers", param_hint="--threads") \
            from None
    with clear_errors(), needs("bench"):
        cores = len(os.sched_getaffinity(0))
        if counts is None:
            counts = [min(PROFILES[profile]["threads"], cores)] if profile else [cores] if quick else sorted({1, cores})
        cfg = BenchConfig(models=[m.strip() for m in models.split(",") if m.strip()], threads=counts,
                          runs=3 if quick else runs, out=out, transformers=transformers, profile=profile)
        for m in cfg.models:
            if catalog.require_model(m).runtime != "llama":
                raise typer.BadParameter(f"{m} is an ONNX model; bench sets each model beside raw llama.cpp. "
                                         f"Measure ONNX variants with `glassmate quantize report --only {m}`",
                                         param_hint="--models")
        with err.status("benchmarking…") as status:
            report = run_bench(cfg, progress=lambda msg: status.update(msg))
    for w in report["warnings"]:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)
    console.print((out / "bench.md").read_text(), highlight=False)
    console.print(f"[dim]wrote {out / 'bench.json'}, {out / 'bench.md'}, latency.png, decode_vs_ceiling.png[/]")


def bench_ask(
    irc: Annotated[Path, typer.Option(help="folder of IRC *.raw.txt logs: the filler messages")] = Path(
        "../shared/data/ubuntu_irc/dev"),
    data: Annotated[Path, typer.Option(help="question set (its inboxes join the filler)")] = QUESTIONS,
    messages: Annotated[int, typer.Option(help="messages in the store")] = 10_000,
    model: AskModelOpt = None, threads: ThreadsOpt = None, n_ctx: CtxOpt = None,
    out: OutOpt = None, verifier: VerifierOpt = None, as_json: JsonOpt = False,
) -> None:
    """Ask latency and index cost with MESSAGES messages in the store (real IRC chat lines + the question set's
    inboxes)."""
    from device.ask.embedder import Embedder, fetch_embedder
    from lab.ask_bench import run_bench
    from lab.machine import machine_info

    with clear_errors(), needs("ask"):
        fetch_embedder()
        assistant = open_assistant(model or catalog.ask_model(), threads, n_ctx, adapters=False)
        checker = open_verifier(verifier, threads, n_ctx, required=True, beside=assistant)
        with progress() as bar:
            task = bar.add_task(f"indexing {messages} messages, then asking", total=None)
            try:
                result = run_bench(assistant, Embedder(threads=threads), irc, data, messages,
                                   progress=lambda d, t: bar.update(task, completed=d, total=t), verifier=checker)
            except ValueError as exc:
                raise fail(str(exc)) from None
    write_result(out, result | {"machine": machine_info(assistant.engine)})
    if as_json:
        print_json(result)
        return
    table = Table("measure", "value", title=f"ask at {result['messages']} messages ({result['model']})")
    for key, value in result.items():
        if key != "samples":
            table.add_row(key, str(value))
    console.print(table)


def bench_glance(
    after: Annotated[float, typer.Option(help="seconds between a card showing and the wearer's tap")] = 3.0,
    runs: Annotated[int, typer.Option(help="runs of the sample inbox per arm (the arms alternate)")] = 2,
    feed: Annotated[Path | None, typer.Option(help="JSONL feed to replay (default: the sample inbox)")] = None,
    model: ModelOpt = None, threads: ThreadsOpt = None, n_ctx: CtxOpt = None, adapters: AdaptersOpt = True,
    out: OutOpt = None, as_json: JsonOpt = False,
) -> None:
    """What the wearer waits for after tapping a card: tap → catch-up and tap → drafts, with the chat prepared in
    the background when its card showed (`hud --prepare`, the default) and without."""
    from device.assistant.core import Assistant
    from device.cli.common import feed_or_sample
    from lab.glance import run_glances
    from lab.machine import machine_info

    if after < 0 or runs < 1:
        raise typer.BadParameter("--after must be ≥ 0 and --runs ≥ 1")
    with clear_errors():
        first = open_assistant(model, threads, n_ctx, adapters)

        def fresh() -> Assistant:  # no thread state carries from one arm to the next
            return Assistant(first.engine, adapters=first.adapters, prefix_store=first.prefix_store,
                             paraphrase=first.paraphrase)

        with err.status("glancing…") as status:
            report = run_glances(fresh, feed_or_sample(feed), after, runs, first.engine.name,
                                 threads or len(os.sched_getaffinity(0)), progress=status.update)
    result = report.to_json() | {"machine": machine_info(first.engine)}
    write_result(out, result)
    if as_json:
        print_json(result)
        return
    table = Table("prepare", "n", "tap → catch-up p50 / p90 (s)", "tap → drafts p50 / p90 (s)",
                  title=f"the glance, {report.model}, tap {after:g} s after the card")
    for arm, row in report.summary().items():
        if isinstance(row, dict):
            table.add_row(arm, str(row["n"]), f"{row['to_summary_s']['p50']:.2f} / {row['to_summary_s']['p90']:.2f}",
                          f"{row['to_chips_s']['p50']:.2f} / {row['to_chips_s']['p90']:.2f}")
    console.print(table)
