"""The voice loop on virtual audio devices, with the real parts: Piper speaks the wearer's commands into a PulseAudio
null sink whose monitor is the glasses' microphone; Silero VAD cuts the utterance, Whisper tiny.en transcribes it,
the command parser and the session act, Piper's read-back plays on the glasses' speaker (recorded and transcribed
back), and a confirmed reply leaves through the egress gate. Every wait has a deadline: a stuck stream fails."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from device.assistant.core import Assistant
from device.glasses.session import GlassesSession
from device.messages.inbox import group_threads, read_feed
from device.privacy.egress import AuditLog, EgressGate
from device.privacy.transport import OutboxTransport
from tests import virtual_audio

pytestmark = pytest.mark.skipif(bool(virtual_audio.missing()),
                                reason=f"PulseAudio tools missing: {virtual_audio.missing()} (make test installs them)")
SAMPLE = Path(__file__).resolve().parents[1] / "device" / "data" / "sample_inbox.jsonl"


@pytest.fixture(scope="module")
def voice_parts():
    voice = pytest.importorskip("device.glasses.voice")
    try:
        return voice, voice.Transcriber(threads=2), voice.Synthesizer()
    except voice.VoiceError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def audio_session(engine, tmp_path):
    threads = group_threads(read_feed(SAMPLE))
    for t in threads.values():
        t.mark_read()
    texts = [m.text for t in threads.values() for m in t.messages]
    gate = EgressGate(lambda: texts, AuditLog(tmp_path / "audit.jsonl"), OutboxTransport(tmp_path / "outbox"))
    return GlassesSession(Assistant(engine), gate, threads)


def test_spoken_reply_is_clarified_read_back_and_sent_on_confirmation(voice_parts, audio_session, tmp_path):
    voice, transcriber, synthesizer = voice_parts
    assert synthesizer.engine == "piper"
    session = audio_session

    def wearer_says(text: str, name: str):
        speech = synthesizer(text)
        wav = virtual_audio.write_wav(tmp_path / f"{name}.wav", speech.samples, speech.rate)
        return virtual_audio.play_into_microphone(wav)

    with virtual_audio.pulse_server(tmp_path / "pulse"), \
            virtual_audio.record_speaker(tmp_path / "speaker.raw") as spoken, \
            voice.AudioIO("pulse", "pulse") as audio:
        loop = voice.VoiceLoop(session, transcriber, synthesizer, audio)

        wearer_says("Reply to Alice saying I'll be ten minutes late.", "1-reply")
        first = loop.turn(timeout_s=60)
        assert "alice" in first.heard.lower() and "late" in first.heard.lower()
        # two Alices in the inbox: the glasses ask rather than guess
        assert first.said == "Alice Chen or Alice Park?"

        wearer_says("Alice Chen.", "2-which")
        second = loop.turn(timeout_s=60)
        assert session.screen.view == "confirm"
        confirm = session.screen.confirm
        assert confirm["thread"] == "Alice Chen"
        assert confirm["text"].lower().rstrip(".") in ("i'll be ten minutes late", "i'll be 10 minutes late")
        assert second.said.startswith("Send to Alice Chen: ")  # read back before anything leaves
        assert not (tmp_path / "outbox").exists(), "nothing is sent before the wearer confirms"

        wearer_says("Send.", "3-send")
        third = loop.turn(timeout_s=60)
        assert third.said == "Sent to Alice Chen."
        context = loop.context()

    sent = [json.loads(p.read_text()) for p in (tmp_path / "outbox").glob("*-outgoing-reply.json")]
    assert sent == [{"thread": "Alice Chen", "text": confirm["text"]}]
    assert [e["allowed"] for e in AuditLog(tmp_path / "audit.jsonl").entries()] == [True]

    # the speaker really played the read-back: record → Whisper
    played = np.frombuffer(spoken.read_bytes(), dtype=np.int16)
    assert played.size > 16_000 and np.sqrt(np.mean(played.astype(np.float32) ** 2)) > 100
    # heard as the glasses hear the wearer: with the contacts' names as Whisper's prompt (without it tiny.en has
    # heard "Alice" as "allistion"); tiny.en may still hear "Alice Chin": the full name is checked on the screen
    heard_back = transcriber(played, context).lower()
    assert "alice" in heard_back and "send" in heard_back and "minutes late" in heard_back, heard_back


def test_a_silent_microphone_times_out_instead_of_hanging(voice_parts, audio_session, tmp_path):
    voice, transcriber, synthesizer = voice_parts
    with virtual_audio.pulse_server(tmp_path / "pulse"), voice.AudioIO("pulse", "pulse") as audio:
        loop = voice.VoiceLoop(audio_session, transcriber, synthesizer, audio)
        with pytest.raises(voice.AudioTimeout):
            loop.turn(timeout_s=3)


def test_the_wake_phrase_gates_commands(voice_parts, audio_session, tmp_path):
    voice, transcriber, synthesizer = voice_parts

    def wearer_says(text: str, name: str):
        speech = synthesizer(text)
        return virtual_audio.play_into_microphone(
            virtual_audio.write_wav(tmp_path / f"{name}.wav", speech.samples, speech.rate))

    with virtual_audio.pulse_server(tmp_path / "pulse"), voice.AudioIO("pulse", "pulse") as audio:
        loop = voice.VoiceLoop(audio_session, transcriber, synthesizer, audio, wake_phrase="hey glasses")
        wearer_says("Mute the climbing crew.", "not-for-us")
        with pytest.raises(voice.AudioTimeout):  # heard, but not addressed to the glasses
            loop.turn(timeout_s=8)
        wearer_says("Hey glasses, mute the climbing crew for an hour.", "for-us")
        turn = loop.turn(timeout_s=60)
        assert turn.said == "Muted Climbing crew for 1 hour."
