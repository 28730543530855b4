"""Learning on the glasses when they are idle: `glassmate learn` in the background once the display has been
quiet a while and the wearer has sent enough new replies since the last run.

It runs as its own low-priority process (the training code is not part of the glasses' runtime, and a process can
be stopped at once): when the wearer touches the glasses or a message arrives, it is stopped, and the next quiet
spell resumes it from its checkpoint. An adapter it installs is put in effect for the next drafts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IdlePolicy:
    idle_s: float = 600.0  # the display unchanged this long
    min_new_sends: int = 10  # replies sent since the last finished run
    poll_s: float = 15.0


def learn_command(model: str, store: Path) -> list[str] | None:
    """`glassmate learn` for this model and store, at the lowest CPU priority; None when the training extra is
    not installed (the glasses then never learn on their own)."""
    exe = Path(sys.executable).parent / "glassmate"
    found = str(exe) if exe.exists() else shutil.which("glassmate")
    if found is None:
        return None
    probe = subprocess.run([sys.executable, "-c", "import torch, peft"], capture_output=True, timeout=120)
    if probe.returncode != 0:
        return None
    nice = ["nice", "-n", "19"] if shutil.which("nice") else []
    return [*nice, found, "learn", "--model", model, "--store", str(store), "--json"]


class IdleLearner:
    def __init__(self, last_active: Callable[[], float], sends: Callable[[], int], command: list[str],
                 on_installed: Callable[[dict], None], policy: IdlePolicy = IdlePolicy(),
                 clock: Callable[[], float] = time.monotonic):
        self.last_active = last_active
        self.sends = sends  # how many replies the store holds now
        self.command = command
        self.on_installed = on_installed
        self.policy = policy
        self.clock = clock
        self.learned_at = sends()  # what the last finished run saw (at start: what there was)
        self.proc: subprocess.Popen | None = None
        self.runs: list[dict] = []  # each finished run's report (numbers only)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def due(self) -> bool:
        quiet = self.clock() - self.last_active() >= self.policy.idle_s
        return quiet and self.sends() - self.learned_at >= self.policy.min_new_sends

    def step(self) -> None:
        """One look: start a run when due, stop one the wearer interrupted, take the result of one that ended."""
        if self.proc is None:
            if self.due():
                started = self.clock()
                self.proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                             start_new_session=True)
                self._started = started
            return
        if self.proc.poll() is None:
            if self.last_active() > self._started:  # the wearer is back: stop; the checkpoint keeps the work
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                self.proc = None
            return
        out = self.proc.stdout.read() if self.proc.stdout else b""
        code, self.proc = self.proc.returncode, None
        if code != 0:
            log.warning("learning in the background ended with code %s", code)
            self.learned_at = self.sends()  # not again until there is more to learn from
            return
        try:
            report = json.loads(out)
        except ValueError:
            log.warning("learning in the background printed no report")
            return
        self.learned_at = report.get("sends", self.sends())
        self.runs.append(report)
        if report.get("decision") == "installed":
            self.on_installed(report)

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.policy.poll_s):
                try:
                    self.step()
                except (OSError, subprocess.SubprocessError) as exc:
                    log.warning("background learning: %s", exc)
        self._thread = threading.Thread(target=loop, name="idle-learning", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(timeout=30)
