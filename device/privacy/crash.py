"""Crash reports that are safe to send: exception type, code locations, version, and a redacted message."""

from __future__ import annotations

import platform
import traceback
from pathlib import Path

from device import __version__
from device.privacy.egress import Decision, EgressGate

PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def _where(filename: str) -> str:
    path = Path(filename)
    try:
        return str(path.resolve().relative_to(PACKAGE_ROOT))
    except ValueError:
        return path.name  # outside the project (stdlib, site-packages): the file name is enough


def build_report(exc: BaseException) -> dict:
    frames = [{"file": _where(f.filename), "line": f.lineno or 0, "function": f.name}
              for f in traceback.extract_tb(exc.__traceback__)][-20:]
    try:
        from device.privacy.pii import redact

        message = redact(str(exc))[:300]
    except RuntimeError:  # the pii extra is not installed: send no message at all
        message = ""
    return {"type": type(exc).__name__, "frames": frames, "version": __version__,
            "python": platform.python_version(), "message": message}


def report_crash(gate: EgressGate, exc: BaseException) -> Decision:
    """Send a crash report; if its message still carries stored text, send it again without the message."""
    report = build_report(exc)
    decision = gate.send("crash-report", report, "telemetry")
    if not decision.allowed and report["message"]:
        report["message"] = "[withheld: the message contained text from the device]"
        decision = gate.send("crash-report", report, "telemetry")
    return decision
