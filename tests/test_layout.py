"""The shape of the tree, read from the code: imports point one way, modules stay small,
and README's layout table names every module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("kokorod", "kokorod_client", "kokorod_common")
MAX_LINES = 420


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Every project module `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import module` depends on the module; `from module import name`
            # on the module itself.
            subs = [f"{node.module}.{a.name}" for a in node.names]
            names = [n for n in subs if n in known] or [node.module]
        else:
            continue
        found.update(n for n in names if n in known)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def test_no_import_cycles() -> None:
    edges = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(edges[node]):
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep):], dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_daemon_and_client_meet_only_in_the_shared_layer() -> None:
    for module, deps in graph().items():
        top = module.split(".")[0]
        if top == "kokorod":
            assert not any(d.startswith("kokorod_client") for d in deps), (module, deps)
        if top == "kokorod_client":
            bad = [d for d in deps if d.split(".")[0] == "kokorod"]
            assert not bad, (module, bad)
        if top == "kokorod_common":
            assert all(d.split(".")[0] == "kokorod_common" for d in deps), (module, deps)


def test_modules_stay_small() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert max(sizes.values()) <= MAX_LINES, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]


def test_readme_layout_names_every_module() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Layout"):]
    listed = set(re.findall(r"`([\w/]+(?:\.py)?/?)`", table))
    # "`kokorod/ctl/cli.py`, `model_cli.py`": a bare name in a row belongs to that row's folder.
    for row in table.splitlines():
        first = re.match(r"\| `([\w/]+)/", row)
        if first:
            listed |= {f"{first.group(1)}/{n}" for n in re.findall(r"`(\w+\.py)`", row)}
    for path in modules().values():
        rel = path.relative_to(ROOT).as_posix()
        if path.name == "__init__.py" and rel.count("/") <= 2:
            continue  # a package's or a layer's own face
        folder = rel.rsplit("/", 1)[0] + "/"  # a subpackage may be listed as a whole
        assert rel in listed or (folder.count("/") > 2 and folder in listed), \
            f"README's layout table misses {rel}"
