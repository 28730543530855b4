"""The wearer's personal replies adapter, versioned on the device: installed only when better, the previous kept,
a corrupt one rolled back.

Each model has a folder under `<state>/adapters/personal/<model>/`: `vNNNN.gguf` (what llama.cpp loads), beside
it `vNNNN.pt` (the LoRA weights training continues from, written by `glassmate learn`), and `history.json`, the
record of every attempt (installed, rejected as no better, rolled back, found corrupt) and which version is
current. A version's files are complete before the history names it, and the history is replaced in one rename,
so a run stopped at any point leaves the previous version in effect. It was trained on the wearer's own messages:
it never leaves the device (retention's `forget` says it is not untrained by erasing a thread).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from device.catalog import CatalogError, sha256_of

log = logging.getLogger(__name__)
PERSONAL_DIR = Path("adapters") / "personal"  # under the state folder (retention.ADAPTER_DIR is "adapters")


class Status(StrEnum):
    INSTALLED = "installed"  # in effect, or was until a later one replaced it
    REJECTED = "rejected"  # trained, not better on the held-out sends than what was in effect: never installed
    ROLLED_BACK = "rolled-back"  # the wearer (or a check) went back past it
    CORRUPT = "corrupt"  # its file no longer matched its sha256: taken out of use


@dataclass(frozen=True)
class Version:
    version: int
    status: Status
    created: str
    gguf: str = ""  # file names in the model's folder (empty for a rejected attempt: nothing kept)
    weights: str = ""
    sha256: str = ""
    size: int = 0
    report: dict = field(default_factory=dict)  # training and validation numbers (no text)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class History:
    current: int | None
    versions: list[Version]

    def get(self, version: int) -> Version:
        for v in self.versions:
            if v.version == version:
                return v
        raise CatalogError(f"there is no personal adapter version {version}")


class PersonalAdapters:
    def __init__(self, state: Path, model: str):
        self.model = model.split("@", 1)[0]  # GGUF variants share the weights' layout
        self.root = state / PERSONAL_DIR / self.model
        self.history_path = self.root / "history.json"

    # -- the record ----------------------------------------------------------------------------------------------
    def history(self) -> History:
        try:
            raw = json.loads(self.history_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return History(None, [])
        except (OSError, ValueError) as exc:
            raise CatalogError(f"the personal adapter history {self.history_path} is unreadable ({exc}); the bare "
                               f"model runs until it is repaired or removed") from exc
        try:
            versions = [Version(**v | {"status": Status(v["status"])}) for v in raw["versions"]]
            return History(raw.get("current"), versions)
        except (KeyError, TypeError, ValueError) as exc:
            raise CatalogError(f"the personal adapter history {self.history_path} is malformed ({exc})") from exc

    def _save(self, history: History) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.history_path.with_name("history.json.partial")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"model": self.model, "current": history.current,
                       "versions": [v.to_json() for v in history.versions]}, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.history_path)

    def _next(self, history: History) -> int:
        return max((v.version for v in history.versions), default=0) + 1

    def path(self, name: str) -> Path:
        return self.root / name

    # -- changes ---------------------------------------------------------------------------------------------
    def install(self, gguf: Path, weights: Path | None, report: dict) -> Version:
        """Copy a trained adapter in as the next version and make it current."""
        history = self.history()
        n = self._next(history)
        self.root.mkdir(parents=True, exist_ok=True)
        names = {"gguf": f"v{n:04d}.gguf", "weights": f"v{n:04d}.pt" if weights is not None else ""}
        for key, source in (("gguf", gguf), ("weights", weights)):
            if source is None:
                continue
            target = self.path(names[key])
            tmp = target.with_name(target.name + ".partial")
            shutil.copyfile(source, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
        target = self.path(names["gguf"])
        version = Version(n, Status.INSTALLED, _now(), names["gguf"], names["weights"], sha256_of(target),
                          target.stat().st_size, report)
        history.versions.append(version)
        history.current = n
        self._save(history)
        return version

    def reject(self, report: dict) -> Version:
        """Record a trained adapter that was no better than what is in effect (nothing of it is kept)."""
        history = self.history()
        version = Version(self._next(history), Status.REJECTED, _now(), report=report)
        history.versions.append(version)
        self._save(history)
        return version

    def rollback(self, to: int | None = None) -> Version | None:
        """Go back to version `to`, or (default) to the installed one before the current; None: the bare model."""
        history = self.history()
        if history.current is None and to is None:
            raise CatalogError("no personal adapter is in effect: nothing to roll back (--to N puts one back)")
        if to is not None:
            target = history.get(to)
            f = self.path(target.gguf) if target.gguf else None
            if target.status not in (Status.INSTALLED, Status.ROLLED_BACK) or f is None or not f.is_file() \
                    or sha256_of(f) != target.sha256:
                state = target.status.value if target.status not in (Status.INSTALLED, Status.ROLLED_BACK) \
                    else "missing or corrupt"
                raise CatalogError(f"version {to} is {state}; it cannot be put back in effect")
        else:
            usable = [v for v in history.versions if v.status is Status.INSTALLED and v.version < history.current
                      and self.path(v.gguf).is_file()]
            target = usable[-1] if usable else None
        history.versions = [replace(v, status=Status.ROLLED_BACK) if v.version == history.current else v
                            for v in history.versions]
        if target is not None:
            history.versions = [replace(v, status=Status.INSTALLED) if v.version == target.version else v
                                for v in history.versions]
        history.current = target.version if target is not None else None
        self._save(history)
        return target

    # -- in use ------------------------------------------------------------------------------------------------
    def current(self) -> Version | None:
        """The version in effect, its file checked against its sha256. A corrupt or missing one is taken out of
        use and the previous good version put back (or none: the bare model), with a warning; never an error that
        stops the glasses."""
        try:
            history = self.history()
        except CatalogError as exc:
            log.warning("%s", exc)
            return None
        while history.current is not None:
            v = history.get(history.current)
            f = self.path(v.gguf)
            if f.is_file() and sha256_of(f) == v.sha256:
                return v
            log.warning("personal adapter v%d of %s is %s: rolled back to the previous version", v.version,
                        self.model, "missing" if not f.is_file() else "corrupt (sha256 mismatch)")
            older = [o for o in history.versions if o.status is Status.INSTALLED and o.version < v.version]
            history.versions = [replace(o, status=Status.CORRUPT) if o.version == v.version else o
                                for o in history.versions]
            history.current = older[-1].version if older else None
            self._save(history)
        return None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
