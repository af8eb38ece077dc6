"""The architecture's import rules, checked against the source.

The layers, top to bottom: `app.py` → `ui/` (the only gradio code) and `api/` → `services/`
(what each tab does, as plain functions) → `engine/`, `catalog/`, `store/` → `presets/`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["api", "services", "engine", "presets", "store", "catalog", "ui", "bench"]
MAX_MODULES_PER_FOLDER = 15

# What each package may never import (a package name, or gradio).
BANNED = {
    "ui": {"api", "app", "bench"},
    "api": {"ui", "app", "catalog", "gradio", "bench"},
    "services": {"ui", "app", "api", "gradio", "bench"},
    "engine": {"ui", "app", "store", "catalog", "api", "services", "gradio", "bench"},
    "catalog": {"ui", "app", "api", "services", "gradio", "bench"},
    "store": {"ui", "app", "engine", "catalog", "api", "services", "gradio", "bench"},
    "presets": {"ui", "app", "engine", "store", "catalog", "api", "services", "gradio", "bench"},
    "bench": {"ui", "gradio"},
}


def modules() -> list[Path]:
    return [ROOT / "app.py"] + [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]


def dotted(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> Iterator[str]:
    """Every absolute module name `path` imports: for `from M import x`, M.x when x is a
    module of Hearth's (`from engine.prompts import chat`), else M."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                yield name if is_module(name) else node.module


def is_module(name: str) -> bool:
    path = ROOT / Path(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path) -> set[str]:
    """The top-level packages `path` imports."""
    return {name.split(".")[0] for name in imported_modules(path)}


def module_names() -> dict[str, Path]:
    return {dotted(p): p for p in modules()}


def test_only_ui_and_app_import_gradio() -> None:
    offenders = [
        p.relative_to(ROOT).as_posix()
        for p in modules()
        if "gradio" in imports_of(p) and p.relative_to(ROOT).parts[0] != "ui" and p.name != "app.py"
    ]
    assert offenders == []


def test_exactly_one_module_imports_llama_cpp() -> None:
    scripts = sorted((ROOT / "scripts").glob("*.py"))
    users = [p.relative_to(ROOT).as_posix() for p in modules() + scripts if "llama_cpp" in imports_of(p)]
    assert users == ["engine/llama.py"]


def test_exactly_one_module_imports_huggingface_hub() -> None:
    users = [p.relative_to(ROOT).as_posix() for p in modules() if "huggingface_hub" in imports_of(p)]
    assert users == ["catalog/hub.py"]


def test_lower_layers_never_import_upper_ones() -> None:
    offenders = []
    for package, banned in BANNED.items():
        for path in (ROOT / package).rglob("*.py"):
            if bad := imports_of(path) & banned:
                offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert offenders == []


def test_lower_layers_and_services_import_without_gradio() -> None:
    """The application layer loads no gradio: the API, benchmarks and tests pay nothing for it."""
    code = (
        "import sys\n"
        "import engine, presets, store, catalog, api, services\n"
        "import services.context, services.files, services.render, services.run_stream\n"
        "import services.chat.logic, services.chat.reply, services.chat.actions\n"
        "import services.chat.characters, services.chat.character_edit\n"
        "import services.story.logic, services.story.adventure\n"
        "import services.models.logic, services.models.convert\n"
        "import api.server\n"
        "assert 'gradio' not in sys.modules, 'gradio was imported'\n"
        "assert not [m for m in sys.modules if m == 'ui' or m.startswith('ui.')], 'ui was imported'\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_top_level_package_entry_points_are_docstrings() -> None:
    """The rule for entry points: a top-level package's `__init__` holds only its docstring,
    and imports name the module that defines a thing."""
    for package in PACKAGES:
        body = ast.parse((ROOT / package / "__init__.py").read_text()).body
        assert len(body) == 1 and isinstance(body[0], ast.Expr), f"{package}/__init__.py has code"


def subpackages() -> list[str]:
    return sorted(
        dotted(init)
        for package in PACKAGES
        for init in (ROOT / package).rglob("__init__.py")
        if init.parent != ROOT / package
    )


def test_families_are_entered_through_their_package() -> None:
    """Code outside a subpackage imports its `__init__` (the family's entry point), never
    the modules inside it. `services/` subpackages group modules rather than hide them."""
    families = [name for name in subpackages() if not name.startswith("services.")]
    names = module_names()
    offenders = []
    for importer, path in names.items():
        for target in set(imported_modules(path)):
            for family in families:
                inside = importer == family or importer.startswith(family + ".")
                if target.startswith(family + ".") and target in names and not inside:
                    offenders.append(f"{importer} imports {target}")
    assert offenders == []


def import_graph() -> dict[str, set[str]]:
    names = module_names()
    return {
        name: {target for target in imported_modules(path) if target in names and target != name}
        for name, path in names.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_between_modules() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_flat_folder_of_many_modules() -> None:
    folders: dict[Path, int] = {}
    for path in modules():
        if path.name != "__init__.py":
            folders[path.parent] = folders.get(path.parent, 0) + 1
    crowded = {str(f.relative_to(ROOT)): n for f, n in folders.items() if n > MAX_MODULES_PER_FOLDER}
    assert crowded == {}


def test_modules_stay_small() -> None:
    big = [(p.name, n) for p in modules() if (n := len(p.read_text().splitlines())) > 400]
    assert big == []
