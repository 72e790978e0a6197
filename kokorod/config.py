"""Configuration: one frozen Config built from defaults, the config file and KOKORO_* env vars.

Precedence is env var > config file > default. Every setting is declared once
in SETTINGS with its env var, type and allowed values, so validation, the docs page
(docs/configuration.md, written by `python -m kokorod.ctl.config_doc`) and the error
messages all come from the same place.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from kokorod.setting_values import read_window_schedule, read_wyoming_uri
from kokorod_common import atomic, paths
from kokorod_common.protocol import CHUNK_MS_RANGE, DEFAULT_MAX_FRAME

PROVIDERS = ("auto", "cpu", "coreml")
COREML_COMPUTE_UNITS = ("CPUOnly", "CPUAndGPU", "CPUAndNeuralEngine", "ALL")
COREML_MODEL_FORMATS = ("MLProgram", "NeuralNetwork")
COREML_SPECIALIZATIONS = ("FastPrediction", "Default")
GRAPH_OPTIMIZATIONS = ("all", "extended", "basic", "off")
# The kokoro-onnx release that publishes the v1.0 model files (see models.CATALOG).
MODEL_BASE_URL = "https://github.com/thewh1teagle/kokoro-onnx/releases/download/model-files-v1.0"
# A streaming window's frames of 12.5 ms (kokorod.synth.windows plans within them): smaller
# windows cost more context than audio; 400 frames are 5 s.
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


class ConfigError(ValueError):
    """Settings with values we cannot use; each problem names its setting and the fix."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]

    def verdict(self) -> str:
        """The one way every command says it: a line per bad setting."""
        return "\n".join(f"kokorod: configuration error: {p}" for p in self.problems)


@dataclass(frozen=True)
class Setting:
    """How one Config field is set: its variable, its help, its limits; `engine`: a change
    needs a new engine (model, voices, session), not just the next request."""

    name: str
    env: str
    kind: type
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    engine: bool = False
    check: Callable[[str], object] | None = None  # raises ValueError for a bad value


def setting(env: str, default: Any, help: str, *, choices: tuple[str, ...] | None = None,
            minimum: float | None = None, maximum: float | None = None,
            engine: bool = False, check: Callable[[str], object] | None = None) -> Any:
    """A Config field and how it is set (read back as SETTINGS)."""
    return field(default=default, metadata={"setting": dict(
        env=env, help=help, choices=choices, minimum=minimum, maximum=maximum, engine=engine,
        check=check)})


@dataclass(frozen=True)
class Config:
    """Every setting, declared once: its KOKORO_* variable, its config-file key (the field
    name), default, help and limits."""

    socket: str = setting("KOKORO_SOCKET", "", "Unix socket path (default: per-user runtime dir)")
    model_path: str = setting("KOKORO_MODEL_PATH", "",
        "ONNX model (default: embedded int8)", engine=True)
    voices_path: str = setting("KOKORO_VOICES_PATH", "",
        "voices .bin/.npz (default: embedded)", engine=True)
    model_base_url: str = setting("KOKORO_MODEL_BASE_URL", MODEL_BASE_URL,
        "where `kokorod model fetch` downloads the published files from (a mirror, or a local "
        "server)")
    voice: str = setting("KOKORO_VOICE", "",
        "default voice (default: af_heart when installed, else the first installed)", engine=True)
    offline: bool = setting("KOKORO_OFFLINE", False,
        "never reach a package registry: the first start keeps the embedded voices")
    lang: str = setting("KOKORO_LANG", "",
        "espeak-ng language for every voice; empty: the voice's own (en-us for Latin text read "
        "by the ja/zh/hi voices)",
        engine=True)
    provider: str = setting("KOKORO_PROVIDER", "auto",
        "execution provider; auto uses CoreML where onnxruntime has it, except for an int8 "
        "model (the embedded one), which is faster on CPU", choices=PROVIDERS, engine=True)
    threads: int = setting("KOKORO_THREADS", 0,
        "intra-op threads, 0 = one per core (Apple silicon: per performance core)",
        minimum=0, maximum=256, engine=True)
    inter_op_threads: int = setting("KOKORO_INTER_OP_THREADS", 1,
        "1 = run a graph's nodes one at a time; N > 1 = in parallel on N threads (`kokorod "
        "tune` measures it)",
        minimum=1, maximum=64, engine=True)
    graph_optimization: str = setting("KOKORO_GRAPH_OPTIMIZATION", "all",
        "onnxruntime's graph optimisation level", choices=GRAPH_OPTIMIZATIONS, engine=True)
    memory_arena_size_mb: int = setting("KOKORO_MEMORY_ARENA_SIZE_MB", 0,
        "0 = per-session CPU arena; N = one shared arena capped at N MB "
        "(either is shrunk after every run)", minimum=0, maximum=65536, engine=True)
    coreml_compute_units: str = setting("KOKORO_COREML_COMPUTE_UNITS", "CPUOnly",
        "CoreML compute units", choices=COREML_COMPUTE_UNITS, engine=True)
    coreml_model_format: str = setting("KOKORO_COREML_MODEL_FORMAT", "MLProgram",
        "CoreML model format", choices=COREML_MODEL_FORMATS, engine=True)
    coreml_specialization: str = setting("KOKORO_COREML_SPECIALIZATION", "FastPrediction",
        "CoreML specialization strategy", choices=COREML_SPECIALIZATIONS, engine=True)
    streaming_vocoder: bool = setting("KOKORO_STREAMING_VOCODER", True,
        "vocode the first audio in short windows (first audio independent of sentence "
        "length; the model is cut once into `$KOKORO_DATA_DIR/models/split/`); 0 = whole "
        "segments", engine=True)
    window_schedule: str = setting("KOKORO_WINDOW_SCHEDULE", "auto",
        "the streaming vocoder's costs: auto measures them at the first start (a few "
        "seconds, kept per CPU, model, threads and onnxruntime; not kept when measured on a "
        "busy machine); `N:a,b,c,d[,e]` gives them (what `kokorod tune` writes, see "
        "docs/streaming.md); N alone: a first window of N 12.5 ms frames, the rest planned "
        "for a slow CPU and corrected by the speed observed",
        engine=True, check=read_window_schedule)
    window_adapt: bool = setting("KOKORO_WINDOW_ADAPT", True,
        "windows follow the speed this machine shows now, the text and the number of "
        "requests synthesizing; 0 = the plan fixed as measured or given (one text, one "
        "audio, bit for bit)", engine=True)
    chunk_ms: int = setting("KOKORO_CHUNK_MS", 50,
        "default chunk length in ms", minimum=CHUNK_MS_RANGE[0], maximum=CHUNK_MS_RANGE[1])
    first_segment_chars: int = setting("KOKORO_FIRST_SEGMENT_CHARS", 100,
        "a first sentence longer than this is cut at a clause mark (comma, semicolon, "
        "colon, dash) so that its first audio comes early", minimum=20, maximum=400)
    segment_chars: int = setting("KOKORO_SEGMENT_CHARS", 300,
        "whole sentences are packed into segments of up to this many characters; only a "
        "longer sentence is cut (and up to 3x the segment before)", minimum=40, maximum=400)
    max_frame_bytes: int = setting("KOKORO_MAX_FRAME_BYTES", DEFAULT_MAX_FRAME,
        "largest accepted frame", minimum=1024, maximum=64 << 20)
    max_text_chars: int = setting("KOKORO_MAX_TEXT_CHARS", 500_000,
        "longest accepted text (streamed in bounded memory)", minimum=1, maximum=10_000_000)
    max_requests_per_connection: int = setting("KOKORO_MAX_REQUESTS_PER_CONNECTION", 16,
        "requests one connection may have in flight", minimum=1, maximum=1024)
    max_active_requests: int = setting("KOKORO_MAX_ACTIVE_REQUESTS", 64,
        "requests in flight across all connections", minimum=1, maximum=10_000)
    idle_timeout_s: float = setting("KOKORO_IDLE_TIMEOUT_S", 30.0,
        "close a connection that sends nothing (or stalls mid-frame) this long; "
        "connections that have sent a request may idle", minimum=0.5, maximum=86400)
    runtime_check_s: float = setting("KOKORO_RUNTIME_CHECK_S", 5.0,
        "how often the daemon checks that its socket, pid and lock files are still there "
        "(macOS sweeps temporary files) and puts back what is gone", minimum=0.1,
        maximum=3600)
    shutdown_grace_s: float = setting("KOKORO_SHUTDOWN_GRACE_S", 3.0,
        "seconds in-flight streams get to finish on SIGTERM", minimum=0, maximum=600)
    audio_device: str = setting("KOKORO_AUDIO_DEVICE", "",
        "output device for daemon-side playback (`play: true`), by name (or number: prefer a "
        "name, numbers shift when devices come and go); empty = system default")
    playback_prebuffer: int = setting("KOKORO_PLAYBACK_PREBUFFER", 2,
        "chunks daemon-side playback holds before it starts", minimum=1, maximum=16)
    audio_cache_mb: int = setting("KOKORO_AUDIO_CACHE_MB", 32,
        "audio of short requests (one segment, <= 200 characters) kept for repeats (\"Build "
        "finished\", \"Saved\"), keyed by model, voice, speed, language, the spoken text and "
        "word marks; 0 = off. Hits and misses in `status` (`caches`)",
        minimum=0, maximum=4096)
    max_queued: int = setting("KOKORO_MAX_QUEUED", 64,
        "utterances waiting in the daemon's speech queue", minimum=1, maximum=10_000)
    http_port: int = setting("KOKORO_HTTP_PORT", 0,
        "serve OpenAI's speech API on 127.0.0.1 at this port (0 = off; needs the http "
        "extra)", minimum=0, maximum=65535)
    http_token: str = setting("KOKORO_HTTP_TOKEN", "",
        "when set, HTTP clients must send it as their API key (Authorization: Bearer …)")
    wyoming_uri: str = setting("KOKORO_WYOMING_URI", "",
        "serve the Wyoming protocol (Home Assistant) at tcp://host:port or unix:///path "
        "(empty = off; a host other than loopback only when named; needs the wyoming "
        "extra)", check=read_wyoming_uri)
    wyoming_chunk_ms: int = setting("KOKORO_WYOMING_CHUNK_MS", 50,
        "length of each Wyoming audio-chunk in ms", minimum=CHUNK_MS_RANGE[0],
        maximum=CHUNK_MS_RANGE[1])
    lexicon: str = setting("KOKORO_LEXICON", "",
        "the user lexicon, how words are read (TOML; empty: lexicon.toml beside the "
        "configuration file; read again when it changes)")
    warmup: bool = setting("KOKORO_WARMUP", True,
        "synthesize once at start so the first request pays no graph set-up", engine=True)
    verbose_logs: bool = setting("KOKORO_VERBOSE_LOGS", False, "debug logging")

    @property
    def socket_path(self) -> Path:
        return Path(self.socket) if self.socket else paths.default_socket_path()

    @property
    def lexicon_path(self) -> Path:
        return Path(self.lexicon) if self.lexicon else config_file_path().parent / "lexicon.toml"

    def as_env(self) -> dict[str, str]:
        """The settings that differ from the defaults, as KOKORO_* env vars."""
        out: dict[str, str] = {}
        for s in SETTINGS:
            value = getattr(self, s.name)
            if value != s.default:
                out[s.env] = ("1" if value else "0") if s.kind is bool else str(value)
        return out


_KINDS = {"str": str, "int": int, "float": float, "bool": bool}
SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, kind=_KINDS[str(f.type)], default=f.default, **f.metadata["setting"])
    for f in fields(Config))
ENGINE_SETTINGS = tuple(s.name for s in SETTINGS if s.engine)


def _convert(setting: Setting, raw: Any, origin: str) -> Any:
    where = f"{setting.env} ({origin})"
    try:
        if setting.kind is bool:
            if isinstance(raw, bool):
                value: Any = raw
            elif str(raw).strip().lower() in _TRUE:
                value = True
            elif str(raw).strip().lower() in _FALSE:
                value = False
            else:
                raise ValueError
        elif setting.kind is int:
            if isinstance(raw, bool):
                raise ValueError
            value = int(str(raw).strip())
        elif setting.kind is float:
            if isinstance(raw, bool):
                raise ValueError
            value = float(str(raw).strip())
            if value != value:  # NaN
                raise ValueError
        else:
            value = str(raw)
    except ValueError:
        hint = {bool: "1/0 (or true/false)", int: "a whole number",
                float: "a number"}.get(setting.kind, "text")
        raise ConfigError(f"{where}: {raw!r} is not {hint}") from None
    if setting.choices is not None:
        match = {c.lower(): c for c in setting.choices}.get(str(value).lower())
        if match is None:
            raise ConfigError(
                f"{where}: {value!r} is not allowed; use one of {', '.join(setting.choices)}"
            )
        value = match
    if setting.check is not None:
        try:
            setting.check(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    lo, hi = setting.minimum, setting.maximum
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{where}: {value} is out of range; allowed {lo} to {hi}")
    return value


def config_file_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env["KOKORO_CONFIG"]) if env.get("KOKORO_CONFIG") else paths.config_file()


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    known = {s.name for s in SETTINGS}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    return data


def write_settings(path: Path, values: Mapping[str, Any]) -> None:
    """Set these keys in the config file, keeping its other lines (and comments)."""
    def toml(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return repr(value)
        return json.dumps(str(value))  # a TOML basic string

    lines = path.read_text().splitlines() if path.exists() else []
    left = dict(values)
    out = []
    for line in lines:
        key = line.split("=", 1)[0].strip()
        if "=" in line and key in left:
            out.append(f"{key} = {toml(left.pop(key))}")
        else:
            out.append(line)
    out += [f"{key} = {toml(value)}" for key, value in left.items()]
    atomic.write_text(path, "\n".join(out) + "\n")


def origins(environ: Mapping[str, str] | None = None,
            **overrides: Any) -> tuple[dict[str, str], dict[str, Any], Path]:
    """Where each setting comes from ("command line", "environment", the config file's
    path, "default"), the raw values found, and the config file's path."""
    env = os.environ if environ is None else environ
    file_path = config_file_path(env)
    file_values = read_config_file(file_path)
    where: dict[str, str] = {}
    raw: dict[str, Any] = {}
    for s in SETTINGS:
        if s.name in overrides and overrides[s.name] is not None:
            where[s.name], raw[s.name] = "command line", overrides[s.name]
        elif env.get(s.env) not in (None, "") or (s.kind is bool and s.env in env):
            where[s.name], raw[s.name] = "environment", env[s.env]
        elif s.name in file_values:
            where[s.name], raw[s.name] = str(file_path), file_values[s.name]
        else:
            where[s.name] = "default"
    return where, raw, file_path


def load(environ: Mapping[str, str] | None = None,
         on_error: Callable[[ConfigError], None] | None = None, **overrides: Any) -> Config:
    """Build and validate the Config; raises ConfigError with a fix hint. With `on_error`
    a bad value is reported to it and the default used instead (control commands must
    still find and stop a running daemon when a setting is wrong)."""
    try:
        where, raw, _ = origins(environ, **overrides)
    except ConfigError as exc:  # the file itself is unreadable or names unknown keys
        if on_error is None:
            raise
        on_error(exc)
        where, raw = {s.name: "default" for s in SETTINGS}, {}
        env = os.environ if environ is None else environ
        for s in SETTINGS:
            if env.get(s.env) not in (None, ""):
                where[s.name], raw[s.name] = "environment", env[s.env]
    values: dict[str, Any] = {}
    problems: list[str] = []
    for s in SETTINGS:
        if s.name not in raw:
            values[s.name] = s.default
            continue
        try:
            values[s.name] = _convert(s, raw[s.name], where[s.name])
        except ConfigError as exc:
            if on_error is None:
                problems.append(str(exc))
                continue
            on_error(exc)
            values[s.name] = s.default
    if problems:  # every bad setting at once, not one per attempt
        raise ConfigError("; ".join(problems), problems)
    return Config(**values)
