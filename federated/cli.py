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

from device.catalog import CatalogError, human_size
from device.engines.adapters import load_adapters
from device.tasks import ADAPTER_TASKS, Task

app = typer.Typer(help="Task adapters (LoRA) for the small models: build them here, the assistant loads them.",
                  no_args_is_help=True)
console = Console()
err = Console(stderr=True)


@app.command("build")
def build_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="catalog model to adapt (its GGUF is the base)")],
    task: Annotated[str, typer.Option(help=f"one of: {', '.join(ADAPTER_TASKS)}")] = Task.CATCH_UP.value,
    data: Annotated[Path | None, typer.Option(
        help="training data: DialogSum-format JSONL for catch_up [default ../shared/data/dialogsum/"
             "dialogsum.dev.jsonl]; a folder of Ubuntu IRC logs for draft_replies [default "
             "../shared/data/ubuntu_irc/train]")] = None,
    epochs: Annotated[float | None, typer.Option(help="override the recipe's epochs")] = None,
    limit: Annotated[int | None, typer.Option(help="train on the first N examples only (smoke runs)")] = None,
    holdout: Annotated[int | None, typer.Option(help="first rows kept for evaluation (default: the recipe's)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the training report as JSON")] = False,
) -> None:
    """Train the task's LoRA on MODEL (fixed seed; resumes from its checkpoint if interrupted), export it as a GGUF
    LoRA adapter under models/built/adapters/ and register it with its sha256."""
    from device.messages.inbox import FeedError
    from federated.task_adapters import DEFAULT_DATA, build

    if task not in ADAPTER_TASKS:
        raise typer.BadParameter(f"{task!r} is not a task adapters are built for; one of: "
                                 f"{', '.join(ADAPTER_TASKS)}", param_hint="--task")
    task = Task(task)
    if data is None:
        data = DEFAULT_DATA[task]

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


fl_app = typer.Typer(help="Federated personalization of reply drafts with Flower (simulation and loopback "
                          "deployment).", no_args_is_help=True)


@fl_app.command("sim")
def fl_sim(
    clients: Annotated[int, typer.Option(help="clients (one real user each) taking part in every round")] = 20,
    rounds: Annotated[int, typer.Option(help="federated rounds")] = 5,
    real: Annotated[bool, typer.Option("--real", help="the real SmolLM2-135M (default: a tiny random model "
                                                      "with SmolLM2's tokenizer, CI speed)")] = False,
    dataset: Annotated[str, typer.Option(help="irc (one client per user) or shakespeare (per speaker)")] = "irc",
    data_train: Annotated[Path, typer.Option(help="IRC train folder, or tiny_shakespeare/input.txt")] = Path(
        "../shared/data/ubuntu_irc/train"),
    data_dev: Annotated[Path, typer.Option(help="IRC dev folder (held-out replies of the same users)")] = Path(
        "../shared/data/ubuntu_irc/dev"),
    noise: Annotated[float, typer.Option(help="DP noise multiplier (0: no DP)")] = 0.0,
    clip: Annotated[float, typer.Option(help="client-side clipping norm of each update")] = 1.0,
    aggregation: Annotated[str, typer.Option(help="fedavg, or with DP off: trimmed, median, krum")] = "fedavg",
    secagg: Annotated[bool, typer.Option("--secagg", help="SecAgg+ rounds: the server sees only the sum; clients "
                                                          "add the DP noise")] = False,
    secagg_drop: Annotated[str, typer.Option(help="dropout drill: PID@ROUND leaves after the key exchange")] = "",
    local_steps: Annotated[int, typer.Option(help="local optimizer steps per round")] = 8,
    personal_steps: Annotated[int, typer.Option(help="private fine-tuning steps at evaluation")] = 8,
    eval_every: Annotated[int, typer.Option(help="evaluate every N rounds (always round 0 and the last)")] = 1,
    eval_examples: Annotated[int, typer.Option(help="held-out replies per client per evaluation")] = 16,
    canaries: Annotated[int, typer.Option(help="privacy audit: plant a canary in the first N clients")] = 0,
    round0_from: Annotated[Path | None, typer.Option(
        help="reuse round 0 (the bare model and the untrained adapter, the same for every noise level) from this "
             "run's fl.json; its model, data, seed and evaluation settings must match")] = None,
    settings: Annotated[list[str] | None, typer.Option(
        "--set", help="any other run-config key of pyproject's [tool.flwr.app.config], as KEY=VALUE (repeat): "
                      "e.g. min-messages=20, lora-top-layers=8, eval-clients=40, eval-ranking=false")] = None,
    out: Annotated[Path, typer.Option(help="where fl.json, logs and the adapter go")] = Path("fl-run"),
    as_json: Annotated[bool, typer.Option("--json", help="print fl.json's final block")] = False,
) -> None:
    """Run the Flower app on the simulation engine: a SuperLink on loopback (stopped by PID afterwards)."""
    from federated.launch import LaunchError, simulation

    out = out.resolve()
    run_config = {"model": "smollm2-135m" if real else "tiny", "dataset": dataset,
                  "data-train": str(data_train.resolve()), "data-dev": str(data_dev.resolve()),
                  "num-clients": clients, "clients-per-round": clients, "num-rounds": rounds,
                  "noise-multiplier": noise, "clipping-norm": clip, "aggregation": aggregation,
                  "secagg": secagg, "secagg-drop": secagg_drop, "min-clients": clients - 1 if secagg_drop else 0,
                  "local-steps": local_steps, "personal-steps": personal_steps, "eval-every": eval_every,
                  "eval-examples": eval_examples, "canaries": canaries, "out-dir": str(out),
                  "round0-from": str(round0_from.resolve()) if round0_from else ""}
    run_config |= _settings(settings or [])
    try:
        with err.status(f"federated simulation: {clients} clients, {rounds} rounds (logs in {out})…"):
            simulation(out, clients, run_config)
    except LaunchError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    doc = json.loads((out / "fl.json").read_text()) if (out / "fl.json").is_file() else {}
    if "final" not in doc:
        err.print(f"[bold red]error:[/] the run did not finish: {_last_error(out / 'flwr-run.log')}",
                  highlight=False)
        raise typer.Exit(1)
    if as_json:
        print(json.dumps(doc.get("final", {}), indent=2))
        return
    table = Table("round", "train loss", "ppl base", "ppl global", "ppl personal", "MRR personal", "ε", "wall s")
    for r in doc["rounds"]:
        table.add_row(*(str(r.get(k) if not isinstance(r.get(k), float) else round(r[k], 3))
                        for k in ("round", "train_loss", "ppl_base", "ppl_global", "ppl_personal", "mrr_personal",
                                  "epsilon", "wall_s")))
    console.print(table)


def _last_error(log: Path) -> str:
    """The exception the ServerApp or a ClientApp raised, from the run's log (the simulation exits 0 after one)."""
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    errors = [ln.strip() for ln in lines if ln.strip().split(":")[0].endswith(("Error", "Exception"))]
    return f"{errors[-1]} (log: {log})" if errors else f"see {log}"


def _settings(pairs: list[str]) -> dict:
    """KEY=VALUE pairs as run-config entries, typed like the key's default in pyproject."""
    import tomllib

    from device.paths import REPO_ROOT

    defaults = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    out: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in defaults:
            raise typer.BadParameter(f"{pair!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(defaults))}",
                                     param_hint="--set")
        like = defaults[key]
        try:
            if isinstance(like, bool):
                if value.lower() not in ("true", "false"):
                    raise ValueError(value)
                out[key] = value.lower() == "true"
            else:
                out[key] = type(like)(value)
        except ValueError:
            raise typer.BadParameter(f"{key} takes a {type(like).__name__}, not {value!r}", param_hint="--set") \
                from None
    return out


@fl_app.command("deploy")
def fl_deploy(
    nodes: Annotated[int, typer.Option(help="SuperNodes on 127.0.0.1, node i holding client partition i")] = 3,
    rounds: Annotated[int, typer.Option(help="federated rounds")] = 2,
    real: Annotated[bool, typer.Option("--real", help="the real SmolLM2-135M (default: the tiny model)")] = False,
    dataset: Annotated[str, typer.Option(help="irc or shakespeare")] = "irc",
    data_train: Annotated[Path, typer.Option(help="IRC train folder, or tiny_shakespeare/input.txt")] = Path(
        "../shared/data/ubuntu_irc/train"),
    data_dev: Annotated[Path, typer.Option(help="IRC dev folder")] = Path("../shared/data/ubuntu_irc/dev"),
    round_timeout: Annotated[float, typer.Option(help="seconds to wait for a round's replies")] = 600.0,
    noise: Annotated[float, typer.Option(help="DP noise multiplier (0: no DP)")] = 0.0,
    clip: Annotated[float, typer.Option(help="client-side clipping norm of each update")] = 1.0,
    secagg: Annotated[bool, typer.Option("--secagg", help="SecAgg+ rounds (clients add the DP noise)")] = False,
    stores: Annotated[list[Path] | None, typer.Option(
        "--store", help="a wearer's message store (repeat per node): each node is a `glassmate fl join` on its "
                        "own store, over TLS with SuperNode authentication; --nodes and the data are then unused")
    ] = None,
    local_steps: Annotated[int, typer.Option(help="local optimizer steps per round")] = 8,
    personal_steps: Annotated[int, typer.Option(help="private fine-tuning steps at evaluation")] = 8,
    eval_examples: Annotated[int, typer.Option(help="held-out replies per client per evaluation")] = 16,
    out: Annotated[Path, typer.Option(help="where fl.json and logs go")] = Path("fl-deploy"),
    as_json: Annotated[bool, typer.Option("--json", help="print fl.json's final block")] = False,
) -> None:
    """Run the same Flower app on the deployment engine: a SuperLink and N SuperNodes on loopback (stopped by PID
    afterwards). A node that dies mid-run is dropped and the run finishes with the rest."""
    from federated.launch import LaunchError, deployment, join_deployment

    out = out.resolve()
    if stores:
        nodes = len(stores)
    run_config = {"model": "smollm2-135m" if real else "tiny", "dataset": dataset,
                  "data-train": str(data_train.resolve()), "data-dev": str(data_dev.resolve()),
                  "num-clients": nodes, "clients-per-round": nodes, "min-clients": max(1, nodes - 1),
                  "num-rounds": rounds, "round-timeout": round_timeout, "noise-multiplier": noise,
                  "clipping-norm": clip, "secagg": secagg, "local-steps": local_steps,
                  "personal-steps": personal_steps, "eval-examples": eval_examples,
                  "out-dir": str(out / "run" if stores else out)}
    try:
        with err.status(f"federated deployment: {nodes} SuperNodes, {rounds} rounds (logs in {out})…"):
            if stores:
                join_deployment(out, [s.resolve() for s in stores], run_config)
            else:
                deployment(out, nodes, run_config)
    except LaunchError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    doc = json.loads((out / "run" / "fl.json" if stores else out / "fl.json").read_text())
    print(json.dumps(doc.get("final", {}), indent=2) if as_json else
          f"{len(doc['rounds']) - 1} rounds; replies per round: {[r.get('replied') for r in doc['rounds'][1:]]}")


@fl_app.command("noise-budget")
def fl_noise_budget(
    run: Annotated[Path, typer.Argument(help="a run trained without noise (its fl.json and global_adapter.npz)")],
    noise: Annotated[float, typer.Option(help="the DP noise multiplier to price")] = 1.0,
    tolerance: Annotated[float, typer.Option(help="acceptable relative perplexity cost")] = 0.02,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Clients per round that noise multiplier NOISE needs to cost less than TOLERANCE held-out perplexity: the
    noise R rounds would add (std z·C·√R/m) put on the run's noise-free global adapter, for m = 1 … 50 000.
    Writes noise_budget.json beside fl.json."""
    from federated.noise_budget import CLIENTS, budget

    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      console=err, transient=True) as progress:
            bar = progress.add_task("perplexity under noise", total=len(CLIENTS))
            out = budget(run, noise, tolerance, progress=lambda d, t: progress.update(bar, completed=d))
    except (OSError, ValueError, KeyError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    (run / "noise_budget.json").write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    if as_json:
        print(json.dumps(out, indent=2))
        return
    table = Table("clients per round", "noise std per weight", "held-out ppl", "cost",
                  title=f"noise multiplier {noise}, clip {out['clipping_norm']}, {out['rounds']} rounds; "
                        f"noise-free ppl {out['ppl_noise_free']:.2f}")
    for r in out["rows"]:
        table.add_row(str(r["clients_per_round"]), f"{r['noise_std']:.2e}", f"{r['ppl']:.2f}", f"{r['cost']:+.1%}")
    console.print(table)
    console.print(f"clients per round for < {tolerance:.0%}: {out['clients_needed'] or 'more than tried'}")


@fl_app.command("scale-curve")
def fl_scale_curve(
    runs: Annotated[list[Path], typer.Argument(help="`fl sim` run folders (their fl.json), DP and noise-free")],
    budget: Annotated[Path | None, typer.Option(help="a noise_budget.json to draw the prediction from")] = None,
    out: Annotated[Path, typer.Option(help="the plot to write")] = Path("scale.png"),
    as_json: Annotated[bool, typer.Option("--json", help="print the runs' rows as JSON")] = False,
) -> None:
    """Utility against clients per round: each run's held-out perplexity of the true reply under the global
    adapter, beside the bare model and the noise budget's prediction."""
    from federated.plots import plot_scale, scale_rows

    try:
        rows = scale_rows(runs)
        plot_scale(runs, budget, out)
    except (OSError, ValueError, KeyError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("run", "clients/round", "z", "ε", "ppl bare", "ppl global")
    for r in rows:
        table.add_row(r["run"], str(r["clients"]), str(r["noise"]),
                      "∞" if r["epsilon"] is None else f"{r['epsilon']:.2f}", f"{r['ppl_base']:.1f}",
                      f"{r['ppl_global']:.3g}")
    console.print(table)
    console.print(f"→ {out}")


@fl_app.command("drafts")
def fl_drafts(
    run: Annotated[Path, typer.Argument(help="a --real run folder (fl.json, devices/state/fl/<id>/…gguf)")],
    client: Annotated[int, typer.Option(help="which wearer (0 = the one who wrote most)")] = 0,
    n: Annotated[int, typer.Option(help="held-out conversations to compare on")] = 5,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: all cores)")] = None,
    out: Annotated[Path | None, typer.Option(help="write the comparison JSON here too")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """The wearer's personalized adapter in the glasses' llama.cpp engine vs the bare model, on their held-out
    conversations: likelihood of what they really replied, and the reply drafts offered."""
    import sys

    from federated.personal_drafts import compare

    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      console=err, transient=True) as progress:
            bar = progress.add_task("drafting with and without the adapter", total=n)
            doc = compare(run, client, n, threads, progress=lambda d, t: progress.update(bar, completed=d, total=t))
    except (OSError, ValueError, KeyError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    doc["command"] = " ".join(["glassmate", *sys.argv[1:]])
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    summary = {k: v for k, v in doc.items() if k != "rows"}
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    console.print(f"client {client} ({doc['client_id']}), {doc['n']} held-out replies: perplexity of the true reply "
                  f"{doc['ppl_true_reply_bare']:.1f} bare → {doc['ppl_true_reply_personal']:.1f} personalized; "
                  f"drafts changed in {doc['drafts_changed']}/{doc['n']}", highlight=False)
    for r in doc["rows"]:
        console.print(f"  bare:     {r['drafts_bare']}\n  personal: {r['drafts_personal']}", highlight=False)


MODEL_HELP = "catalog model (default: the default model)"


def _personal(model: str | None):
    from device.catalog import default_model
    from device.engines.personal import PersonalAdapters
    from device.paths import state_dir

    return PersonalAdapters(state_dir(), model or default_model())


@app.command("history")
def adapters_history(
    model: Annotated[str | None, typer.Option("--model", "-m", help=MODEL_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The wearer's personal replies adapters for MODEL: every version `glassmate learn` made, which is in effect,
    and the held-out numbers that decided each."""
    mine = _personal(model)
    try:
        current = mine.current()  # checks the file in effect (a corrupt one is rolled back here, with a warning)
        history = mine.history()
    except CatalogError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps({"model": mine.model, "current": history.current,
                          "versions": [v.to_json() for v in history.versions]}, indent=2))
        return
    if not history.versions:
        console.print(f"no personal adapter for {mine.model} yet: `glassmate learn` makes one from your sends")
        return
    table = Table("version", "status", "made", "sends trained / held out", "held-out ppl before → after", "")
    import math

    for v in history.versions:
        r = v.report
        ppl = (f"{math.exp(r['loss_before']):.1f} → {math.exp(r['loss_after']):.1f}" if "loss_after" in r else "–")
        table.add_row(f"v{v.version}", v.status.value, v.created, f"{r.get('trained_on', '–')} / "
                      f"{r.get('held_out', '–')}", ppl, "in effect" if current and v.version == current.version
                      else "")
    console.print(table)
    if current is None:
        console.print("in effect: the bare model")


@app.command("rollback")
def adapters_rollback(
    model: Annotated[str | None, typer.Option("--model", "-m", help=MODEL_HELP)] = None,
    to: Annotated[int | None, typer.Option(help="the version to put back (default: the one before)")] = None,
) -> None:
    """Put the previous personal adapter (or version --to) back in effect; with none before, the bare model."""
    mine = _personal(model)
    try:
        back = mine.rollback(to)
    except CatalogError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    console.print(f"in effect for {mine.model}: " + (f"personal adapter v{back.version}" if back else "the bare model"))


learn_app = typer.Typer(help="On-device learning: the wearer's personal replies adapter from what they sent.",
                        invoke_without_command=True)


@learn_app.callback()
def learn_cmd(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option("--model", "-m", help=MODEL_HELP)] = None,
    holdout: Annotated[int | None, typer.Option(help="most recent sends held out to decide the install")] = None,
    store_path: Annotated[Path | None, typer.Option("--store", help="the message store (default: the wearer's)")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Train the personal replies adapter on your sent replies, check it on the most recent ones (never trained
    on) and install it only if they are more likely under it than under what is in effect. Stopped part-way, the
    next run resumes; nothing is installed until a run finishes."""
    if ctx.invoked_subcommand is not None:
        return
    from device.catalog import default_model
    from device.cli.common import device_store
    from device.messages.store import StoreError
    from device.paths import state_dir
    from federated.learn import HOLDOUT, NotEnoughData, learn, llama_check

    name = model or default_model()
    try:
        with device_store(store_path) as store, Progress(
                TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), console=err) as progress:
            bar = progress.add_task(f"learning from your replies ({name})", total=None, loss="-")
            report = learn(store, state_dir(), name, holdout=HOLDOUT if holdout is None else holdout,
                           check_gguf=llama_check(name),
                           progress=lambda s, t, loss: progress.update(bar, completed=s, total=t, loss=f"{loss:.3f}"))
    except (NotEnoughData, StoreError, CatalogError, OSError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
        return
    p = report.perplexity
    verdict = (f"installed as v{report.version}" if report.decision == "installed" else
               f"not installed (v{report.version} recorded as rejected): no better than what is in effect")
    console.print(f"{report.trained_on} sends trained on, the {report.held_out} most recent held out: perplexity "
                  f"of what you really sent {p['before']} → {p['after']} (bare model {p['bare']}); {verdict}",
                  highlight=False)


@learn_app.command("status")
def learn_status(
    model: Annotated[str | None, typer.Option("--model", "-m", help=MODEL_HELP)] = None,
    store_path: Annotated[Path | None, typer.Option("--store", help="the message store (default: the wearer's)")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """How much there is to learn from (counts only, never a message): draft outcomes, sent replies, and the
    personal adapter in effect."""
    from device.cli.common import device_store
    from device.glasses.feedback import FeedbackLog
    from device.messages.store import StoreError
    from federated.learn import HOLDOUT, MIN_TRAIN, wearer_sends

    mine = _personal(model)
    try:
        with device_store(store_path) as store:
            counts, sends = FeedbackLog(store).counts(), len(wearer_sends(store))
        current = mine.current()
    except (StoreError, CatalogError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    doc = {"drafts": counts, "sent_replies": sends, "needed": HOLDOUT + MIN_TRAIN, "model": mine.model,
           "personal_adapter": current.version if current else None}
    if as_json:
        print(json.dumps(doc, indent=2))
        return
    console.print(f"drafts shown: {counts['total']} sets in {counts['chats']} chats — picked {counts['picked']}, "
                  f"edited {counts['edited']}, dictated instead {counts['dictated']}, dismissed {counts['dismissed']}")
    console.print(f"sent replies to learn from: {sends} (learning needs {doc['needed']})")
    console.print(f"personal adapter for {mine.model}: " + (f"v{current.version}" if current else "none (bare model)"))


@fl_app.command("keys")
def fl_keys(
    folder: Annotated[Path | None, typer.Option("--dir", help="where the key pair lives (default: the state "
                                                              "folder's fl-node/keys)")] = None,
) -> None:
    """This device's SuperNode key pair, made once: the private key stays here; give the public key to the
    federation's operator, who registers it (`flwr supernode register FILE`) before the glasses can join."""
    from device.paths import state_dir
    from federated.credentials import node_keys

    keys = node_keys(folder or state_dir() / "fl-node" / "keys")
    console.print(f"public key (register it with the operator): {keys.public}\n{keys.public.read_text().strip()}",
                  highlight=False, soft_wrap=True)


@fl_app.command("join")
def fl_join(
    superlink: Annotated[str, typer.Option(help="the federation's SuperLink, HOST:PORT")],
    root_certificates: Annotated[Path, typer.Option(help="the CA certificate that signed the SuperLink's TLS "
                                                         "certificate (from the operator)")],
    key: Annotated[Path | None, typer.Option(help="this device's private key (default: `glassmate fl keys`)")]
    = None,
    store: Annotated[Path | None, typer.Option(help="the message store to train on (default: the wearer's)")]
    = None,
) -> None:
    """Take part in federated rounds with this device's own messages: a Flower SuperNode over TLS, authenticated
    by this device's key, whose ClientApp trains on the wearer's sent replies in their store. Only the clipped
    update (and numbers) leave, through the egress gate; after the last round the personalized adapter is
    installed here if it is better on the wearer's most recent sends. Runs until the federation ends it."""
    import os
    import signal
    import subprocess
    import sys

    from device.paths import state_dir
    from federated.credentials import node_keys
    from federated.launch import LaunchError, free_port, tool

    store = (store or state_dir() / "glassmate.db").resolve()
    if not store.is_file():
        err.print(f"[bold red]error:[/] no message store at {store}", highlight=False)
        raise typer.Exit(1)
    if not root_certificates.is_file():
        err.print(f"[bold red]error:[/] no CA certificate at {root_certificates}", highlight=False)
        raise typer.Exit(1)
    if key is None:
        key = node_keys(state_dir() / "fl-node" / "keys").private
    env = os.environ.copy()
    env.setdefault("FLWR_HOME", str(state_dir() / "fl-node" / "flwr-home"))
    env.update({"FLWR_DISABLE_UPDATE_CHECK": "1", "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
                "PYTHONUNBUFFERED": "1",
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])})
    try:
        args = [tool("flower-supernode"), "--superlink", superlink, "--root-certificates",
                str(root_certificates.resolve()), "--auth-supernode-private-key", str(key.resolve()),
                "--host", "127.0.0.1", "--port", str(free_port()), "--isolation", "subprocess",
                "--node-config", f'store="{store}"']
    except LaunchError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    proc = subprocess.Popen(args, env=env)

    def forward(signum, _frame) -> None:  # stopping `glassmate fl join` stops the SuperNode it started
        proc.send_signal(signum)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = proc.wait()
    if code != 0:
        err.print(f"[bold red]error:[/] the SuperNode exited with code {code} (refused: is this device's public "
                  f"key registered with the federation? `glassmate fl keys` shows it)", highlight=False)
    raise typer.Exit(code)
