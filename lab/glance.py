"""What the wearer waits for: the time from tapping a card to seeing its chat's catch-up and reply drafts.

The sample inbox is replayed through the glasses session (`GlassesSession`, the real assistant) burst by burst.
After each burst's card the simulated wearer waits `after_s` seconds (reading the card, raising a hand) and taps;
the time from the tap until the summary and until the three chips are on the display is what is measured. Arms:
`prepare` off (the work starts at the tap, as before) and on (`device/glasses/prepare.py`: it started when the
card showed). Each arm gets a fresh assistant over the same loaded engine, so no thread state carries over; the
arms alternate run by run so that a noisy machine slows both alike.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from device.glasses.session import GlassesSession
from device.messages.inbox import Message, replay
from lab.bench import pct


@dataclass
class Glance:
    arm: str
    run: int
    thread: str
    after_s: float
    to_summary_s: float  # tap → catch-up on the display
    to_chips_s: float  # tap → three drafts on the display


@dataclass
class GlanceReport:
    model: str
    threads: int
    after_s: float
    runs: int
    glances: list[Glance] = field(default_factory=list)

    def summary(self) -> dict:
        out: dict = {}
        for arm in sorted({g.arm for g in self.glances}):
            rows = [g for g in self.glances if g.arm == arm]
            out[arm] = {key: {"p50": _pct(rows, key, 50), "p90": _pct(rows, key, 90), "max": max(getattr(r, key)
                                                                                              for r in rows)}
                        for key in ("to_summary_s", "to_chips_s")} | {"n": len(rows)}
        if {"off", "on"} <= out.keys() and out["on"]["to_chips_s"]["p50"] > 0:
            out["ratio_to_chips_p50"] = round(out["off"]["to_chips_s"]["p50"] / out["on"]["to_chips_s"]["p50"], 1)
        return out

    def to_json(self) -> dict:
        return {"model": self.model, "threads": self.threads, "after_s": self.after_s, "runs": self.runs,
                "summary": self.summary(), "glances": [asdict(g) for g in self.glances]}


def _pct(rows: list[Glance], key: str, q: int) -> float:
    return round(pct([getattr(r, key) for r in rows], q / 100), 3)


class _Watch:
    """Times screens after a tap: when the summary, and when the chips, first show."""

    def __init__(self) -> None:
        self.tap = 0.0
        self.summary_at: float | None = None
        self.chips_at: float | None = None
        self._lock = threading.Lock()

    def arm(self) -> None:
        with self._lock:
            self.tap, self.summary_at, self.chips_at = time.perf_counter(), None, None

    def __call__(self, screen) -> None:
        now = time.perf_counter()
        with self._lock:
            if not self.tap or screen.view != "thread" or not screen.thread:
                return
            if self.summary_at is None and screen.thread.get("summary"):
                self.summary_at = now
            if self.chips_at is None and len(screen.chips) == 3:
                self.chips_at = now


def run_glances(make_assistant: Callable[[], object], messages: list[Message], after_s: float, runs: int,
                model: str, threads: int, progress: Callable[[str], None] = lambda s: None) -> GlanceReport:
    report = GlanceReport(model, threads, after_s, runs)
    bursts = list(replay(messages))
    for run in range(runs):
        for arm in (("off", "on") if run % 2 == 0 else ("on", "off")):
            assistant = make_assistant()
            session = GlassesSession(assistant, None, {}, prepare=arm == "on")
            watch = _Watch()
            session.subscribe(watch)
            try:
                for i, burst in enumerate(bursts):
                    progress(f"run {run + 1}/{runs}, prepare {arm}: {burst[-1].thread} ({i + 1}/{len(bursts)})")
                    for m in burst[:-1]:
                        session.receive(m, notify=False)
                    session.receive(burst[-1])
                    time.sleep(after_s)
                    watch.arm()
                    screen = session.key("enter")
                    if screen.view != "thread" or len(screen.chips) != 3:
                        raise RuntimeError(f"{burst[-1].thread}: the tap showed {screen.view} with "
                                           f"{len(screen.chips)} chips")
                    done = time.perf_counter()
                    report.glances.append(Glance(arm, run, burst[-1].thread, after_s,
                                                 round((watch.summary_at or done) - watch.tap, 3),
                                                 round((watch.chips_at or done) - watch.tap, 3)))
                    session.key("esc")
                    if session.preparer is not None:
                        session.preparer.idle(120)  # the next burst starts from a quiet model in both arms
            finally:
                session.close()
    return report

