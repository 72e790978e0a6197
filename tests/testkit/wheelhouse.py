"""Wheels of pure-Python distributions this interpreter already has installed, zipped back
from their files: a test that installs kokorod into a fresh venv (README's first command)
gets the 88 MB embedded model from them instead of downloading it a second time."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

# Files an installer writes into .dist-info; a wheel never carries them.
_INSTALLER_FILES = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"}


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def rewheel(name: str, out_dir: Path) -> Path | None:
    """A wheel of the installed distribution `name` in `out_dir` (kept if already there);
    None when it is not installed, or not a pure-Python py3-none-any wheel install."""
    try:
        dist = distribution(name)
    except PackageNotFoundError:
        return None
    wheel_info = dist.read_text("WHEEL") or ""
    if "Root-Is-Purelib: true" not in wheel_info or "py3-none-any" not in wheel_info:
        return None
    project = dist.metadata["Name"].replace("-", "_")
    # Build tag 1: of two wheels of one version pip takes the higher build, so this one
    # rather than the index's (which has none).
    target = out_dir / f"{project}-{dist.version}-1-py3-none-any.whl"
    if target.exists():
        return target
    files = [f for f in dist.files or []
             if "__pycache__" not in f.parts and f.suffix != ".pyc"
             and not (f.parts[0].endswith(".dist-info")
                      and f.name in (*_INSTALLER_FILES, "WHEEL"))]
    if any(".." in f.parts for f in files):  # scripts or data outside site-packages
        return None
    info_dir = next(f.parts[0] for f in files if f.parts[0].endswith(".dist-info"))
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    records = []
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as whl:  # the model: incompressible
        for f in files:
            data = Path(str(dist.locate_file(f))).read_bytes()
            whl.writestr(f.as_posix(), data)
            records.append(_record_line(f.as_posix(), data))
        wheel = wheel_info.rstrip("\n") + "\nBuild: 1\n"
        whl.writestr(f"{info_dir}/WHEEL", wheel)
        records.append(_record_line(f"{info_dir}/WHEEL", wheel.encode()))
        records.append(f"{info_dir}/RECORD,,")
        whl.writestr(f"{info_dir}/RECORD", "\n".join(records) + "\n")
    partial.rename(target)
    return target
