"""docs/configuration.md, written from `SETTINGS`: the page cannot drift from the code.

`python -m kokorod.ctl.config_doc > docs/configuration.md` rewrites it; tests/test_config.py
fails when the committed page differs from what this prints.
"""

from __future__ import annotations

import sys

from kokorod.config import SETTINGS, Setting

HEADER = """\
# Configuration

<!-- Generated from SETTINGS in kokorod/config.py by
     `python -m kokorod.ctl.config_doc > docs/configuration.md`; do not edit by hand
     (tests/test_config.py fails when this page is stale). -->

Settings come from environment variables, then the config file, then defaults. The config
file is `~/.config/kokorod/config.toml` (macOS: `~/Library/Application
Support/kokorod/config.toml`), or the file `$KOKORO_CONFIG` names; its keys are the
variables' names without `KOKORO_`, in lower case (`chunk_ms = 40`). An invalid value stops
the daemon with one line naming the variable and its allowed values (see
[daemon.md](daemon.md#settings)); `kokorod config` shows the effective settings and where
each comes from. `SIGHUP` (`kill -HUP`, `systemctl --user reload kokorod`) re-reads them
without dropping connections; a setting marked *engine* loads a new engine (model, voices,
session), the others apply to the next request.

| variable (config key) | default | allowed | meaning |
|---|---|---|---|
"""

FOOTER = """
Two more variables are read before the settings, to find them:

| variable | default | meaning |
|---|---|---|
| `KOKORO_CONFIG` | the config file above | the config file to read |
| `KOKORO_DATA_DIR` | `~/.local/share/kokorod` (macOS: `~/Library/Application Support/kokorod`) \
| the model store |
"""


def default(s: Setting) -> str:
    if s.kind is bool:
        return "1" if s.default else "0"
    if s.default == "":
        return "(none)"
    return f"`{s.default}`"


def allowed(s: Setting) -> str:
    if s.choices:
        return " / ".join(s.choices)
    if s.kind is bool:
        return "0/1"
    if s.minimum is not None or s.maximum is not None:
        def num(v: float | None) -> str:
            return "" if v is None else f"{v:g}" if s.kind is float else f"{int(v)}"
        return f"{num(s.minimum)}–{num(s.maximum)}"
    return ""


def row(s: Setting) -> str:
    meaning = s.help.replace("|", "\\|") + (" *(engine)*" if s.engine else "")
    return f"| `{s.env}` (`{s.name}`) | {default(s)} | {allowed(s)} | {meaning} |"


def render() -> str:
    return HEADER + "\n".join(row(s) for s in SETTINGS) + "\n" + FOOTER


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
