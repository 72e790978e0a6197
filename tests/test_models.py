"""Model store: assembly from the PyPI parts, checksum, reuse, repair, clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kokorod.store import models


def test_embedded_model_assembles_verifies_and_is_reused(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOKORO_DATA_DIR", str(tmp_path))
    path, digest = models.embedded_model()
    assert digest == models.EMBEDDED_SHA256 == models.sha256_file(path)
    assert path.parent == tmp_path / "models"
    mtime = path.stat().st_mtime_ns
    again, _ = models.embedded_model()
    assert again == path and path.stat().st_mtime_ns == mtime  # reused, not rewritten


def test_corrupt_model_is_reassembled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOKORO_DATA_DIR", str(tmp_path))
    path, _ = models.embedded_model()
    with path.open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00" * 64)
    assert models.sha256_file(path) != models.EMBEDDED_SHA256
    repaired, digest = models.embedded_model()
    assert digest == models.EMBEDDED_SHA256 == models.sha256_file(repaired)
    path.unlink()
    assert models.embedded_model()[1] == models.EMBEDDED_SHA256  # missing → assembled
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_resolve_defaults_to_embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOKORO_DATA_DIR", str(tmp_path))
    files = models.resolve()
    assert files.embedded and files.verified and files.voices.suffix == ".npz"


def test_explicit_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOKORO_DATA_DIR", str(tmp_path))
    real, _ = models.embedded_model()
    custom = tmp_path / "my-model.onnx"
    os.link(real, custom)
    files = models.resolve(str(custom), str(models.embedded_voices()))
    assert files.model == custom and files.verified and not files.embedded
    other = tmp_path / "other.onnx"
    other.write_bytes(b"not a model")
    assert not models.resolve(str(other)).verified


@pytest.mark.parametrize(("model", "voices", "needle"), [
    ("/nonexistent/m.onnx", "", "KOKORO_MODEL_PATH"),
    ("", "/nonexistent/v.bin", "KOKORO_VOICES_PATH"),
])
def test_missing_files_give_one_line(model: str, voices: str, needle: str) -> None:
    with pytest.raises(models.ModelError) as err:
        models.resolve(model, voices)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_unwritable_data_dir_is_a_clear_error(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises((models.ModelError, OSError)):
        models.assemble_embedded(blocker / "models" / "m.onnx")


def test_using_a_file_that_is_not_installed_changes_nothing(store: Path) -> None:
    with pytest.raises(models.ModelError, match="not installed, so nothing was changed"):
        models.use("fp32")
    assert models.active() == {"model": None, "voices": None}


def test_an_unresolvable_host_is_said_plainly(tmp_path: Path) -> None:
    from kokorod.store import download

    with pytest.raises(download.DownloadError, match="does not resolve"):
        download.fetch("http://kokorod-nowhere.invalid/x.onnx", tmp_path / "x.onnx", None,
                       progress=download.tqdm_progress(quiet=True), retries=1, timeout=5)
