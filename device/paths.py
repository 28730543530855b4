"""Where glassmate keeps its catalog, model files and local state.

A checkout is self-contained: the catalog is `models/catalog.toml`, built model files land beside it, and the
on-device state lives in `.glassmate/`. `GLASSMATE_HOME` moves both the model files (`$GLASSMATE_HOME/models`)
and the state (`$GLASSMATE_HOME/state`), e.g. to a larger disk on a Pi.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def catalog_path() -> Path:
    override = os.environ.get("GLASSMATE_CATALOG")
    return Path(override) if override else REPO_ROOT / "models" / "catalog.toml"


def home() -> Path | None:
    value = os.environ.get("GLASSMATE_HOME")
    return Path(value).expanduser() if value else None


def models_dir() -> Path:
    h = home()
    return h / "models" if h else REPO_ROOT / "models"


def state_dir() -> Path:
    h = home()
    return h / "state" if h else REPO_ROOT / ".glassmate"


def cache_dir() -> Path:
    """Derived data rebuilt from installed packages when missing (no wearer data): e.g. the PII name lists."""
    h = home()
    return h / "cache" if h else REPO_ROOT / ".glassmate" / "cache"
