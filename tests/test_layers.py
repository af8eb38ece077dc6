"""The architecture's import rules, checked against the source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["api", "engine", "presets", "store", "catalog", "ui"]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def modules() -> list[Path]:
    return [ROOT / "app.py"] + [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]


def test_only_ui_and_app_import_gradio() -> None:
    offenders = [
        p for p in modules() if "gradio" in imports_of(p) and p.parts[-2] != "ui" and p.name != "app.py"
    ]
    assert offenders == []


def test_exactly_one_module_imports_llama_cpp() -> None:
    users = [p.relative_to(ROOT).as_posix() for p in modules() if "llama_cpp" in imports_of(p)]
    assert users == ["engine/llama.py"]


def test_at_most_one_module_imports_huggingface_hub() -> None:
    users = [p for p in modules() if "huggingface_hub" in imports_of(p)]
    assert len(users) <= 1
    assert all(p.parts[-2] == "catalog" for p in users)


def test_lower_layers_never_import_upper_ones() -> None:
    upper = {
        "api": {"ui", "app", "catalog", "gradio"},
        "engine": {"ui", "app", "store", "catalog", "api"},
        "presets": {"ui", "app", "engine", "store", "catalog", "api"},
        "store": {"ui", "app", "engine", "api"},
        "catalog": {"ui", "app", "api"},
    }
    for package, banned in upper.items():
        for path in (ROOT / package).rglob("*.py"):
            assert not imports_of(path) & banned, f"{path} imports {imports_of(path) & banned}"


def test_engine_imports_without_gradio() -> None:
    code = "import sys; sys.modules['gradio'] = None; import engine, presets, store, catalog; print('ok')"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_modules_stay_small() -> None:
    big = [(p.name, n) for p in modules() if (n := len(p.read_text().splitlines())) > 400]
    assert big == []
