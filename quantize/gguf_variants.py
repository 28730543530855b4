"""GGUF variants: dequantize a catalog GGUF to F32, then requantize it with llama.cpp's own quantizer.

Dequantizing to F32 is exact (every Q4_1/Q8_0/K-quant weight is a small float that F32 holds), so the F32 file is
the same model as the catalog file and the honest base for every other variant. Each variant lands in
`models/built/` and is registered with its sha256 (`device.catalog.register_variant`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import gguf
import numpy as np

from device.catalog import CatalogError, ModelSpec, get_model, models_dir, register_variant, require_model

# Names accepted by --types, and llama.cpp's file type for each (llama_ftype in llama.h).
FTYPES = {
    "F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10, "Q3_K_S": 11,
    "Q3_K_M": 12, "Q3_K_L": 13, "Q4_K_S": 14, "Q4_K_M": 15, "Q5_K_S": 16, "Q5_K_M": 17, "Q6_K": 18,
}
DEFAULT_TYPES = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K")


class QuantizeError(Exception):
    """A variant that could not be built, worded for the person at the terminal."""


def parse_types(text: str) -> list[str]:
    types = [t.strip().upper() for t in text.split(",") if t.strip()]
    unknown = [t for t in types if t not in FTYPES]
    if unknown:
        raise QuantizeError(f"unknown GGUF type(s) {', '.join(unknown)}; known: {', '.join(FTYPES)}")
    return types


def variant_spec(base: ModelSpec, kind: str, suffix: str, runtime: str, made_by: str) -> ModelSpec:
    name = f"{base.name}@{kind}"
    return replace(base, name=name, file=f"built/{name}{suffix}", sha256="", parts=(), quant=kind,
                   runtime=runtime, base=base.name, made_by=made_by, size=None,
                   upstream=f"built from {base.name}")


def dequantize_to_f32(base: ModelSpec, out: Path, on_tensor: Callable[[int, int], None] | None = None) -> Path:
    """Write `base`'s GGUF with every tensor as F32 and the same metadata (file_type set to ALL_F32)."""
    reader = gguf.GGUFReader(base.path)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    partial = out.with_name(out.name + ".partial")
    writer = gguf.GGUFWriter(partial, arch=arch)
    try:
        for field in reader.fields.values():
            if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
                continue  # written by GGUFWriter itself
            if field.name == gguf.Keys.General.FILE_TYPE:
                writer.add_file_type(gguf.LlamaFileType.ALL_F32)
                continue
            vtype = field.types[0]
            sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
        n = len(reader.tensors)
        for i, t in enumerate(reader.tensors):
            data = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
            writer.add_tensor(t.name, data, raw_dtype=gguf.GGMLQuantizationType.F32)
            if on_tensor:
                on_tensor(i + 1, n)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(partial, out)
    except BaseException as exc:
        writer.close()
        partial.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno == 28:
            raise QuantizeError(f"disk full while writing {partial}; nothing was kept") from exc
        raise
    return out


def requantize(src: Path, out: Path, kind: str, threads: int) -> Path:
    """llama.cpp's quantizer (llama_model_quantize), from the F32 file to `kind`."""
    import llama_cpp  # the quantizer lives in libllama; quantize/ is a build tool, not the glasses runtime

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[kind]
    params.nthread = threads
    partial = out.with_name(out.name + ".partial")
    with _captured_stderr() as log:  # libllama logs every tensor; keep it for the error message only
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(partial).encode(), ctypes.byref(params))
    if rc != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
        raise QuantizeError(f"llama.cpp's quantizer failed on {src} → {kind} (return code {rc}): {tail}; "
                            f"nothing was kept")
    os.replace(partial, out)
    return out


@contextlib.contextmanager
def _captured_stderr():
    """Send what C libraries write to fd 2, and what llama-cpp-python's log callback writes to sys.stderr, to a
    temporary file for the duration."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stderr.log"
        sys.stderr.flush()
        saved = os.dup(2)
        with path.open("w", encoding="utf-8", errors="replace") as fh, contextlib.redirect_stderr(fh):
            os.dup2(fh.fileno(), 2)
            try:
                yield path
            finally:
                fh.flush()
                os.dup2(saved, 2)
                os.close(saved)


def build_gguf_variants(model: str, types: list[str], threads: int = 2, force: bool = False,
                        progress: Callable[[str, int, int], None] | None = None) -> list[ModelSpec]:
    """Build `model@F32` (the exact dequantized base) and `model@<type>` for each of `types`; returns the specs."""
    base = require_model(model)
    if base.is_variant or base.runtime != "llama":
        raise QuantizeError(f"{model} is not a catalog GGUF; name the catalog model (e.g. {base.base})")
    (models_dir() / "built").mkdir(parents=True, exist_ok=True)
    made_by = f"glassmate quantize gguf --model {base.name} --types {','.join(types)}"
    f32 = variant_spec(base, "F32", ".gguf", "llama", f"glassmate quantize gguf --model {base.name} --types F32")
    built: list[ModelSpec] = []
    if force or not _registered_and_present(f32.name):
        def on_tensor(i: int, n: int) -> None:
            if progress:
                progress(f"dequantize → F32: tensor {i}/{n}", 0, len(types))
        dequantize_to_f32(base, f32.path, on_tensor)
        register_variant(f32)
    built.append(get_model(f32.name))
    for i, kind in enumerate(t for t in types if t != "F32"):
        spec = variant_spec(base, kind, ".gguf", "llama", made_by)
        if progress:
            progress(f"quantize → {kind}", i + 1, len(types))
        if force or not _registered_and_present(spec.name):
            requantize(f32.path, spec.path, kind, threads)
            register_variant(spec)
        built.append(get_model(spec.name))
    return built


def _registered_and_present(name: str) -> bool:
    try:
        return get_model(name).is_fetched()
    except CatalogError:
        return False
