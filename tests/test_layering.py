"""The architecture as a checked contract: the glasses runtime (`device/`) imports none of the lab, the training
or the build tools — not at the top of a module, not inside a function. They plug into its CLI by entry point."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = "device"
FORBIDDEN = ("lab", "federated", "quantize", "tests")


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, module) for every import statement in the source, wherever it stands."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def violations(package: Path, forbidden: tuple[str, ...] = FORBIDDEN) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        for line, module in imported_modules(path.read_text(encoding="utf-8")):
            if module.split(".")[0] in forbidden:
                found.append(f"{path.relative_to(package.parent)}:{line}: imports {module}")
    return found


def test_the_runtime_imports_no_lab_training_or_build_code():
    assert violations(ROOT / RUNTIME) == []


def test_the_check_sees_an_import_hidden_in_a_function(tmp_path):
    pkg = tmp_path / RUNTIME / "glasses"
    pkg.mkdir(parents=True)
    (pkg / "hud.py").write_text("import json\n\ndef score():\n    from lab.evaluation import eval_summaries\n"
                                "    import federated.train as t\n")
    assert violations(tmp_path / RUNTIME) == [f"{RUNTIME}/glasses/hud.py:4: imports lab.evaluation",
                                              f"{RUNTIME}/glasses/hud.py:5: imports federated.train"]


def test_the_runtime_holds_no_evaluation_benchmark_or_corpus_module():
    names = {p.stem for p in (ROOT / RUNTIME).rglob("*.py")}
    assert not {n for n in names if "eval" in n or "bench" in n or n in {"irc", "dialogsum", "machine"}}
