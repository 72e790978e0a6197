"""The shape of the tree, read from the code: imports point one way, modules stay small,
and docs/architecture.md's layout table names every module."""

from __future__ import annotations

import ast
import functools
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


def imports(path: Path, known: dict[str, Path],
            classes: dict[str, set[str]] | None = None) -> set[str]:
    """Every project module `path` imports, at the top or inside a function; with `classes`
    (class name → modules defining it), also a module-level `Engine = Any` standing in for
    a project class: an import hidden from the reader, counted as the import it hides."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
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
    for alias in any_aliases(tree):
        found.update((classes or {}).get(alias, set()))
    return found


def any_aliases(tree: ast.Module) -> set[str]:
    """Module-level names bound to `Any` (`X = Any`, `X: TypeAlias = Any`)."""
    out = set()
    for node in tree.body:
        targets, value = [], None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        is_any = (isinstance(value, ast.Name) and value.id == "Any") or (
            isinstance(value, ast.Attribute) and value.attr == "Any")
        if is_any:
            out.update(t.id for t in targets if isinstance(t, ast.Name))
    return out


def class_index(known: dict[str, Path]) -> dict[str, set[str]]:
    """Class name → the project modules that define it at module level."""
    out: dict[str, set[str]] = {}
    for name, path in known.items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                out.setdefault(node.name, set()).add(name)
    return out


@functools.cache
def graph() -> dict[str, set[str]]:
    known = modules()
    classes = class_index(known)
    return {name: imports(path, known, {c: ms - {name} for c, ms in classes.items()}) - {name}
            for name, path in known.items()}


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


def test_architecture_layout_names_every_module() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    table = page[page.index("## Layout"):]
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
            f"docs/architecture.md's layout table misses {rel}"


# The daemon's layers, each a folder of kokorod/: a layer imports only the ones before it
# (and the ground floor, and kokorod_common); `ctl` may import anything.
LAYERS = ("store", "synth", "serve", "ctl")
# kokorod's own top-level modules: what every layer uses, importing no layer.
GROUND_FLOOR = {"kokorod", "kokorod.config", "kokorod.setting_values", "kokorod.extras",
                "kokorod.logs", "kokorod.progress"}


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return "ctl" if module == "kokorod.__main__" else "ground"  # `python -m kokorod`


def test_every_daemon_module_has_a_layer() -> None:
    top = {m for m in graph() if m.startswith("kokorod.") or m == "kokorod"}
    loose = {m for m in top if layer(m) == "ground"} - GROUND_FLOOR
    assert not loose, f"put these in a layer folder ({', '.join(LAYERS)}): {sorted(loose)}"


def test_layers_import_only_the_layers_below() -> None:
    order = ("ground", *LAYERS)
    bad = []
    for module, deps in graph().items():
        if module.split(".")[0] != "kokorod" or layer(module) == "ctl":
            continue
        rank = order.index(layer(module))
        bad += [f"{module} -> {dep}" for dep in sorted(deps)
                if dep.split(".")[0] == "kokorod" and order.index(layer(dep)) > rank]
    assert not bad, "a layer imports one above it:\n" + "\n".join(bad)


def test_each_layer_says_what_it_owns() -> None:
    for name in LAYERS:
        tree = ast.parse((ROOT / "kokorod" / name / "__init__.py").read_text())
        doc = ast.get_docstring(tree) or ""
        assert "import" in doc, f"kokorod/{name}/__init__.py: say what it owns and may import"
        assert all(isinstance(n, ast.Expr) for n in tree.body), \
            f"kokorod/{name}/__init__.py: a docstring only (import the modules themselves)"


def test_any_alias_counts_as_the_import_it_hides(tmp_path: Path) -> None:
    hidden = tmp_path / "hidden_alias.py"
    hidden.write_text("from typing import Any\n\nEngine = Any  # not imported: no cycle\n")
    known = modules()
    assert any_aliases(ast.parse(hidden.read_text())) == {"Engine"}
    assert "kokorod.synth.engine" in imports(hidden, known, class_index(known))


BENCH = {p.stem for p in (ROOT / "bench").glob("*.py")}
# What tests and bench both measure with lives in tests/testkit/ (the bench imports it);
# no test imports the bench (test_bench runs bench/run_bench.py as a program).


def bench_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & (BENCH | {"bench"})


def test_nothing_imports_the_bench() -> None:
    for path in modules().values():
        assert not bench_imports(path), (path, bench_imports(path))
    tests = sorted((ROOT / "tests").rglob("*.py"))
    using = {p.relative_to(ROOT).as_posix(): bench_imports(p) for p in tests}
    assert not {k: v for k, v in using.items() if v}, f"tests that import bench/: {using}"
    reached = [p.relative_to(ROOT).as_posix() for p in tests
               if re.search(r"sys\.path.*[\"']bench[\"']", p.read_text())]
    assert not reached, f"tests that put bench/ on sys.path: {reached}"
