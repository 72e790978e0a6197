"""What the model store holds, for `kokorod model list` and `model verify`: every catalog
file and the embedded voices, installed or not, with its checksum state and whether it
is the active one. Read-only: choosing, fetching and removing files is models.py's job.
"""

from __future__ import annotations

from typing import Any

from kokorod.store import download, models
from kokorod.store.hashing import cached_sha256, remember, sha256_file
from kokorod_common import paths


def inventory(full: bool = False) -> list[dict[str, Any]]:
    """Every catalog file and the embedded voices: installed?, size, checksum state, active.

    `full` re-reads every byte (model verify); otherwise digests are remembered by
    size and mtime.
    """
    chosen = models.active()
    hashes = paths.models_dir() / models.HASH_CACHE
    rows: list[dict[str, Any]] = []
    for entry in models.CATALOG:
        path = models.store_path(entry)
        row: dict[str, Any] = {"name": entry.name, "kind": entry.kind, "about": entry.about,
                               "path": str(path), "installed": path.is_file(), "size": None,
                               "sha256": None, "check": "not installed", "active": False}
        if entry.kind == "model":
            row["active"] = chosen["model"] == entry.name or (
                chosen["model"] is None and entry.name == models.EMBEDDED_NAME)
        else:
            row["active"] = chosen["voices"] == entry.name
        if path.is_file():
            digest = sha256_file(path) if full else cached_sha256(path, hashes)
            if full:
                remember(path, digest, hashes)
            expected = models.expected_sha256(entry)
            row.update(size=path.stat().st_size, sha256=digest,
                       check="ok" if digest == expected else
                       ("no checksum pinned" if expected is None else "MISMATCH"))
        elif download.part_path(path).exists():
            row["check"] = (f"partial ({download.part_path(path).stat().st_size / 2**20:.0f} "
                            "MiB; fetch again to resume)")
        rows.append(row)
    try:
        voices = models.embedded_voices()
        rows.append({"name": models.EMBEDDED_VOICES, "kind": "voices", "path": str(voices),
                     "about": "embedded Japanese voices (jf_alpha, …; they read English too)",
                     "installed": True, "size": voices.stat().st_size, "sha256": None,
                     "check": "packaged", "active": chosen["voices"] is None})
    except models.ModelError as exc:
        rows.append({"name": models.EMBEDDED_VOICES, "kind": "voices", "path": "",
                     "about": str(exc),
                     "installed": False, "size": None, "sha256": None, "check": "missing",
                     "active": chosen["voices"] is None})
    return rows
