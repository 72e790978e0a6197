"""Downloads against a local HTTP server (never the internet): progress, resume, checksums,
disk-full and permission errors, and `kokorod model …` end to end with the embedded model."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fileserver import FileServer
from helpers import kokorod_cli

from kokorod.store import download, models

MIB = 1 << 20


class Recorder:
    """A progress factory that keeps what the bar would have shown."""

    def __init__(self) -> None:
        self.bars: list[dict[str, Any]] = []

    def __call__(self, desc: str, total: int | None, initial: int) -> Recorder:
        self.bars.append({"desc": desc, "total": total, "initial": initial, "updates": 0})
        return self

    def update(self, n: int) -> None:
        self.bars[-1]["updates"] += n

    def close(self) -> None:
        pass


@pytest.fixture
def server() -> Iterator[FileServer]:
    with FileServer() as srv:
        yield srv


@pytest.fixture
def blob(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "src" / "blob.bin"
    path.parent.mkdir()
    path.write_bytes(os.urandom(3 * MIB + 123))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_shows_progress_and_lands_atomically(server: FileServer, blob: tuple[Path, str],
                                                      tmp_path: Path) -> None:
    src, digest = blob
    server.serve("blob.bin", src)
    target = tmp_path / "store" / "blob.bin"
    progress = Recorder()
    got = download.fetch(f"{server.base_url}/blob.bin", target, digest, progress=progress)
    assert got == digest and target.read_bytes() == src.read_bytes()
    assert progress.bars[0]["total"] == src.stat().st_size
    assert progress.bars[0]["updates"] == src.stat().st_size
    assert not download.part_path(target).exists()


def test_interrupted_download_keeps_part_and_resumes_with_range(
        server: FileServer, blob: tuple[Path, str], tmp_path: Path) -> None:
    src, digest = blob
    server.serve("blob.bin", src, drop_after=[MIB])
    target = tmp_path / "blob.bin"
    with pytest.raises(download.DownloadError, match=r"interrupted.*run the same command again"):
        download.fetch(f"{server.base_url}/blob.bin", target, digest, progress=Recorder(),
                       retries=0)
    assert not target.exists()
    assert download.part_path(target).stat().st_size == MIB
    progress = Recorder()
    assert download.fetch(f"{server.base_url}/blob.bin", target, digest, progress=progress) \
        == digest
    assert server.requests[-1]["range"] == f"bytes={MIB}-"
    assert server.requests[-1]["status"] == 206
    assert server.requests[-1]["sent"] == src.stat().st_size - MIB  # only the missing bytes
    assert progress.bars[0]["initial"] == MIB
    assert target.read_bytes() == src.read_bytes()


def test_dropped_connection_is_resumed_automatically(server: FileServer, blob: tuple[Path, str],
                                                     tmp_path: Path) -> None:
    src, digest = blob
    server.serve("blob.bin", src, drop_after=[MIB, MIB // 2])
    target = tmp_path / "blob.bin"
    assert download.fetch(f"{server.base_url}/blob.bin", target, digest, progress=Recorder(),
                          retries=3) == digest
    assert [r["range"] for r in server.requests] == [None, f"bytes={MIB}-",
                                                     f"bytes={MIB + MIB // 2}-"]
    assert target.read_bytes() == src.read_bytes()


def test_server_without_range_support_restarts_cleanly(server: FileServer, blob: tuple[Path, str],
                                                       tmp_path: Path) -> None:
    src, digest = blob
    server.serve("blob.bin", src, drop_after=[MIB], ignore_range=True)
    target = tmp_path / "blob.bin"
    assert download.fetch(f"{server.base_url}/blob.bin", target, digest, progress=Recorder()) \
        == digest
    assert server.requests[-1]["status"] == 200
    assert target.read_bytes() == src.read_bytes()


def test_checksum_mismatch_rejects_and_deletes(server: FileServer, blob: tuple[Path, str],
                                               tmp_path: Path) -> None:
    src, _ = blob
    server.serve("blob.bin", src)
    target = tmp_path / "blob.bin"
    with pytest.raises(download.ChecksumError, match=r"does not match.*deleted"):
        download.fetch(f"{server.base_url}/blob.bin", target, "0" * 64, progress=Recorder())
    assert not target.exists() and not download.part_path(target).exists()


def test_http_error_is_named(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(download.DownloadError, match="HTTP 404"):
        download.fetch(f"{server.base_url}/missing.bin", tmp_path / "x", "0" * 64,
                       progress=Recorder())


def test_disk_full_while_writing_is_a_clear_error(server: FileServer, blob: tuple[Path, str],
                                                  tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    src, digest = blob
    server.serve("blob.bin", src)
    target = tmp_path / "blob.bin"
    download.part_path(target).symlink_to("/dev/full")  # every write fails with ENOSPC
    with pytest.raises(download.DownloadError, match="disk full while writing"):
        download.fetch(f"{server.base_url}/blob.bin", target, digest, progress=Recorder())
    assert not target.exists()


def test_not_enough_space_is_refused_before_downloading(
        server: FileServer, blob: tuple[Path, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    src, digest = blob
    server.serve("blob.bin", src)

    class Usage:
        free = MIB  # the disk cannot be filled for real here; its report can

    monkeypatch.setattr(download.shutil, "disk_usage", lambda _path: Usage)
    with pytest.raises(download.DownloadError, match=r"not enough disk space.*MiB free"):
        download.fetch(f"{server.base_url}/blob.bin", tmp_path / "blob.bin", digest,
                       progress=Recorder())
    assert not (tmp_path / "blob.bin").exists()


def test_unwritable_store_is_a_clear_error(server: FileServer, blob: tuple[Path, str]) -> None:
    """Run as an unprivileged user when root (root ignores directory permissions)."""
    src, digest = blob
    server.serve("blob.bin", src)
    top = Path(tempfile.mkdtemp(prefix="kf"))
    try:
        top.chmod(0o755)
        store = top / "store"
        store.mkdir()
        store.chmod(0o555)
        code = ("import sys; from pathlib import Path; from kokorod.store import download\n"
                "try:\n"
                f"    download.fetch({server.base_url + '/blob.bin'!r}, "
                f"Path({str(store / 'blob.bin')!r}), {digest!r}, retries=0)\n"
                "except download.DownloadError as e:\n"
                "    print(e); sys.exit(3)\n")
        user = 65534 if os.geteuid() == 0 else None
        if user is not None and not _runs_as(user):
            pytest.skip("root cannot drop to an unprivileged user that can run this Python")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              user=user, env={**os.environ, "HOME": str(top)}, cwd=top,
                              timeout=60)
        assert proc.returncode == 3, proc.stderr
        assert "cannot write" in proc.stdout and "KOKORO_DATA_DIR" in proc.stdout
    finally:
        store.chmod(0o755)
        subprocess.run(["rm", "-rf", str(top)], check=False)


def _runs_as(uid: int) -> bool:
    try:
        return subprocess.run([sys.executable, "-c", "import kokorod"], user=uid,
                              capture_output=True, timeout=60).returncode == 0
    except OSError:
        return False


def test_store_path_that_is_not_a_directory_is_a_clear_error(
        server: FileServer, blob: tuple[Path, str], tmp_path: Path) -> None:
    src, digest = blob
    server.serve("blob.bin", src)
    (tmp_path / "models").write_text("a file where the store should be")
    with pytest.raises(download.DownloadError, match="cannot write"):
        download.fetch(f"{server.base_url}/blob.bin", tmp_path / "models" / "blob.bin", digest,
                       progress=Recorder())


# ---------------------------------------------------------------- the store


@pytest.fixture(scope="module")
def embedded_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded int8 model, assembled once: what the local server publishes."""
    path = tmp_path_factory.mktemp("release") / models.EMBEDDED_NAME
    models.assemble_embedded(path)
    return path


def test_model_fetch_use_verify_remove_end_to_end(server: FileServer, store: Path,
                                                  embedded_copy: Path) -> None:
    server.serve(models.EMBEDDED_NAME, embedded_copy, drop_after=[20 * MIB])
    fetched = kokorod_cli("model", "fetch", "int8", "--use", "--base-url", server.base_url)
    assert fetched.returncode == 0, fetched.stderr
    assert "100%" in fetched.stderr and models.EMBEDDED_NAME in fetched.stderr  # the bar
    assert f"sha256 {models.EMBEDDED_SHA256} ok" in fetched.stdout
    assert "not running" in fetched.stdout
    assert server.requests[-1]["range"] == f"bytes={20 * MIB}-"  # resumed after the drop

    listing = json.loads(kokorod_cli("model", "list", "--json").stdout)
    row = next(r for r in listing if r["name"] == models.EMBEDDED_NAME)
    assert row["active"] and row["check"] == "ok" and row["size"] == embedded_copy.stat().st_size
    assert json.loads((store / "models" / "active.json").read_text())["model"] == \
        models.EMBEDDED_NAME
    assert kokorod_cli("model", "verify").returncode == 0

    refused = kokorod_cli("model", "remove", "int8")
    assert refused.returncode == 1 and "in use" in refused.stderr

    installed = store / "models" / models.EMBEDDED_NAME
    with installed.open("r+b") as fh:  # bit rot
        fh.seek(4096)
        fh.write(b"\xff" * 16)
    bad = kokorod_cli("model", "verify")
    assert bad.returncode == 1 and "MISMATCH" in bad.stdout and "corrupt" in bad.stderr

    assert kokorod_cli("model", "use", "embedded").returncode == 0
    removed = kokorod_cli("model", "remove", "int8")
    assert removed.returncode == 1  # embedded is active and lives at the same path
    assert kokorod_cli("model", "use", "int8").returncode == 1  # corrupt → refused


def test_checksum_mismatch_is_not_activated(server: FileServer, store: Path,
                                            blob: tuple[Path, str]) -> None:
    src, _ = blob
    server.serve("voices-v1.0.bin", src)  # not the published voices
    result = kokorod_cli("model", "fetch", "voices", "--use", "--source", "release",
                         "--base-url", server.base_url)
    assert result.returncode == 1
    assert "does not match its published sha256" in result.stderr
    assert not (store / "models" / "voices-v1.0.bin").exists()
    assert models.active() == {"model": None, "voices": None}


def test_unpublished_checksum_needs_a_pin_then_is_enforced(server: FileServer, store: Path,
                                                           blob: tuple[Path, str],
                                                           tmp_path: Path) -> None:
    src, digest = blob
    server.serve("kokoro-v1.0.fp16.onnx", src)
    unpinned = kokorod_cli("model", "fetch", "fp16", "--base-url", server.base_url)
    assert unpinned.returncode == 1 and "--pin" in unpinned.stderr
    assert not server.requests  # refused before any download

    pinned = kokorod_cli("model", "fetch", "fp16", "--pin", "-q", "--base-url", server.base_url)
    assert pinned.returncode == 0, pinned.stderr
    assert json.loads((store / "models" / "pins.json").read_text()) == {
        "kokoro-v1.0.fp16.onnx": digest}

    (store / "models" / "kokoro-v1.0.fp16.onnx").unlink()
    other = tmp_path / "other.bin"
    other.write_bytes(os.urandom(MIB))
    server.serve("kokoro-v1.0.fp16.onnx", other)  # the release changed under us
    again = kokorod_cli("model", "fetch", "fp16", "-q", "--base-url", server.base_url)
    assert again.returncode == 1 and "does not match" in again.stderr


def test_unknown_name_lists_the_known_ones(store: Path) -> None:
    result = kokorod_cli("model", "fetch", "kokoro-v9.onnx")
    assert result.returncode == 1
    assert "kokoro-v1.0.onnx (fp32)" in result.stderr and "voices-v1.0.bin" in result.stderr
