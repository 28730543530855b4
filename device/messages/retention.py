"""Retention and forgetting across everything the device keeps about a thread."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from device.messages.store import MessageStore

KV_DIR = "kv"          # cached model state per thread: files named <thread_id>*
ADAPTER_DIR = "adapters"  # personalized adapters trained on local messages


def _remove_kv(state: Path, thread_ids: list[str]) -> int:
    removed = 0
    folder = state / KV_DIR
    for tid in thread_ids:
        for f in folder.glob(f"{tid}*"):
            f.unlink()
            removed += 1
    return removed


def forget_thread(store: MessageStore, thread: str, state: Path) -> dict:
    tid = store.thread_id(thread)
    report: dict = store.forget_thread(thread)
    report["kv_files"] = _remove_kv(state, [tid])
    cannot = []
    folder = state / ADAPTER_DIR  # personal versions (.gguf, .pt) and any other weights; not their history
    adapters = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix != ".json") if folder.exists() else []
    if adapters:
        cannot.append(f"{len(adapters)} personalized adapter(s) in {state / ADAPTER_DIR} may have been trained on "
                      f"this thread; erasing the thread does not untrain them (roll them back with `glassmate "
                      f"adapters rollback`, or delete them, to be sure)")
    cannot.append("federated updates already sent were clipped, noised numbers and cannot be recalled")
    report["cannot_undo"] = cannot
    return report


def apply_retention(store: MessageStore, cutoff: datetime, state: Path) -> dict:
    report = store.purge_before(cutoff)
    report["kv_files"] = _remove_kv(state, report["emptied_threads"])
    report["emptied_threads"] = len(report["emptied_threads"])
    return report
