"""The privacy layer: one egress gate with an audit log, encrypted storage, retention, PII redaction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from device.paths import state_dir
from device.privacy.egress import AuditLog, Decision, EgressGate, PolicyViolation
from device.privacy.transport import OutboxTransport, Transport

__all__ = ["AuditLog", "Decision", "EgressGate", "PolicyViolation", "audit_log", "open_gate", "stored_texts"]


def audit_log(folder: Path | None = None) -> AuditLog:
    return AuditLog((folder or state_dir()) / "audit.jsonl")


def stored_texts(store) -> Iterator[str]:
    """Every text the store holds: message texts, senders, thread names, summaries and drafts."""
    for _, m in store.messages():
        yield m.text
        yield m.sender
        yield m.thread
    yield from store.all_derived_texts()


def open_gate(store, folder: Path | None = None, transport: Transport | None = None) -> EgressGate:
    folder = folder or state_dir()
    return EgressGate(lambda: stored_texts(store), audit_log(folder),
                      transport or OutboxTransport(folder / "outbox"))
