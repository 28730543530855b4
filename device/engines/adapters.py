"""Task adapters on the glasses: GGUF LoRA files registered with their sha256, looked up per model and task.

`glassmate adapters build` (federated/) trains and registers them in `models/built/adapters.json`; the assistant
loads the right one per task (catch_up, draft_replies) when its engine can run adapters. A registered adapter
also records which rows trained it, so an evaluation can refuse to score it on its own training data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from device.catalog import CatalogError, sha256_of
from device.engines.personal import PersonalAdapters
from device.paths import models_dir
from device.tasks import ADAPTER_TASKS, Task


@dataclass(frozen=True)
class AdapterSpec:
    name: str  # "<model>.<task>", e.g. "smollm2-135m.catch_up"
    model: str  # the catalog model it was trained on (its GGUF variants share the weights' layout)
    task: Task
    file: str  # relative to models/
    sha256: str
    size: int
    made_by: str = ""
    trained_on: dict = field(default_factory=dict)  # {"data": file name, "ids": [...]} of the training rows

    @property
    def path(self) -> Path:
        return models_dir() / self.file

    def training_ids(self) -> set[str]:
        return set(self.trained_on.get("ids", []))


def registry_path() -> Path:
    return models_dir() / "built" / "adapters.json"


def load_adapters() -> dict[str, AdapterSpec]:
    path = registry_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CatalogError(f"the adapter registry {path} is unreadable ({exc}); delete it and rebuild the "
                           f"adapters with `glassmate adapters build`") from exc
    try:
        return {name: AdapterSpec(name=name, **entry | {"task": Task(entry["task"])})
                for name, entry in raw.get("adapters", {}).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise CatalogError(f"the adapter registry {path} has a malformed entry ({exc}); delete it and rebuild the "
                           f"adapters with `glassmate adapters build`") from exc


def register_adapter(spec: AdapterSpec) -> AdapterSpec:
    if not spec.path.is_file():
        raise CatalogError(f"cannot register adapter {spec.name}: {spec.path} does not exist")
    entry = {"model": spec.model, "task": spec.task, "file": spec.file, "sha256": sha256_of(spec.path),
             "size": spec.path.stat().st_size, "made_by": spec.made_by, "trained_on": spec.trained_on}
    path = registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raw = {}
    raw.setdefault("adapters", {})[spec.name] = entry
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(raw, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return load_adapters()[spec.name]


def base_model(model: str) -> str:
    """Adapters of `smollm2-135m` also fit its GGUF variants (`smollm2-135m@Q8_0`): same tensors."""
    return model.split("@", 1)[0]


def adapters_for(model: str) -> dict[Task, AdapterSpec]:
    """task → registered adapter for this model (built and present)."""
    base = base_model(model)
    return {a.task: a for a in load_adapters().values() if a.model == base and a.path.is_file()}


def verified(spec: AdapterSpec) -> AdapterSpec:
    """The adapter if its file still hashes to the registered sha256; a clear error otherwise."""
    rebuild = spec.made_by or "glassmate adapters build"
    if not spec.path.is_file():
        raise CatalogError(f"adapter {spec.name}: {spec.path} is missing (rebuild: {rebuild})")
    if sha256_of(spec.path) != spec.sha256:
        raise CatalogError(f"adapter {spec.name}: {spec.path} does not match its registered sha256 (corrupt or "
                           f"replaced); rebuild it: {rebuild}")
    return spec


def attach(engine, model: str, files: dict[Task, Path] | None = None, registered: bool = True,
           personal: Path | None = None) -> dict[Task, str]:
    """Load the adapters into `engine`; returns task → adapter name for the Assistant.

    `registered`: every built adapter of this model (sha256-checked), skipped quietly on an engine that runs
    no adapters (ONNX). `personal`: the state folder whose personal replies adapter (`personal.py`), if one is
    in effect, drafts the replies instead of the registered one. `files`: task → a GGUF LoRA file given by path
    (e.g. a federated run's output), loaded as is and always an error if it cannot be used."""
    out: dict[Task, str] = {}
    if registered and engine.runtime == "llama":
        for task, spec in sorted(adapters_for(model).items()):
            engine.load_adapter(spec.name, verified(spec).path)
            out[task] = spec.name
    if personal is not None and engine.runtime == "llama":
        mine = PersonalAdapters(personal, model)
        if (version := mine.current()) is not None:
            name = f"personal:v{version.version}"
            engine.load_adapter(name, mine.path(version.gguf))
            out[Task.DRAFT_REPLIES] = name
    for task, path in (files or {}).items():
        if task not in ADAPTER_TASKS:
            raise CatalogError(f"unknown task {task!r} for an adapter; tasks: {', '.join(ADAPTER_TASKS)}")
        name = f"file:{Path(path).name}"
        engine.load_adapter(name, Path(path))
        out[task] = name
    return out
