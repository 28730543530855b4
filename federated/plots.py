"""fl.json → curves.png: what a run did per round, one panel per question (did training converge, did the held-out
replies get likelier, did ranking improve, what privacy did it cost, what did it cost the network)."""

from __future__ import annotations

import json
from pathlib import Path

PANELS = [
    ("train loss", [("train_loss", "clients' mean")]),
    ("held-out perplexity of the true reply", [("ppl_base", "base"), ("ppl_global", "global"),
                                               ("ppl_personal", "personalized")]),
    ("reply ranking MRR (10 candidates)", [("mrr_base", "base"), ("mrr_global", "global"),
                                           ("mrr_personal", "personalized")]),
    ("ε at δ = 1e-5", [("epsilon", "spent so far")]),
    ("kB per client per round", [("bytes_up_per_client", "up"), ("bytes_down_per_client", "down")]),
    ("wall time per round (s)", [("wall_s", "round")]),
]


def plot_run(fl_json: Path, out: Path | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    doc = json.loads(Path(fl_json).read_text(encoding="utf-8"))
    rounds = doc.get("rounds", [])
    out = Path(out) if out else Path(fl_json).with_name("curves.png")
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (title, series) in zip(axes.flat, PANELS, strict=True):
        for key, label in series:
            pts = [(r["round"], r[key]) for r in rounds if r.get(key) is not None]
            if key.startswith("bytes"):
                pts = [(x, y / 1000) for x, y in pts]
            if key.endswith("_base") and len(pts) == 1:  # measured once (round 0): the bare model never changes
                ax.axhline(pts[0][1], color="grey", linestyle="--", label=label)
            elif pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=label)
        values = [y for line in ax.get_lines() for y in line.get_ydata()]
        if not values:  # e.g. ranking, when the run measured perplexity only
            ax.set_title(title, fontsize=10)
            ax.text(0.5, 0.5, "not measured in this run", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        if "perplexity" in title and values and min(values) > 0 and max(values) / min(values) > 20:
            ax.set_yscale("log")  # DP noise can wreck the global adapter by orders of magnitude
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.get_yscale() == "linear":
            ax.ticklabel_format(axis="y", useOffset=False)
        if len(series) > 1:
            ax.legend(fontsize=8)
    cfg = doc.get("config", {})
    fig.suptitle(f"{cfg.get('model', '?')} · {cfg.get('clients-per-round', '?')} clients · noise "
                 f"{cfg.get('noise-multiplier', 0)} · {'SecAgg+' if cfg.get('secagg') else 'plain'} aggregation")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def scale_rows(runs: list[Path]) -> list[dict]:
    """One row per finished run: clients per round, noise, ε and the held-out perplexities it ended with."""
    rows = []
    for run in runs:
        if not (Path(run) / "fl.json").is_file():
            continue
        doc = json.loads((Path(run) / "fl.json").read_text(encoding="utf-8"))
        if "final" not in doc:
            continue
        rc, f = doc["config"], doc["final"]
        rows.append({"run": Path(run).name, "clients": int(rc["clients-per-round"]),
                     "noise": float(rc.get("noise-multiplier", 0.0)), "rounds": int(rc["num-rounds"]),
                     "epsilon": f.get("epsilon"), "ppl_base": f["ppl_base"], "ppl_global": f["ppl_global"],
                     "evaluated": doc["rounds"][-1].get("evaluated"), "wall_s": f.get("wall_s")})
    return sorted(rows, key=lambda r: (r["noise"], r["clients"]))


def plot_scale(runs: list[Path], budget: Path | None, out: Path) -> Path:
    """Utility against clients per round: the DP runs' global adapter (held-out perplexity of the true reply)
    beside the bare model, the noise-free run, and what the noise budget predicted for the same noise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = scale_rows(runs)
    dp = [r for r in rows if r["noise"] > 0]
    free = [r for r in rows if r["noise"] == 0]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    if dp:
        z, eps = dp[0]["noise"], dp[0]["epsilon"]
        ax.plot([r["clients"] for r in dp], [r["ppl_global"] for r in dp], marker="o",
                label=f"DP, measured (z = {z}, ε = {eps:.2f})")
    if budget is not None and Path(budget).exists():
        nb = json.loads(Path(budget).read_text(encoding="utf-8"))
        pts = [x for x in nb["rows"] if x["clients_per_round"] >= 5]
        ax.plot([x["clients_per_round"] for x in pts], [x["ppl"] for x in pts], ls="--", marker=".",
                label=f"noise budget's prediction (z = {nb['noise_multiplier']})")
    if rows:
        ax.axhline(rows[0]["ppl_base"], color="grey", ls=":", label="bare model")
    for r in free:
        ax.axhline(r["ppl_global"], color="green", ls="-.", lw=0.8, label=f"no noise, {r['clients']} clients")
    ax.set(xscale="log", yscale="log", xlabel="clients per round", ylabel="held-out perplexity of the true reply",
           title="DP federated learning: utility against clients per round")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
