"""Engines: one interface (`base.Engine`), one module per runtime, imported lazily by name."""

from __future__ import annotations

from typing import get_args

from device.engines.base import ChatMessage, Engine, EngineError, Generation, GenerationParams, Runtime

RUNTIMES: tuple[Runtime, ...] = get_args(Runtime)

__all__ = ["ChatMessage", "Engine", "EngineError", "Generation", "GenerationParams", "RUNTIMES", "load_engine"]


def load_engine(model: str, runtime: Runtime | None = None, n_ctx: int | None = None,
                n_threads: int | None = None) -> Engine:
    """Open model `model` (a catalog name or a built variant such as `smollm2-135m@onnx-int8`).

    The runtime follows from the model file (GGUF → llama.cpp, ONNX folder → ONNX Runtime); passing a different
    `runtime` is an error rather than a silent conversion. Raises CatalogError/EngineError with a one-line reason.
    """
    from device.catalog import require_model

    spec = require_model(model)
    if runtime is not None and runtime != spec.runtime:
        if runtime not in RUNTIMES:
            raise EngineError(f"unknown runtime {runtime!r}; available: {', '.join(RUNTIMES)}")
        raise EngineError(f"{model} is a {spec.runtime} model, not {runtime}; build an ONNX variant with "
                          f"`glassmate quantize onnx --model {spec.base or model}` and name it (…@onnx-int8)")
    if spec.runtime == "llama":
        from device.engines.llama import LlamaEngine

        return LlamaEngine(spec.name, spec.path, n_ctx=n_ctx or spec.n_ctx, n_threads=n_threads)
    if spec.runtime == "onnx":
        from device.engines.onnx import OnnxEngine

        return OnnxEngine(spec.name, spec.path, n_ctx=n_ctx or spec.n_ctx, n_threads=n_threads)
    raise EngineError(f"{model} names runtime {spec.runtime!r}; available: {', '.join(RUNTIMES)}")
