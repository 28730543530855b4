"""A simulated wearer's life: does learning from the wearer make the drafts they are shown better, day by day?

One real Ubuntu IRC user stands in for the wearer (`lab.wearer`): their log days, in order, are the days of the
glasses' life. At each of their replies the glasses draft three replies with the real pipeline
(`Assistant.draft_replies`, the personal adapter in effect drafting); the simulated wearer *picks* the draft
closest to what the user really wrote when it is close enough (word-overlap F1 ≥ `pick_at`), else *dictates* the
real reply. What was sent goes into the wearer's store, with the chat before it, as on the glasses. After every
`learn_every` days the device runs `glassmate learn` on that store (`federated.learn.learn`: trained on the
sends, installed only if the most recent held-out ones are more likely under it).

Three arms, each its own store and adapters:
- **bare**: the model with its registered task adapters, never learning;
- **on-device**: learning from the wearer's own sends only;
- **federated**: the same learning, starting from the global adapter of a federated run over *other* users
  (installed as the first personal version), so the adapter in effect on day 1 is the federation's.

Per day and arm: how many replies the glasses drafted for (`shown_per_day`, the first of the day; every reply of
the day goes into the store), how often a draft was picked, the mean closeness of the best draft, and the held-out
likelihood of the true replies (mean nats per token under the adapter in effect, the "my next message" prompt
learning trains). Numbers only; no nick or text leaves the run.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from device.messages.inbox import WEARER, Message, group_threads
from device.messages.store import MessageStore
from lab.ask_evaluation import token_f1
from lab.irc import ReplyPair, client_id, pair_messages, reply_pairs, strip_address

Arm = Literal["bare", "on-device", "federated"]
ARMS: tuple[Arm, ...] = ("bare", "on-device", "federated")


@dataclass(frozen=True)
class LifeConfig:
    days: int = 6
    learn_every: int = 2  # the device learns after day k, 2k, … (not after the last)
    shown_per_day: int = 10  # replies of each day the drafts are made and judged for
    min_day_replies: int = 10  # a log day with fewer of the user's replies is not a day of this life
    pick_at: float = 0.5  # a draft this close (word F1) to the real reply is what the wearer would have sent


@dataclass
class DayRow:
    arm: Arm
    day: int
    adapter: int | None  # personal version in effect during the day (None: bare)
    shown: int
    picked: int
    closeness: float  # mean over shown replies of the best draft's F1 with the real reply
    nll: float  # mean nats per token of the real replies shown, under the adapter in effect
    sends_in_store: int
    learned: dict = field(default_factory=dict)  # after the day: decision, version, losses, steps, wall_s

    @property
    def pick_rate(self) -> float:
        return self.picked / self.shown if self.shown else 0.0

    def to_json(self) -> dict:
        return asdict(self) | {"pick_rate": round(self.pick_rate, 4), "ppl": round(math.exp(self.nll), 2)}


def _day(pair: ReplyPair) -> datetime:
    return datetime.strptime(pair.file[:10], "%Y-%m-%d").replace(tzinfo=UTC)


def life_days(folder: Path, user: str, cfg: LifeConfig) -> list[list[ReplyPair]]:
    """The user's replies by log day, in order: the first `cfg.days` days with at least `min_day_replies`."""
    by_day: dict[datetime, list[ReplyPair]] = defaultdict(list)
    for p in reply_pairs(folder):
        if p.user.lower() == user.lower() and strip_address(p.reply.text).strip():
            by_day[_day(p)].append(p)
    days = [sorted(ps, key=lambda p: (p.reply.minute, p.file, p.reply.index)) for _, ps in sorted(by_day.items())]
    return [d for d in days if len(d) >= cfg.min_day_replies][: cfg.days]


def chat_of(pair: ReplyPair, thread: str) -> list[Message]:
    """The lines the reply answers, on the reply's log day (as `lab.wearer.fill_store` times them)."""
    shift = _day(pair) - datetime(2026, 1, 5, tzinfo=UTC)
    return [replace(m, ts=m.ts + shift) for m in pair_messages(pair, thread)]


def add_send(store: MessageStore, pair: ReplyPair, thread: str, text: str) -> None:
    context = chat_of(pair, thread)
    if not context:
        return
    ts = max(_day(pair) + timedelta(minutes=pair.reply.minute), context[-1].ts + timedelta(seconds=30))
    store.add([*context, replace(context[-1], sender=WEARER, text=text, ts=ts)])


def closest(drafts: list[str], real: str) -> tuple[int, float]:
    """Which draft is closest to what the user really wrote, and how close (word F1)."""
    scores = [token_f1(d, real) for d in drafts]
    best = max(range(len(scores)), key=lambda i: scores[i]) if scores else -1
    return best, (scores[best] if scores else 0.0)


@dataclass
class Life:
    """The model-bound parts, loaded once for every arm: the glasses' engine and the training side's model."""

    model: str
    engine: object
    registered: dict
    base: object  # federated.base_model.BaseModel (torch), shared with learn()

    @classmethod
    def load(cls, model: str) -> Life:
        from device.engines import load_engine
        from device.engines.adapters import attach
        from federated.base_model import load_catalog_model

        engine = load_engine(model, n_ctx=2048, n_threads=None)
        return cls(model, engine, attach(engine, model, registered=True), load_catalog_model(model))

    def assistant(self, arm: Arm, state: Path):
        """The glasses' assistant with this arm's personal adapter in effect drafting the replies."""
        from device.assistant.core import Assistant
        from device.engines.personal import PersonalAdapters
        from device.tasks import Task

        tasks = dict(self.registered)
        version = PersonalAdapters(state, self.model).current()
        if version is not None:
            name = f"{arm}:v{version.version}"
            self.engine.load_adapter(name, PersonalAdapters(state, self.model).path(version.gguf))
            tasks[Task.DRAFT_REPLIES] = name
        return Assistant(self.engine, adapters=tasks), (version.version if version else None)

    def nll(self, state: Path, examples: list) -> float:
        """Mean nats per token of the examples' targets under the personal adapter in effect (bare if none)."""
        import torch

        from device.engines.personal import PersonalAdapters
        from federated.learn import TRAIN, spec_of
        from federated.lora import attach, load_adapter_state
        from federated.train import mean_loss

        version = PersonalAdapters(state, self.model).current()
        spec = spec_of(version.report) if version else spec_of({})
        lm = attach(self.base.model, spec)
        try:
            if version is not None:
                load_adapter_state(lm, torch.load(PersonalAdapters(state, self.model).path(version.weights),
                                                  weights_only=True))
            return mean_loss(lm, self.base.tokenizer, examples, batch_size=TRAIN.batch_size, max_len=TRAIN.max_len)
        finally:
            self.base.model = lm.model.unload()
            if hasattr(self.base.model, "peft_config"):
                del self.base.model.peft_config


def install_federated(state: Path, model: str, run: Path) -> int:
    """A federated run's global adapter as the wearer's first personal version (what joining its rounds left)."""
    import numpy as np
    import torch

    from device.engines.personal import PersonalAdapters
    from federated.lora import ATTENTION, LoraSpec

    doc = json.loads((run / "fl.json").read_text())
    rc = doc["config"]
    if rc.get("model") != model:
        raise ValueError(f"{run} trained {rc.get('model')}, not {model}")
    r = int(rc.get("lora-r", 8))
    spec = LoraSpec(r=r, alpha=2.0 * r, dropout=0.0, targets=ATTENTION, top_layers=int(rc.get("lora-top-layers", 0)))
    with np.load(run / "global_adapter.npz") as z:
        weights = OrderedDict((k.replace("__", "."), torch.as_tensor(z[k])) for k in z.files)
    with tempfile.TemporaryDirectory() as tmp:
        pt = Path(tmp) / "global.pt"
        torch.save(weights, pt)
        version = PersonalAdapters(state, model).install(run / "global_adapter.gguf", pt, {
            "source": "federated-global", "run": run.name, "epsilon": doc.get("final", {}).get("epsilon"),
            "lora": spec.to_json()})
    return version.version


def live(life: Life, folder: Path, user: str, cfg: LifeConfig, arms: tuple[Arm, ...], work: Path,
         federated_run: Path | None = None, progress: Callable[[str], None] | None = None) -> list[DayRow]:
    """One wearer's life in every arm; the rows of every (arm, day)."""
    days = life_days(folder, user, cfg)
    if len(days) < cfg.days:
        raise ValueError(f"the user has {len(days)} days with {cfg.min_day_replies}+ replies; the life needs "
                         f"{cfg.days}")
    rows: list[DayRow] = []
    bare: dict[int, tuple[DayRow, dict[int, str]]] = {}  # day → its row and what was sent, for arms not yet changed
    # the federated arm first (its start is the one that can fail: a run folder), then bare before on-device
    for arm in sorted(arms, key=lambda a: (a != "federated", ARMS.index(a))):
        state = work / arm / "state"
        state.mkdir(parents=True, exist_ok=True)
        if arm == "federated":
            if federated_run is None:
                raise ValueError("the federated arm needs a federated run's global adapter")
            install_federated(state, life.model, federated_run)
        with MessageStore(work / arm / "glassmate.db") as store:
            n = 0
            for d, pairs in enumerate(days, 1):
                names = [f"irc-{client_id(user)[:6]}-{n + i:04d}" for i in range(len(pairs))]
                assistant, version = life.assistant(arm, state)
                if version is None and d in bare:  # nothing learnt yet: the same glasses as the bare arm's
                    row, sent = replace(bare[d][0], arm=arm), bare[d][1]
                else:
                    row, sent = _drafted_day(life, assistant, arm, d, version, pairs[: cfg.shown_per_day],
                                             names, state, cfg)
                    if arm == "bare":
                        bare[d] = (replace(row), sent)
                for i, (pair, name) in enumerate(zip(pairs, names, strict=True)):
                    add_send(store, pair, name, sent.get(i, _real(pair)))
                n += len(pairs)
                row.sends_in_store = n
                if arm != "bare" and d % cfg.learn_every == 0 and d < len(days):
                    if progress:
                        progress(f"{arm}: learning after day {d} ({n} sends)")
                    row.learned = _learn(life, store, state)
                rows.append(row)
                if progress:
                    progress(f"{arm} day {d}: picked {row.picked}/{row.shown}, closeness {row.closeness:.3f}, "
                             f"ppl {math.exp(row.nll):.1f}")
    return rows


def _real(pair: ReplyPair) -> str:
    return strip_address(pair.reply.text).strip()


def _drafted_day(life: Life, assistant, arm: Arm, day: int, version: int | None, shown: list[ReplyPair],
                 names: list[str], state: Path, cfg: LifeConfig) -> tuple[DayRow, dict[int, str]]:
    """Drafts for each shown reply, the wearer's pick (or dictation), and the true replies' likelihood."""
    from federated.learn import CONTEXT, Send, send_example

    picked, close, sent, examples = 0, [], {}, []
    for i, pair in enumerate(shown):
        chat = chat_of(pair, names[i])
        drafts = assistant.draft_replies(group_threads(chat)[names[i]]).replies
        best, score = closest(drafts, _real(pair))
        close.append(score)
        if score >= cfg.pick_at:
            picked += 1
            sent[i] = drafts[best]
        examples.append(send_example(Send(names[i], _day(pair), tuple(chat[-CONTEXT:]), _real(pair))))
    row = DayRow(arm, day, version, len(shown), picked, sum(close) / len(close), life.nll(state, examples), 0)
    return row, sent


def _learn(life: Life, store: MessageStore, state: Path) -> dict:
    from federated.learn import NotEnoughData, learn, llama_check

    t0 = time.perf_counter()
    try:
        report = learn(store, state, life.model, base=life.base, check_gguf=llama_check(life.model))
    except NotEnoughData as exc:
        return {"decision": "too-few", "why": str(exc)}
    return {"decision": report.decision, "version": report.version, "loss_before": report.loss_before,
            "loss_after": report.loss_after, "steps": report.steps, "trained_on": report.trained_on,
            "wall_s": round(time.perf_counter() - t0, 1)}


def summary(rows: list[DayRow]) -> dict:
    """Per arm and day, averaged over the wearers: pick rate, closeness, likelihood of the true reply."""
    by: dict[tuple[str, int], list[DayRow]] = defaultdict(list)
    for r in rows:
        by[(r.arm, r.day)].append(r)
    out: dict[str, list[dict]] = defaultdict(list)
    for (arm, day), rs in sorted(by.items(), key=lambda kv: (ARMS.index(kv[0][0]), kv[0][1])):
        shown = sum(r.shown for r in rs)
        out[arm].append({"day": day, "wearers": len(rs), "shown": shown,
                         "pick_rate": round(sum(r.picked for r in rs) / shown, 4) if shown else 0.0,
                         "closeness": round(sum(r.closeness * r.shown for r in rs) / shown, 4) if shown else 0.0,
                         "nll": round(sum(r.nll for r in rs) / len(rs), 4),
                         "ppl": round(math.exp(sum(r.nll for r in rs) / len(rs)), 2)})
    return dict(out)


def plot(doc: dict, path: Path) -> Path:
    """Pick rate and perplexity of the true reply by day, one line per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, c, b) = plt.subplots(1, 3, figsize=(14, 3.8))
    for arm, days in doc["summary"].items():
        xs = [d["day"] for d in days]
        a.plot(xs, [100 * d["pick_rate"] for d in days], marker="o", label=arm)
        c.plot(xs, [d["closeness"] for d in days], marker="o", label=arm)
        b.plot(xs, [d["ppl"] for d in days], marker="o", label=arm)
    a.set(xlabel="day of the wearer's life", ylabel="% of replies", title="a shown draft picked")
    c.set(xlabel="day of the wearer's life", ylabel="word F1", title="the best draft against the real reply")
    b.set(xlabel="day of the wearer's life", ylabel="perplexity", title="the true reply's perplexity",
          yscale="log")
    k = doc["config"]["learn_every"]
    for ax in (a, c, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        for d in range(k, doc["config"]["days"], k):
            ax.axvline(d + 0.5, color="grey", lw=0.6, ls=":")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def config_json(cfg: LifeConfig) -> dict:
    return asdict(cfg)
