"""Which tests need the model (or a daemon, which loads it): marked `model`, so that
`pytest -m "not model"` is the fast tier for everyday work, while `.ci/run` runs all.

Read from the tests themselves, not listed by hand: a test needs the model when it uses a
fixture that starts a daemon or an engine (directly or through other fixtures), or when
its own code, a fixture's or a module helper's it calls starts one.
"""

from __future__ import annotations

import ast
import functools
import inspect
import os
import re
import textwrap
from typing import Any

import pytest

# Set by conftest when the run leaves the model out: the fast tier, for everyday work.
FAST_ENV = "KOKORO_TEST_FAST_TIER"


def examples(full: int) -> int:
    """Property tests' example count: all of them in the full suite (`.ci/run`), a
    twentieth (at least 50) in the fast tier."""
    return max(50, full // 20) if os.environ.get(FAST_ENV) == "1" else full


def is_fast_tier(markexpr: str) -> bool:
    return bool(re.search(r"\bnot\s+model\b", markexpr or ""))


MODEL_FIXTURES = frozenset({"daemon", "engine", "speaker", "one_shot"})
STARTS_THE_MODEL = re.compile(
    r"\bstart_daemon\(|\bEngine\(|\bKokoro\(|\bembedded_model\(|\bassemble_embedded\(|"
    r"\bInferenceSession\(|\bkokorod_cli\(\s*\"(?:start|run)\"|\"kokorod\",\s*\"(?:start|run)\"|"
    r"\"-m\",\s*\"kokorod\",\s*\"(?:start|run)\"")


def _source(obj: Any) -> str:
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        return ""


@functools.cache
def _helper_starts_model(module: Any, name: str, depth: int = 2) -> bool:
    """A module-level function of the test module that starts the model, itself or
    through the module's other functions (`depth` calls deep)."""
    func = getattr(module, name, None)
    if not inspect.isfunction(func) or func.__module__ != module.__name__:
        return False
    return _starts_model(module, _source(func), depth - 1)


def _starts_model(module: Any, source: str, depth: int = 2) -> bool:
    if STARTS_THE_MODEL.search(source):
        return True
    if depth <= 0 or not source:
        return False
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    called = {n.func.id for n in ast.walk(tree)
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return any(_helper_starts_model(module, name, depth) for name in sorted(called))


def needs_model(item: pytest.Item) -> bool:
    names = set(getattr(item, "fixturenames", ()))
    if names & MODEL_FIXTURES:
        return True
    module = getattr(item, "module", None)
    sources = [_source(getattr(item, "function", None))]
    info = getattr(item, "_fixtureinfo", None)
    for name in names:
        for definition in (info.name2fixturedefs.get(name, ()) if info else ()):
            sources.append(_source(definition.func))
    return any(_starts_model(module, s) for s in sources if s)


def mark(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("model") is None and needs_model(item):
            item.add_marker(pytest.mark.model)
