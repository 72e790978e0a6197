"""One atomic-write helper for every file kokorod writes: whole or old, never torn, no
temporary left behind, symlinks kept, devices written in place."""

from __future__ import annotations

import ast
import json
import os
import stat
from pathlib import Path

import pytest

from kokorod_common import atomic

ROOT = Path(__file__).resolve().parent.parent


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_write_replaces_the_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "f.txt"
    atomic.write_text(target, "old\n")
    atomic.write_text(target, "new and longer\n")
    assert target.read_text() == "new and longer\n"
    assert leftovers(target.parent) == []


def test_an_error_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    atomic.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic.replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert json.loads(target.read_text()) == {"a": 1}
    assert leftovers(tmp_path) == []


def test_mode_is_set_before_the_file_appears(tmp_path: Path) -> None:
    target = tmp_path / "launcher"
    atomic.write_text(target, "#!/bin/sh\n", mode=0o755)
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


def test_a_symlink_stays_and_its_file_is_replaced(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "config.toml"
    real.parent.mkdir()
    real.write_text("a = 1\n")
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    atomic.write_text(link, "a = 2\n")
    assert link.is_symlink() and real.read_text() == "a = 2\n"


def test_a_device_is_written_in_place() -> None:
    devnull = Path(os.devnull)
    assert not atomic.replaceable(devnull)
    atomic.write_bytes(devnull, b"nothing")  # no rename over /dev/null
    assert devnull.is_char_device()


def test_pending_commits_or_discards(tmp_path: Path) -> None:
    target = tmp_path / "a.wav"
    kept = atomic.Pending(target)
    kept.path.write_bytes(b"RIFF")
    assert not target.exists()  # nothing visible until commit
    kept.commit()
    assert target.read_bytes() == b"RIFF"
    dropped = atomic.Pending(target)
    dropped.path.write_bytes(b"half")
    dropped.discard()
    assert target.read_bytes() == b"RIFF" and leftovers(tmp_path) == []


def test_no_module_renames_or_writes_files_itself() -> None:
    """Every write goes through kokorod_common/atomic.py: no os.replace, rename,
    write_text, write_bytes or json.dump elsewhere (writing the temporary atomic hands
    out is done inside a `replacing`/`Pending` block and says so with `atomic.`)."""
    bad = []
    for package in ("kokorod", "kokorod_client", "kokorod_common"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "atomic.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                    continue
                owner = ast.unparse(node.func.value)
                name = node.func.attr
                if (owner, name) in {("os", "replace"), ("os", "rename"), ("json", "dump"),
                                     ("shutil", "move")} or (
                        name in {"rename", "write_text", "write_bytes"}
                        and owner not in {"atomic", "written", "tmp"}):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} {owner}.{name}")
    assert not bad, "write through kokorod_common.atomic:\n" + "\n".join(bad)
