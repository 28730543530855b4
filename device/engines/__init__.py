"""Engines: one interface (`base.Engine`), one module per runtime, imported lazily by name."""

from __future__ import annotations

from device.engines.base import ChatMessage, Engine, EngineError, Generation, GenerationParams

RUNTIMES = ("llama",)

__all__ = ["ChatMessage", "Engine", "EngineError", "Generation", "GenerationParams", "RUNTIMES", "load_engine"]


def load_engine(model: str, runtime: str = "llama", n_ctx: int | None = None, n_threads: int | None = None) -> Engine:
    """Open catalog model `model` under `runtime`; raises CatalogError/EngineError with a one-line reason."""
    from device.catalog import require_model

    spec = require_model(model)
    if runtime == "llama":
        from device.engines.llama import LlamaEngine

        return LlamaEngine(spec.name, spec.path, n_ctx=n_ctx or spec.n_ctx, n_threads=n_threads)
    raise EngineError(f"unknown runtime {runtime!r}; available: {', '.join(RUNTIMES)}")
