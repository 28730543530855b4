"""The one egress gate: every byte that leaves the glasses passes `EgressGate.send`, and every decision is audited.

Each payload kind has a declared policy. On top of the policy, the gate refuses any payload that contains text
from the local store (message texts, senders, thread names, summaries, drafts), checked against the store
itself, not by pattern: any run of four words from a stored text, a whole short stored text, or a rare long
token (a code, a canary) found in the payload's strings refuses it. An outgoing reply is the one exception: the
exact text the wearer confirmed, to the thread it was confirmed for.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device.privacy.transport import Transport

NGRAM = 4
RARE_TOKEN_CHARS = 10
WORD = re.compile(r"[^\W_]+", re.UNICODE)

METRIC_KEYS = frozenset({
    "ttft_s", "total_s", "prompt_tokens", "completion_tokens", "chunks", "attempts", "new_messages",
    "load_s", "decode_tok_s", "prefill_tok_s", "rss_mb", "round", "num_examples", "loss", "accuracy", "epsilon",
    # federated evaluation: held-out perplexity and reply ranking of the bare, global and personalized models
    "ppl_base", "ppl_global", "ppl_personal", "mrr_base", "mrr_global", "mrr_personal", "p1_base", "p1_global",
    "p1_personal", "personal_from_global", "personal_installed",
})


class PolicyViolation(Exception):
    pass


@dataclass(frozen=True)
class Decision:
    kind: str
    destination: str
    size: int
    allowed: bool
    reason: str
    sha256: str


# -- the store index --------------------------------------------------------------------------------------
def _words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


class StoreIndex:
    """Fingerprints of everything stored on the device, to recognise its text inside an outgoing payload."""

    def __init__(self, texts: Iterable[str]):
        self.ngrams: set[tuple[str, ...]] = set()
        self.short: set[tuple[str, ...]] = set()
        self.rare: set[str] = set()
        for text in texts:
            self.add(text)

    def add(self, text: str) -> None:
        words = _words(text)
        if not words:
            return
        if len(words) < NGRAM:
            if len("".join(words)) >= 6:  # "ok", "yes" are not secrets; "Ostbahnhof 10:00" is
                self.short.add(tuple(words))
        else:
            self.ngrams.update(tuple(words[i:i + NGRAM]) for i in range(len(words) - NGRAM + 1))
        self.rare.update(w for w in words if len(w) >= RARE_TOKEN_CHARS)
        for token in text.split():  # codes and canaries: long tokens mixing letters and digits
            token = token.strip(".,;:!?'\"()[]{}<>").lower()
            if len(token) >= RARE_TOKEN_CHARS and any(c.isdigit() for c in token):
                self.rare.add(token)

    def leaks(self, text: str) -> str | None:
        """A description of the stored text found in `text`, or None."""
        words = _words(text)
        for i in range(len(words) - NGRAM + 1):
            if tuple(words[i:i + NGRAM]) in self.ngrams:
                return f"contains stored message text ({' '.join(words[i:i + NGRAM])[:12]}…)"
        for n in {len(s) for s in self.short}:
            for i in range(len(words) - n + 1):
                if tuple(words[i:i + n]) in self.short:
                    return "contains a stored short message"
        for w in words:
            if w in self.rare:
                return "contains a rare word from a stored message"
        low = text.lower()
        for token in self.rare:
            if len(token) >= RARE_TOKEN_CHARS and token in low:
                return "contains a rare token from a stored message"
        return None


# -- policies -----------------------------------------------------------------------------------------------
def _strings(obj: Any) -> Iterable[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _strings(v)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _numeric_array(x: Any) -> bool:
    if _is_number(x):
        return True
    if isinstance(x, (list, tuple)):
        return all(_numeric_array(v) for v in x)
    return False


def policy_fl_update(payload: Any) -> None:
    """Named numeric arrays and numeric config only: no text at all."""
    if not isinstance(payload, dict) or not isinstance(payload.get("arrays"), dict):
        raise PolicyViolation("fl-update must be {'arrays': {name: numeric array}, 'metrics': {...}}")
    for name, arr in payload["arrays"].items():
        if not re.fullmatch(r"[\w.\-]{1,128}", name):
            raise PolicyViolation(f"fl-update array name {name[:20]!r} is not a parameter name")
        if not _numeric_array(arr):
            raise PolicyViolation(f"fl-update array {name!r} holds non-numeric values")
    policy_metrics(payload.get("metrics", {}))
    extra = set(payload) - {"arrays", "metrics"}
    if extra:
        raise PolicyViolation(f"fl-update carries undeclared fields: {sorted(extra)}")


def policy_metrics(payload: Any) -> None:
    """Numbers under fixed keys only."""
    if not isinstance(payload, dict):
        raise PolicyViolation("metrics must be a flat object of numbers")
    for key, value in payload.items():
        if key not in METRIC_KEYS:
            raise PolicyViolation(f"metrics key {key[:30]!r} is not in the declared metric keys")
        if not _is_number(value):
            raise PolicyViolation(f"metrics value of {key!r} is not a finite number")


CRASH_FIELDS = {"type", "frames", "version", "message", "python"}


def policy_crash_report(payload: Any) -> None:
    """Exception type, code locations and a redacted message; no local variables, no free-form extras."""
    if not isinstance(payload, dict) or set(payload) - CRASH_FIELDS:
        raise PolicyViolation(f"crash-report may only carry {sorted(CRASH_FIELDS)}")
    for frame in payload.get("frames", []):
        if set(frame) - {"file", "line", "function"} or not _is_number(frame.get("line", 0)):
            raise PolicyViolation("crash-report frames carry only file, line and function")


def policy_outgoing_reply(payload: Any) -> None:
    if not isinstance(payload, dict) or set(payload) != {"thread", "text"}:
        raise PolicyViolation("outgoing-reply must be exactly {'thread', 'text'}")
    if not all(isinstance(payload[k], str) and payload[k].strip() for k in ("thread", "text")):
        raise PolicyViolation("outgoing-reply needs a thread and a non-empty text")


# Secure aggregation (SecAgg+) protocol traffic: its stages and the fields each may carry (public keys, encrypted
# key shares, node ids, the masked update), every one as integers — bytes travel as lists of 0..255.
SECAGG_FIELDS = {"setup": {"pk1", "pk2"}, "share_keys": {"dsts", "ctxts"}, "collect_masked_vectors": {"masked_params"},
                 "unmask": {"nids", "shares"}}


def _byte_lists(x: Any) -> bool:
    if isinstance(x, int) and not isinstance(x, bool):
        return True
    return isinstance(x, list) and all(_byte_lists(v) for v in x)


def policy_fl_secagg(payload: Any) -> None:
    """One SecAgg+ reply: a known stage and its declared fields, integers only (no text can ride along)."""
    if not isinstance(payload, dict) or set(payload) != {"stage", "fields"} or not isinstance(payload["fields"], dict):
        raise PolicyViolation("fl-secagg must be exactly {'stage', 'fields'}")
    allowed = SECAGG_FIELDS.get(payload["stage"]) if isinstance(payload["stage"], str) else None
    if allowed is None:
        raise PolicyViolation(f"fl-secagg stage {str(payload['stage'])[:30]!r} is not a SecAgg+ stage")
    for key, value in payload["fields"].items():
        if key not in allowed:
            raise PolicyViolation(f"fl-secagg stage {payload['stage']} may not carry {key[:30]!r}")
        if not _byte_lists(value):
            raise PolicyViolation(f"fl-secagg field {key!r} holds something other than integers")


POLICIES: dict[str, Callable[[Any], None]] = {
    "fl-update": policy_fl_update,
    "fl-secagg": policy_fl_secagg,
    "metrics": policy_metrics,
    "crash-report": policy_crash_report,
    "outgoing-reply": policy_outgoing_reply,
}
DESTINATIONS = {"fl-update": {"fl-server"}, "fl-secagg": {"fl-server"}, "metrics": {"telemetry"},
                "crash-report": {"telemetry"}, "outgoing-reply": {"phone-bridge", "matrix-homeserver"}}


# -- binary arrays ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Arrays:
    """Named float32 arrays and numeric metrics, sent as a JSON header and the arrays' raw little-endian bytes: a
    LoRA update costs 4 bytes a value instead of ~20 characters of JSON text. The gate decodes exactly what it
    sends and checks it as strictly as the JSON form: parameter names, finite numbers, declared metrics."""

    arrays: dict[str, Any]
    metrics: dict[str, float]

    MAGIC = b"GMA1"

    def encode(self) -> bytes:
        body = [np.ascontiguousarray(a, dtype="<f4") for a in self.arrays.values()]
        header = json.dumps({"arrays": {n: list(a.shape) for n, a in zip(self.arrays, body, strict=True)},
                             "metrics": self.metrics}, sort_keys=True, default=_refuse_unknown).encode("utf-8")
        return self.MAGIC + len(header).to_bytes(4, "little") + header + b"".join(a.tobytes() for a in body)

    @classmethod
    def decode(cls, data: bytes) -> tuple[dict, dict[str, np.ndarray]]:
        """(header, arrays) of an encoded payload; ValueError when it is not exactly one."""
        if data[:4] != cls.MAGIC or len(data) < 8:
            raise ValueError("not an arrays payload")
        n = int.from_bytes(data[4:8], "little")
        header = json.loads(data[8:8 + n].decode("utf-8"))
        if not isinstance(header, dict) or set(header) != {"arrays", "metrics"} or \
                not isinstance(header["arrays"], dict):
            raise ValueError("arrays header must be exactly {'arrays', 'metrics'}")
        out, at = {}, 8 + n
        for name, shape in header["arrays"].items():
            if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
                raise ValueError(f"array {str(name)[:30]!r} has no valid shape")
            size = 4 * math.prod(shape)
            if at + size > len(data):
                raise ValueError(f"array {str(name)[:30]!r} is cut short")
            out[name] = np.frombuffer(data, dtype="<f4", count=size // 4, offset=at).reshape(shape)
            at += size
        if at != len(data):
            raise ValueError(f"{len(data) - at} bytes follow the declared arrays")
        return header, out


def policy_fl_update_arrays(data: bytes) -> dict:
    """The binary form of fl-update: parameter names, finite float32 values, declared metrics; returns the header
    (its strings go through the stored-text check like any payload's)."""
    try:
        header, arrays = Arrays.decode(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PolicyViolation(f"fl-update arrays payload is malformed: {exc}") from None
    for name, arr in arrays.items():
        if not re.fullmatch(r"[\w.\-]{1,128}", name):
            raise PolicyViolation(f"fl-update array name {name[:20]!r} is not a parameter name")
        if not np.isfinite(arr).all():
            raise PolicyViolation(f"fl-update array {name!r} holds non-finite values")
    policy_metrics(header["metrics"])
    return header


# -- the audit log ------------------------------------------------------------------------------------------
class AuditLog:
    """Append-only JSON lines: when, kind, size, destination, decision, reason, payload digest (never content)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def append(self, d: Decision) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"ts": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "kind": d.kind, "destination": d.destination,
                           "bytes": d.size, "allowed": d.allowed, "reason": d.reason, "sha256": d.sha256})
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()

    def entries(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]


# -- the gate -----------------------------------------------------------------------------------------------
class EgressGate:
    def __init__(self, index_source: Callable[[], Iterable[str]], audit: AuditLog, transport: Transport):
        self._index_source = index_source
        self.audit = audit
        self.transport = transport
        self._confirmed: set[tuple[str, str]] = set()

    def confirm_reply(self, thread: str, text: str) -> None:
        """The wearer confirmed sending `text` to `thread` (voice 'send', tap): only then may it leave."""
        self._confirmed.add((thread, hashlib.sha256(text.encode()).hexdigest()))

    def send(self, kind: str, payload: Any, destination: str) -> Decision:
        binary = isinstance(payload, Arrays)
        if binary:
            data = payload.encode()
        else:
            data = json.dumps(payload, ensure_ascii=False, sort_keys=True, default=_refuse_unknown).encode("utf-8") \
                if _serialisable(payload) else b""
        digest = hashlib.sha256(data).hexdigest()
        try:
            # checks run on exactly what would be sent (numpy arrays already turned into numbers or bytes)
            if binary:
                self._check_arrays(kind, destination, data)
            else:
                self._check(kind, json.loads(data) if data else None, destination, data)
        except PolicyViolation as exc:
            decision = Decision(kind, destination, len(data), False, str(exc), digest)
            self.audit.append(decision)
            return decision
        decision = Decision(kind, destination, len(data), True, "policy ok; no stored text", digest)
        self.transport.deliver(destination, kind, data)
        self.audit.append(decision)
        return decision

    def _check_arrays(self, kind: str, destination: str, data: bytes) -> None:
        if kind != "fl-update":
            raise PolicyViolation(f"only fl-update may be sent as binary arrays, not {kind!r}")
        if destination not in DESTINATIONS[kind]:
            raise PolicyViolation(f"{kind} may only go to {sorted(DESTINATIONS[kind])}, not {destination!r}")
        header = policy_fl_update_arrays(data)
        index = StoreIndex(self._index_source())
        for text in _strings(header):
            leak = index.leaks(text)
            if leak:
                raise PolicyViolation(leak)

    def _check(self, kind: str, payload: Any, destination: str, data: bytes) -> None:
        if kind not in POLICIES:
            raise PolicyViolation(f"no policy is declared for payload kind {kind!r}")
        if not data:
            raise PolicyViolation("payload is not plain JSON data")
        if destination not in DESTINATIONS[kind]:
            raise PolicyViolation(f"{kind} may only go to {sorted(DESTINATIONS[kind])}, not {destination!r}")
        POLICIES[kind](payload)
        index = StoreIndex(self._index_source())
        if kind == "outgoing-reply":
            key = (payload["thread"], hashlib.sha256(payload["text"].encode()).hexdigest())
            if key not in self._confirmed:
                raise PolicyViolation("the wearer did not confirm this reply for this thread")
            self._confirmed.discard(key)
            return  # the confirmed text is the wearer's own words, sent where the wearer said
        for text in _strings(payload):
            leak = index.leaks(text)
            if leak:
                raise PolicyViolation(leak)


def _serialisable(payload: Any) -> bool:
    try:
        json.dumps(payload, default=_refuse_unknown)
    except (TypeError, ValueError):
        return False
    return True


def _refuse_unknown(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy arrays and scalars become plain numbers
        return obj.tolist()
    raise TypeError(f"cannot send a {type(obj).__name__}")
