"""Virtual audio devices for the voice tests: a private PulseAudio server with two null sinks.

  mic_feed         the test plays the wearer's voice into it; its monitor, remapped as `glasses_mic`, is the
                   microphone the glasses listen to
  glasses_speaker  where the glasses speak; the test records its monitor to hear what they said

PortAudio reaches it through ALSA's pulse plugin (Debian: libasound2-plugins), exactly as on a laptop.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import wave
from contextlib import contextmanager
from pathlib import Path

import numpy as np

NEEDED = ("pulseaudio", "pactl", "paplay", "parec")


def missing() -> list[str]:
    return [p for p in NEEDED if shutil.which(p) is None]


@contextmanager
def pulse_server(folder: Path, timeout_s: float = 15.0):
    folder.mkdir(parents=True, exist_ok=True)
    socket = folder / "native"
    env = os.environ | {"HOME": str(folder), "XDG_RUNTIME_DIR": str(folder), "PULSE_RUNTIME_PATH": str(folder)}
    argv = ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit", "--system=false",
            "--disable-shm=true", "-L", f"module-native-protocol-unix socket={socket} auth-anonymous=1",
            "-L", "module-null-sink sink_name=glasses_speaker rate=16000 channels=1",
            "-L", "module-null-sink sink_name=mic_feed rate=16000 channels=1",
            "-L", "module-remap-source master=mic_feed.monitor source_name=glasses_mic"]
    log = (folder / "pulseaudio.log").open("wb")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    saved = {k: os.environ.get(k) for k in ("PULSE_SERVER", "PULSE_SOURCE", "PULSE_SINK")}
    os.environ["PULSE_SERVER"] = f"unix:{socket}"
    try:
        deadline = time.monotonic() + timeout_s
        while subprocess.run(["pactl", "info"], capture_output=True, timeout=5).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PulseAudio did not start: {(folder / 'pulseaudio.log').read_text()[-800:]}")
            time.sleep(0.1)
        for cmd in (["pactl", "set-default-source", "glasses_mic"], ["pactl", "set-default-sink", "glasses_speaker"]):
            subprocess.run(cmd, check=True, capture_output=True, timeout=5)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype(np.int16).tobytes())
    return path


def play_into_microphone(path: Path) -> subprocess.Popen:
    """The wearer speaks: the WAV plays into the mic feed in real time (returns at once)."""
    return subprocess.Popen(["paplay", "--device=mic_feed", str(path)], stderr=subprocess.PIPE)


@contextmanager
def record_speaker(path: Path):
    """Everything the glasses say, as 16 kHz mono s16le, while the block runs."""
    with path.open("wb") as out:
        proc = subprocess.Popen(["parec", "--device=glasses_speaker.monitor", "--raw", "--rate=16000",
                                 "--channels=1", "--format=s16le"], stdout=out)
        try:
            yield path
        finally:
            proc.terminate()
            proc.wait(timeout=5)
