"""Per-thread KV state, so a thread that was summarized costs only its new messages the next time.

After a catch-up, the model state of the prompt up to the thread's last message is kept: in memory for the
most recent threads, and sealed (AES-GCM, the store's key) on disk for a bounded number more. On the next
catch-up of that thread the state is restored, and the engine evaluates only the tokens past the common prefix.
A cached state is used only when its tokens are a prefix of the new prompt's (up to the last few tokens, where
the tokenizer may merge the final line with what follows; the engine re-evaluates from the first difference), so
an edited or deleted earlier message, another model or a changed prompt simply misses and the entry is dropped.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections import OrderedDict
from pathlib import Path

from device.engines.base import Engine, PrefixState
from device.privacy.crypto import Cipher, IntegrityError

PROMPT_VERSION = "catchup-v1"  # bump when the catch-up prompt changes: every cached state becomes invalid
BOUNDARY_SLACK = 4  # tokens at the end of a cached prefix that may tokenize differently once a line follows


class ThreadKVCache:
    def __init__(self, engine: Engine, cipher: Cipher | None = None, folder: Path | None = None,
                 max_memory: int = 4, max_disk: int = 16):
        self.engine = engine
        self.cipher = cipher
        self.folder = Path(folder) if folder else None
        self.max_memory = max_memory
        self.max_disk = max_disk
        self._memory: OrderedDict[str, PrefixState] = OrderedDict()
        self.hits = self.misses = 0

    def thread_id(self, thread: str) -> str:
        """The store's keyed thread digest when there is a key (retention finds the files by it)."""
        if self.cipher:
            return self.cipher.blind("thread", thread)
        return hashlib.sha256(thread.encode()).hexdigest()

    def _name(self, thread_id: str) -> str:
        return f"{thread_id}-{self.engine.identity}-{PROMPT_VERSION}.kv"

    def _aad(self, thread_id: str) -> bytes:
        return f"kv:{thread_id}:{self.engine.identity}:{PROMPT_VERSION}".encode()

    # -- lookup ---------------------------------------------------------------------------------------------
    def restore(self, thread: str, prompt: str) -> int:
        """Restore the cached state of `thread` if it is a prefix of `prompt`; returns the shared token count."""
        thread_id = self.thread_id(thread)
        state = self._memory.get(thread_id) or self._load(thread_id)
        if state is None:
            self.misses += 1
            return 0
        tokens = self.engine.tokenize_prompt(prompt)
        shared = 0
        for a, b in zip(state.tokens, tokens, strict=False):
            if a != b:
                break
            shared += 1
        if state.model != self.engine.identity or shared < len(state.tokens) - BOUNDARY_SLACK:
            self.drop(thread)  # an earlier message changed, or the prompt did: never reuse a stale state
            self.misses += 1
            return 0
        self.engine.restore_prefix(state)
        self._memory[thread_id] = state
        self._memory.move_to_end(thread_id)
        self.hits += 1
        return shared

    def save(self, thread: str, prefix_prompt: str) -> PrefixState:
        thread_id = self.thread_id(thread)
        state = self.engine.save_prefix(prefix_prompt)
        self._memory[thread_id] = state
        self._memory.move_to_end(thread_id)
        while len(self._memory) > self.max_memory:
            self._memory.popitem(last=False)
        self._store(thread_id, state)
        return state

    def drop(self, thread: str) -> None:
        thread_id = self.thread_id(thread)
        self._memory.pop(thread_id, None)
        if self.folder:
            for f in self.folder.glob(f"{thread_id}-*.kv"):
                f.unlink(missing_ok=True)

    # -- disk -------------------------------------------------------------------------------------------------
    def _store(self, thread_id: str, state: PrefixState) -> None:
        if not self.folder or not self.cipher:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        blob = pickle.dumps((state.model, state.tokens, state.blob, state.nbytes))
        sealed = self.cipher.seal_bytes(blob, self._aad(thread_id))
        path = self.folder / self._name(thread_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(sealed)
        os.replace(tmp, path)
        files = sorted(self.folder.glob("*.kv"), key=lambda p: p.stat().st_mtime)
        for old in files[:-self.max_disk] if len(files) > self.max_disk else []:
            old.unlink(missing_ok=True)

    def _load(self, thread_id: str) -> PrefixState | None:
        if not self.folder or not self.cipher:
            return None
        path = self.folder / self._name(thread_id)
        if not path.exists():
            return None
        try:
            blob = self.cipher.open_bytes(path.read_bytes(), self._aad(thread_id))
            model, tokens, raw, nbytes = pickle.loads(blob)  # noqa: S301 - sealed by our own key, authenticated
        except (IntegrityError, ValueError, pickle.UnpicklingError):
            path.unlink(missing_ok=True)  # a cache entry is disposable: a damaged one is just a miss
            return None
        return PrefixState(model, tuple(tokens), raw, nbytes)
