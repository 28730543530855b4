"""The on-device embedder: ONNX graph built from the packaged all-MiniLM-L6-v2 weights, checked against PyTorch."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from device.ask.embedder import PACKAGE, Embedder, EmbedderError, fetch_embedder

TEXTS = ["Dinner is at 8 on Friday at Luigi's", "which bus did Tomasz say?", "ok",
         "the plumber comes Tuesday morning between 9 and 11, the landlord said " * 3]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    fetch_embedder()
    return Embedder(threads=2)


def test_onnx_embeddings_equal_the_pytorch_reference(embedder, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from device.catalog import download_wheel

    with zipfile.ZipFile(download_wheel(PACKAGE, tmp_path)) as zf:
        zf.extractall(tmp_path / "x", [n for n in zf.namelist() if n.startswith(PACKAGE.member)])
    ref_dir = tmp_path / "x" / PACKAGE.member
    model = transformers.BertModel.from_pretrained(ref_dir).eval()
    tok = transformers.AutoTokenizer.from_pretrained(ref_dir)
    batch = tok(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    ref = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    got = embedder.embed(TEXTS)
    assert got.shape == (4, 384) and np.abs(got - ref).max() < 1e-4


def test_similar_meanings_are_close(embedder):
    q, dinner, bus, plumber = embedder.embed(["what time is dinner on Friday?", TEXTS[0], TEXTS[1], TEXTS[3]])
    assert q @ dinner > q @ bus and q @ dinner > q @ plumber
    assert embedder.embed([]).shape == (0, 384)


def test_a_corrupt_model_file_is_a_clear_error(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"not an onnx model")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(EmbedderError, match="not a loadable ONNX model"):
        Embedder(tmp_path)
    with pytest.raises(EmbedderError, match="no embedder"):
        Embedder(tmp_path / "missing")
