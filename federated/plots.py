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
