"""The aggregator of a federated run (Flower ServerApp, Message API).

FedAvg over the shared LoRA (or FedTrimmedAvg / FedMedian / Krum where DP is off), wrapped in Flower's
DifferentialPrivacyClientSideFixedClipping with its RDP accountant when noise is on (clients clip, the server adds
Gaussian noise to the mean and reports ε at δ). With `secagg = true` the round is SecAgg+ instead
(federated.secure_aggregation): the server sees only the unmasked sum, the clients add the noise.
Our own round loop around the strategy's configure/aggregate
steps, so each round records train loss, held-out perplexity and ranking (bare / global / personalized), ε, bytes
per client, dropped clients and wall time into fl.json; the final global adapter is exported as a GGUF LoRA.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    FedAvg,
    FedMedian,
    FedTrimmedAvg,
    Krum,
)

from federated import task
from federated.plots import plot_run
from federated.secure_aggregation import SecAggPlus, apply_update, effective_noise

app = ServerApp()
DELTA = 1e-5
AGGREGATIONS = ("fedavg", "trimmed", "median", "krum")


def make_strategy(n: int, aggregation: str, noise: float, clip: float, min_nodes: int | None = None):
    """The strategy for `n` clients per round (every available node, waiting for at least `min_nodes`: a run
    goes on when a node dies); DP (noise > 0) requires FedAvg (uniform weights, accountable)."""
    least = n if min_nodes is None else min_nodes
    common = {"fraction_train": 1.0, "fraction_evaluate": 1.0, "min_train_nodes": least,
              "min_evaluate_nodes": least, "min_available_nodes": least}
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}")
    if noise > 0 and aggregation != "fedavg":
        raise ValueError("differential privacy is accounted for FedAvg only; robust aggregation runs with DP off")
    base = {"fedavg": FedAvg, "trimmed": FedTrimmedAvg, "median": FedMedian, "krum": Krum}[aggregation](**common)
    if noise <= 0:
        return base, None
    accountant = _accountant(n)
    return DifferentialPrivacyClientSideFixedClipping(base, noise, clip, n, accountant=accountant), accountant


def _mean(replies: list[Message], key: str) -> float | None:
    vals = [float(r.content["metrics"][key]) for r in replies
            if not r.has_error() and "metrics" in r.content and key in r.content["metrics"]]
    return float(np.mean(vals)) if vals else None


def _record_size(record: ArrayRecord) -> int:
    return int(sum(np.asarray(a).nbytes for a in record.to_numpy_ndarrays()))


@app.main()
def main(grid: Grid, context: Context) -> None:
    rc = context.run_config
    cfg = task.RunConfig.from_flower(rc)
    rounds = int(rc.get("num-rounds", 5))
    n = int(rc.get("clients-per-round", cfg.num_clients))
    noise, clip = float(rc.get("noise-multiplier", 0.0)), float(rc.get("clipping-norm", 1.0))
    aggregation = str(rc.get("aggregation", "fedavg"))
    out = Path(str(rc.get("out-dir", "fl-run"))).expanduser()
    timeout = float(rc.get("round-timeout", 3600))
    eval_every = max(1, int(rc.get("eval-every", 1)))
    out.mkdir(parents=True, exist_ok=True)

    names = task.adapter_names(cfg)
    arrays = ArrayRecord(OrderedDict((k, Array(a)) for k, a in zip(names, task.initial_arrays(cfg), strict=True)))
    least = int(rc.get("min-clients", 0)) or n
    secagg = bool(rc.get("secagg", False))
    if secagg:
        # SecAgg+: the clients add the noise (the server never sees one update), a standalone accountant tracks ε
        if aggregation != "fedavg":
            raise ValueError("secure aggregation sums updates: robust aggregation needs them one by one")
        strategy, _ = make_strategy(n, "fedavg", 0.0, clip, least)
        accountant = _accountant(n) if noise > 0 else None
    else:
        strategy, accountant = make_strategy(n, aggregation, noise, clip, least)
    history: list[dict] = []
    run_start = time.perf_counter()
    reused = str(rc.get("round0-from", ""))
    evaluation = _reused_round0(reused, rc) if reused else _evaluate(grid, strategy, 0, arrays, timeout)
    history.append({"round": 0, **evaluation})
    _write(out, cfg, rc, history, accountant, None)
    with SecAggPlus(context, n, least, timeout) as secure:
        for rnd in range(1, rounds + 1):
            t0 = time.perf_counter()
            if secagg:
                arrays, row = _secagg_round(secure, grid, rnd, arrays, n, noise, clip, accountant)
            else:
                arrays, row = _plain_round(strategy, grid, rnd, arrays, timeout)
            due = rnd % eval_every == 0 or rnd == rounds
            evaluation = _evaluate(grid, strategy, rnd, arrays, timeout) if due else {}
            spent = accountant.get_privacy_spent() if accountant else None
            history.append({"round": rnd, **row, "secagg": secagg, "bytes_down_per_client": _record_size(arrays),
                            "epsilon": spent.epsilon if spent else None, **evaluation,
                            "wall_s": round(time.perf_counter() - t0, 2)})
            _write(out, cfg, rc, history, accountant, None)
    final = _final(history, accountant, noise)
    if cfg.canaries > 0:
        final["canary_audit"] = _canary_audit(cfg, arrays)
    _write(out, cfg, rc, history, accountant, final | {"wall_s": round(time.perf_counter() - run_start, 1)})
    np.savez(out / "global_adapter.npz", **{k.replace(".", "__"): np.asarray(v) for k, v in
                                            zip(arrays.keys(), arrays.to_numpy_ndarrays(), strict=True)})
    plot_run(out / "fl.json")
    task.export_gguf(cfg, list(arrays.keys()), arrays.to_numpy_ndarrays(), out / "global_adapter.gguf", "global")


# what makes round 0 the same in two runs: the noise level, aggregation and rounds only act from round 1 on
ROUND0_KEYS = ("model", "dataset", "data-train", "data-dev", "min-messages", "first-client", "num-clients",
               "clients-per-round", "personal-steps", "batch-size", "lr", "lora-r", "lora-top-layers", "max-len",
               "eval-examples", "eval-clients", "eval-ranking", "seed", "canaries", "canary-copies")


def _reused_round0(path: str, rc) -> dict:
    """Round 0 of an earlier run with the same model, data and evaluation settings (it measured the bare model and
    the untrained adapter personalized: nothing the noise level or the later rounds change)."""
    doc = json.loads(Path(path).read_text())
    mine, theirs = dict(rc), doc["config"]
    differ = [k for k in ROUND0_KEYS if str(mine.get(k)) != str(theirs.get(k))]
    if differ:
        raise ValueError(f"round0-from {path}: its run differs in {differ}; round 0 cannot be reused")
    row = dict(doc["rounds"][0])
    row.pop("round", None)
    return row | {"reused_from": path}


def _accountant(population: int):
    from flwr.supercore.privacy_accounting import NeighboringRelation, PrivacyConfig, SamplingMethod
    from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

    return RdpAccountant(PrivacyConfig(target_delta=DELTA, population_size=population,
                                       neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
                                       sampling_method=SamplingMethod.NO_AMPLIFICATION))


def _plain_round(strategy, grid: Grid, rnd: int, arrays: ArrayRecord, timeout: float) -> tuple[ArrayRecord, dict]:
    messages = list(strategy.configure_train(rnd, arrays, ConfigRecord({"server-round": rnd}), grid))
    replies = list(grid.send_and_receive(messages, timeout=timeout))
    ok = [r for r in replies if not r.has_error()]
    new_arrays, _ = strategy.aggregate_train(rnd, replies)
    return (arrays if new_arrays is None else new_arrays), {
        "train_loss": _mean(ok, "train-loss"), "update_norm": _mean(ok, "update-norm"), "clients": len(messages),
        "replied": len(ok), "dropped": len(messages) - len(ok), "aggregated": new_arrays is not None,
        "bytes_up_per_client": _mean(ok, "bytes-up")}


def _secagg_round(secure: SecAggPlus, grid: Grid, rnd: int, arrays: ArrayRecord, n: int, noise: float, clip: float,
                  accountant) -> tuple[ArrayRecord, dict]:
    from flwr.supercore.privacy_accounting import GaussianPrivacyEvent

    result = secure.train_round(grid, rnd, arrays, {"server-round": rnd, "clipping-norm": clip})
    if result.mean_update is not None:
        arrays = apply_update(arrays, result.mean_update)
        if accountant is not None and result.replied:
            # the noise shares of clients that dropped never reached the sum: account for what did
            accountant.compose(GaussianPrivacyEvent(effective_noise(noise, n, result.replied), n, n))

    def mean(key: str) -> float | None:
        vals = [float(m[key]) for m in result.metrics if key in m]
        return float(np.mean(vals)) if vals else None
    return arrays, {"train_loss": mean("train-loss"), "update_norm": mean("update-norm"), "clients": n,
                    "replied": result.replied, "dropped": n - result.replied,
                    "aggregated": result.mean_update is not None, "bytes_up_per_client": mean("bytes-up")}


def _canary_audit(cfg: task.RunConfig, arrays: ArrayRecord) -> dict:
    from federated.canaries import audit, canaries
    from federated.lora import load_adapter_state

    lm, tok = task.load(cfg)
    load_adapter_state(lm, [np.asarray(a) for a in arrays.to_numpy_ndarrays()])
    return audit(lm, tok, canaries(cfg.canaries, cfg.seed))


def _evaluate(grid: Grid, strategy, rnd: int, arrays: ArrayRecord, timeout: float) -> dict:
    # the bare model never changes: the clients measure it once, in round 0
    config = ConfigRecord({"server-round": rnd, "eval-base": rnd == 0})
    messages = list(strategy.configure_evaluate(rnd, arrays, config, grid))
    replies = [r for r in grid.send_and_receive(messages, timeout=timeout) if not r.has_error()]
    keys = ("ppl-base", "ppl-global", "ppl-personal", "mrr-base", "mrr-global", "mrr-personal", "p1-base",
            "p1-global", "p1-personal", "personal-from-global", "personal-installed")
    evaluated = sum(1 for r in replies if "ppl-global" in r.content["metrics"])
    return {k.replace("-", "_"): _mean(replies, k) for k in keys} | {"evaluated": evaluated}


def _final(history: list[dict], accountant, noise: float) -> dict:
    last = history[-1]
    first = history[0]
    up = [h["bytes_up_per_client"] for h in history[1:] if h.get("bytes_up_per_client")]
    return {"ppl_base": first["ppl_base"], "ppl_global": last["ppl_global"], "ppl_personalized": last["ppl_personal"],
            "mrr_base": first["mrr_base"], "mrr_global": last["mrr_global"], "mrr_personalized": last["mrr_personal"],
            "epsilon": accountant.get_privacy_spent().epsilon if accountant else None,
            "delta": DELTA if accountant else None, "noise_multiplier": noise,
            "secagg": bool(history[-1].get("secagg")) if len(history) > 1 else False,
            "bytes_up_per_client_round": float(np.mean(up)) if up else None}


def _write(out: Path, cfg: task.RunConfig, rc, history: list[dict], accountant, final: dict | None) -> None:
    doc = {"config": {k: v for k, v in dict(rc).items()}, "rounds": history}
    if final is not None:
        doc["final"] = final
    tmp = out / "fl.json.partial"
    tmp.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    tmp.replace(out / "fl.json")
