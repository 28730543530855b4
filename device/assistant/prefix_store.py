"""System prompts' KV states kept on disk, so that a fresh process (a one-shot `glassmate ask`, the HUD after a
restart) does not read each task's system prompt again: ~3 s for ask's, with its worked examples, on 2 cores.

A system prompt holds no wearer data, so its state is stored plainly (numpy's .npz, read without pickle). A
state is keyed by the engine's fingerprint — model and adapter files as they are now, and the runtime's version —
and the prompt text; the newest `max_files` are kept. It is used only when its tokens are the prompt's tokens
and the engine accepts it. Anything else (a corrupt, torn or foreign file) is dropped and the prompt is read
again; a disk that cannot be written to only costs the time saved.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

from device.engines.base import Engine, EngineError, PrefixState


class PrefixStore:
    def __init__(self, folder: Path, max_files: int = 24):
        self.folder = Path(folder)
        self.max_files = max_files  # a changed prompt or model leaves its old states behind: the oldest go
        self.loaded = self.saved = self.dropped = 0

    def path(self, engine: Engine, prefix: str) -> Path:
        key = hashlib.sha256(f"{engine.fingerprint}\0{prefix}".encode()).hexdigest()[:32]
        return self.folder / f"prefix-{key}.npz"

    def restore(self, engine: Engine, prefix: str) -> PrefixState | None:
        """The saved state of `prefix`, restored into the engine; None when there is none that fits."""
        path = self.path(engine, prefix)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                tokens = tuple(int(t) for t in data["tokens"])
                if tokens != tuple(engine.tokenize_prompt(prefix)):
                    raise ValueError("saved for other tokens")
                kind = str(data["kind"])
                if kind == "bytes":
                    blob = data["blob"].tobytes()
                    nbytes = len(blob)
                elif kind == "arrays":
                    blob = [data[f"past_{i}"] for i in range(int(data["n"]))]
                    nbytes = sum(b.nbytes for b in blob)
                else:
                    raise ValueError(f"unknown kind {kind!r}")
            state = PrefixState(engine.identity, tokens, blob, nbytes)
            engine.restore_prefix(state)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, EngineError):
            # torn by a crash, from another build, or not ours: read the prompt again
            self.dropped += 1
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        self.loaded += 1
        return state

    def save(self, engine: Engine, prefix: str, state: PrefixState) -> None:
        if isinstance(state.blob, bytes | bytearray):
            arrays = {"kind": np.array("bytes"), "blob": np.frombuffer(bytes(state.blob), dtype=np.uint8)}
        elif isinstance(state.blob, list) and all(isinstance(b, np.ndarray) for b in state.blob):
            arrays = {"kind": np.array("arrays"), "n": np.array(len(state.blob))}
            arrays |= {f"past_{i}": b for i, b in enumerate(state.blob)}
        else:
            return  # a runtime whose state this store does not know how to write
        path = self.path(engine, prefix)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            np.savez(tmp, tokens=np.array(state.tokens, dtype=np.int64), **arrays)
            os.replace(tmp, path)
            self.saved += 1
            kept = sorted(self.folder.glob("prefix-*.npz"), key=lambda f: f.stat().st_mtime_ns, reverse=True)
            for old in kept[self.max_files:]:
                old.unlink()
        except OSError:  # a full or read-only disk: the state stays in memory for this process
            with contextlib.suppress(OSError):
                tmp.unlink()
