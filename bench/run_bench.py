#!/usr/bin/env python3
"""kokorod bench: TTFA, RTF, chunk gaps, underruns, memory, concurrency — cold cache,
side by side with plain kokoro-onnx (`--compare`). See bench/README.md.

    python bench/run_bench.py --preset medium --trials 20 --compare --json out.json
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import anchors  # noqa: E402
import machine  # noqa: E402
import texts  # noqa: E402
from metrics import gaps, simulate_playback, summary  # noqa: E402
from pulse_sink import PulseSink, PulseUnavailable  # noqa: E402

from kokorod_client import Client  # noqa: E402
from kokorod_common.launcher import socket_is_live  # noqa: E402

SAMPLE_RATE = 24_000
SOAK_IDLE_S = 3.0  # idle before each steady memory reading of the soak


# ---------------------------------------------------------------- daemon


class BenchDaemon:
    """A fresh daemon for the run (cold: it has seen no text), or an existing socket."""

    def __init__(self, socket_path: str | None, verbose: bool,
                 home: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.tmp: Path | None = None
        if socket_path:
            self.socket = Path(socket_path)
        else:
            self.tmp = Path(tempfile.mkdtemp(prefix="kb", dir="/tmp"))
            self.tmp.chmod(0o700)
            self.socket = self.tmp / "k.sock"
            env = dict(os.environ, KOKORO_SOCKET=str(self.socket), **(env or {}))
            if home is not None:  # its own sound output: ALSA's file sink (speaker preset)
                env["HOME"] = str(home)
            out = None if verbose else subprocess.DEVNULL
            self.proc = subprocess.Popen([sys.executable, "-m", "kokorod", "run"], env=env,
                                         stdout=out, stderr=out, cwd=REPO)
            deadline = time.monotonic() + 180
            while not socket_is_live(self.socket):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("bench: the daemon did not start")
                time.sleep(0.05)
        with Client(self.socket) as c:
            self.status = c.status()
        self.pid = int(self.status["pid"])

    def rss(self) -> int:
        return psutil.Process(self.pid).memory_info().rss

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


class RssSampler:
    """Polls the daemon's RSS in the background: before / peak / after."""

    def __init__(self, daemon: BenchDaemon, period: float = 0.05) -> None:
        self.daemon = daemon
        self.period = period
        self.before = daemon.rss()
        self.peak = self.before
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            rss = self.daemon.rss()
            self.peak = max(self.peak, rss)
            if not self.samples or time.perf_counter() - self._t0 - self.samples[-1][0] > 1:
                self.samples.append((time.perf_counter() - self._t0, rss))

    def finish(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        after = self.daemon.rss()
        mib = 2 ** 20
        return {"before_mib": self.before / mib, "peak_mib": max(self.peak, after) / mib,
                "after_mib": after / mib, "growth_mib": (after - self.before) / mib,
                "timeline": [(round(t, 1), round(r / mib, 1)) for t, r in self.samples]}


# ---------------------------------------------------------------- one request


def run_request(client: Client, text: str, args: argparse.Namespace,
                voice: str | None, ttfa_only: bool = False) -> dict[str, Any]:
    """Send one synthesize; time every chunk's arrival (ttfa_only: cancel after the first)."""
    t0 = time.perf_counter()
    stream = client.synthesize(text, voice=voice, chunk_ms=args.chunk_ms)
    arrivals: list[float] = []
    sizes: list[int] = []
    seqs: list[int] = []
    for chunk in stream:
        arrivals.append(time.perf_counter() - t0)
        sizes.append(chunk.samples.size)
        seqs.append(chunk.seq)
        if ttfa_only and len(arrivals) == 1:
            stream.cancel()
    total = time.perf_counter() - t0
    end = stream.end
    audio_s = sum(sizes) / SAMPLE_RATE
    play = simulate_playback(arrivals, sizes, args.prebuffer)
    g = gaps(arrivals)
    return {
        "chars": len(text),
        "ttfa_s": arrivals[0] if arrivals else None,
        "total_s": total,
        "audio_s": audio_s,
        "rtf": total / audio_s if audio_s else None,
        "chunks": len(sizes),
        "seq_complete": seqs == list(range(len(seqs))) and end is not None
        and end.chunks == len(seqs) and end.samples == sum(sizes),
        "gap_median_s": sorted(g)[len(g) // 2] if g else None,
        "gap_max_s": max(g) if g else None,
        "underruns": play["underruns"],
        "stall_s": play["stall_s"],
        "underrun_at_s": [round(a, 3) for a in play["at_s"]],
        "daemon_timings": end.timings if end else None,
        "arrivals": [round(a, 4) for a in arrivals] if args.raw_arrivals else None,
    }


def wait_idle(client: Client, timeout: float = 120.0) -> None:
    """Until the daemon's worker has finished every segment, even of cancelled requests."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = client.status()
        if not st.get("worker_busy") and not st.get("active_requests"):
            return
        time.sleep(0.02)


def compile_client(checkout: Path) -> None:
    """Byte-compile the client's packages as `pip install` does. Where
    PYTHONDONTWRITEBYTECODE is set (as in some CI images), nothing else writes the .pyc
    files and every kokoro-say would compile its modules from source (~25 ms here)."""
    import compileall

    for package in ("kokorod_client", "kokorod_common"):
        compileall.compile_dir(str(checkout / package), quiet=1)


def describe_python(python: str) -> dict[str, Any]:
    """What runs kokoro-say: a venv or not, its version, and the .pth files its `site`
    executes at every start (other packages' start-up hooks count in the client's time)."""
    code = ("import sys, site, glob, os; print(sys.prefix != sys.base_prefix, "
            "sys.version.split()[0], ','.join(sorted(os.path.basename(p) for d in "
            "site.getsitepackages() for p in glob.glob(os.path.join(d, '*.pth')))))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.split()
    if len(out) < 2:
        return {"error": "could not run it"}
    return {"venv": out[0] == "True", "version": out[1],
            "pth_files": len(out[2].split(",")) if len(out) > 2 else 0,
            "this_interpreter": python == sys.executable}


def checkout_commit(checkout: Path) -> str:
    out = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def say_end_to_end(socket: Path, text: str, args: argparse.Namespace,
                   sink_env: dict[str, str], checkout: Path = REPO,
                   timeout: float = 600.0) -> dict[str, Any]:
    """kokoro-say process start → first sample handed to the audio device; the client
    code is `checkout`'s (its directory comes first on the path of `-m`). Its underruns
    are its player's own count, at the device `sink_env` gives it."""
    env = dict(os.environ, KOKORO_SOCKET=str(socket), **sink_env)
    t0 = time.time()
    out = subprocess.run([args.say_python, "-m", "kokorod_client.say", "--no-autostart",
                          "--json-stats", "--prebuffer", str(args.prebuffer), text],
                         env=env, capture_output=True, text=True, timeout=timeout,
                         cwd=checkout)
    try:
        stats = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": out.stderr.strip()[-300:]}
    first = stats.get("first_sound_unix")
    play = stats.get("playback") or {}
    # The daemon's own share of this same request: request received → first chunk out.
    daemon_s = ((stats.get("end") or {}).get("timings") or {}).get("first_chunk_ms")
    e2e = first - t0 if first else None
    return {"e2e_first_sound_s": e2e,
            "client_share_s": e2e - daemon_s / 1000 if e2e and daemon_s is not None else None,
            "underruns": play.get("underruns"),
            "underrun_s": play.get("underrun_seconds"),
            "underrun_at_s": play.get("underrun_at_s"),
            "device_underflows": play.get("device_underflows"),
            "audio_s": play.get("audio_seconds"),
            # process start → exit: at a clocked sink at least the audio's length
            "wall_s": time.time() - t0,
            "played": first is not None}


SAY_KEYS = ("e2e_first_sound_s", "client_share_s", "underruns", "device_underflows")

SINKS = {"pulse": "PulseAudio null sink (clocked: plays in real time)",
         "file": "ALSA file plugin over null (no clock: underrun counts are artefacts)"}


class SayOutput:
    """Where kokoro-say plays for --stream: `--sink pulse` (default), a private PulseAudio
    null sink, which keeps time like a sound card; `--sink file`, ALSA's file plugin, which
    takes audio as fast as it comes (its callbacks spin, take a core from the daemon, and
    make the player count underruns no listener would hear)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.pulse: PulseSink | None = None
        self.home: Path | None = None
        if kind == "pulse":
            self.pulse = PulseSink()
            self.env = self.pulse.env
        else:
            self.home = alsa_home()
            self.env = {"HOME": str(self.home)}

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "what": SINKS[self.kind]}

    def close(self) -> None:
        if self.pulse is not None:
            self.pulse.stop()
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)


def bench_say(daemon: BenchDaemon, args: argparse.Namespace,
              trial_texts: list[str]) -> dict[str, Any]:
    """kokoro-say end to end, one process per text. With --say-also, another checkout's
    client runs each text too, in turn (order alternating), against the same daemon: a
    client change measured in pairs, which the machine's drift cannot fake."""
    output = SayOutput(args.sink)
    checkouts = {"kokoro_say": REPO}
    if args.say_also:
        checkouts["kokoro_say_also"] = Path(args.say_also).resolve()
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key in checkouts}
    for path in checkouts.values():
        compile_client(path)
    python = describe_python(args.say_python)  # the same interpreter runs every checkout
    try:
        for t, text in enumerate(trial_texts):
            for key in (list(checkouts) if t % 2 == 0 else list(reversed(checkouts))):
                runs[key].append(say_end_to_end(daemon.socket, text, args, output.env,
                                                checkouts[key]))
    finally:
        output.close()
    out: dict[str, Any] = {}
    for key, trials in runs.items():
        out[key] = {"checkout": checkout_commit(checkouts[key]), "python": python,
                    "sink": output.describe(),
                    "bytecode": "compiled ahead, as pip install does", "trials": trials,
                    "summary": {k: summary([e[k] for e in trials if e.get(k) is not None])
                                for k in SAY_KEYS}}
    if args.say_also:
        pairs = list(zip(runs["kokoro_say"], runs["kokoro_say_also"], strict=True))
        out["kokoro_say_paired"] = {k: summary([a[k] - b[k] for a, b in pairs
                                                if a.get(k) is not None and b.get(k) is not None])
                                    for k in SAY_KEYS}
    return out


def alsa_home() -> Path:
    """A HOME whose ALSA default device is a file sink, so playback is real but silent."""
    home = Path(tempfile.mkdtemp(prefix="kbh"))
    (home / ".asoundrc").write_text(
        'pcm.!default {\n  type file\n  slave.pcm "null"\n'
        f'  file "{home / "played.wav"}"\n  format "wav"\n}}\n')
    return home


# ---------------------------------------------------------------- presets


def bench_preset(name: str, daemon: BenchDaemon, args: argparse.Namespace,
                 warm: anchors.WarmKokoro | None) -> dict[str, Any]:
    make = texts.PRESETS[name]
    offset = args.text_offset
    trials = []
    with Client(daemon.socket, client_name="bench") as client:
        for t in range(args.trials):
            text = make(offset + (0 if args.warm_cache else t))
            trials.append(run_request(client, text, args, args.voice))
            log(args, f"{name} trial {t}: ttfa {trials[-1]['ttfa_s']:.3f}s "
                      f"rtf {trials[-1]['rtf']:.3f}")
    result: dict[str, Any] = {"kokorod": {"trials": trials, "summary": summarize(trials)}}
    if args.stream:
        result.update(bench_say(daemon, args, [make(offset + 1000 + t)
                                               for t in range(args.trials)]))
    if warm is not None:
        model, voices = daemon.status["engine"]["model_path"], \
            daemon.status["engine"]["voices_path"]
        anchor_runs: dict[str, list[dict[str, Any]]] = {"one_shot": [], "create_stream": [],
                                                        "cold_process": []}
        for t in range(args.trials):
            text = make(offset + (0 if args.warm_cache else t))
            anchor_runs["one_shot"].append(warm.one_shot(text))
            anchor_runs["create_stream"].append(warm.stream(text))
            if t < args.cold_trials:
                anchor_runs["cold_process"].append(
                    anchors.cold_process(model, voices, warm.voice, text))
            log(args, f"{name} anchors trial {t}: one-shot "
                      f"{anchor_runs['one_shot'][-1]['ttfa_s']:.3f}s")
        result["anchors"] = {k: {"trials": v, "summary": summarize(v)}
                             for k, v in anchor_runs.items()}
        result["ratios"] = ratios(result)
    return result


def summarize(trials: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("ttfa_s", "total_s", "rtf", "audio_s", "gap_median_s", "gap_max_s", "underruns")
    out = {k: summary([t[k] for t in trials if t.get(k) is not None]) for k in keys}
    if trials and "seq_complete" in trials[0]:
        out["seq_complete"] = all(t["seq_complete"] for t in trials)
    out["errors"] = sum(1 for t in trials if "error" in t)
    return out


def ratios(result: dict[str, Any]) -> dict[str, Any]:
    ours = result["kokorod"]["summary"]
    out = {}
    for name, anchor in result["anchors"].items():
        theirs = anchor["summary"]
        out[name] = {
            f"ttfa_{q}": ours["ttfa_s"][q] / theirs["ttfa_s"][q]
            for q in ("p50", "p95") if theirs["ttfa_s"].get("n")
        }
        if theirs["rtf"].get("n"):
            out[name]["rtf_p50"] = ours["rtf"]["p50"] / theirs["rtf"]["p50"]
    return out


def bench_first_sentence(daemon: BenchDaemon, args: argparse.Namespace) -> dict[str, Any]:
    """TTFA of a ~30-char vs a ~300-char first sentence (should not grow with it)."""
    rows: dict[str, list[float]] = {"short": [], "long": []}
    with Client(daemon.socket, client_name="bench") as client:
        for t in range(args.trials):
            short_text, long_text = texts.first_sentence_pair(args.text_offset + t)
            for key, text in (("short", short_text), ("long", long_text)):
                r = run_request(client, text, args, args.voice, ttfa_only=True)
                rows[key].append(r["ttfa_s"])
                wait_idle(client)  # the cancelled request's last segment is still running
    s = {k: summary(v) for k, v in rows.items()}
    return {"ttfa_s": rows, "summary": s,
            "ratio_p95_long_over_short": s["long"]["p95"] / s["short"]["p95"]}


def bench_concurrency(daemon: BenchDaemon, args: argparse.Namespace) -> dict[str, Any]:
    """K clients at once, each its own connection; the first K-1 long, the last short."""
    k = args.concurrency
    results: list[list[dict[str, Any]]] = [[] for _ in range(k)]
    errors: list[str] = []

    def client_loop(i: int, barrier: threading.Barrier, trial: int) -> None:
        text = (texts.PRESETS[args.concurrency_preset](args.text_offset + 100 * i + trial)
                if i < k - 1
                else texts.short(args.text_offset + 100 * i + trial))
        try:
            with Client(daemon.socket, client_name=f"bench-{i}") as client:
                barrier.wait()
                results[i].append(run_request(client, text, args, args.voice))
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    for trial in range(args.trials):
        barrier = threading.Barrier(k)
        threads = [threading.Thread(target=client_loop, args=(i, barrier, trial))
                   for i in range(k)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    flat = [r for per in results for r in per]
    return {"clients": k, "errors": errors, "summary": summarize(flat),
            "per_client": [summarize(per) for per in results],
            "short_request_ttfa_s": summary([r["ttfa_s"] for r in results[-1]])}


def bench_soak(daemon: BenchDaemon, args: argparse.Namespace) -> dict[str, Any]:
    """Continuous playback for --duration seconds: back-to-back long texts on one timeline."""
    arrivals: list[float] = []
    sizes: list[int] = []
    starts: list[float] = []  # seconds of soak audio before each request's first sample
    requests, incomplete = 0, 0
    stopping = False
    with Client(daemon.socket, client_name="bench-soak") as client:
        # Memory at a steady point: after one long text (a medium one for a soak under a
        # minute: a smoke run) and the same idle time as at the end.
        warm_text = texts.long if args.duration >= 60 else texts.PRESETS["medium"]
        for _ in client.synthesize(warm_text(args.text_offset + 10_000), voice=args.voice):
            pass
        time.sleep(SOAK_IDLE_S)
        steady_before = daemon.rss()
        memory_before = client.status().get("memory", {})
    t0 = time.perf_counter()
    with Client(daemon.socket, client_name="bench-soak") as client:
        while time.perf_counter() - t0 < args.duration:
            text = texts.long(args.text_offset + requests)
            starts.append(sum(sizes) / SAMPLE_RATE)
            stream = client.synthesize(text, voice=args.voice, chunk_ms=args.chunk_ms)
            seqs = []
            for chunk in stream:
                arrivals.append(time.perf_counter() - t0)
                sizes.append(chunk.samples.size)
                seqs.append(chunk.seq)
                if time.perf_counter() - t0 >= args.duration and not stopping:
                    stream.cancel()  # the soak ends on time, not at the end of a text
                    stopping = True
            requests += 1
            if seqs != list(range(len(seqs))) or stream.end is None:
                incomplete += 1
            log(args, f"soak: {requests} requests, {time.perf_counter() - t0:.0f}s")
    audio_s = sum(sizes) / SAMPLE_RATE
    play = simulate_playback(arrivals, sizes, args.prebuffer)
    wall = time.perf_counter() - t0
    with Client(daemon.socket) as client:
        wait_idle(client)
        time.sleep(SOAK_IDLE_S)
        steady_after = daemon.rss()
        memory_after = client.status().get("memory", {})
    mib = 2 ** 20
    return {"steady_rss_before_mib": steady_before / mib, "steady_rss_after_mib":
            steady_after / mib, "steady_growth_mib": (steady_after - steady_before) / mib,
            "steady_memory_before": memory_before, "steady_memory_after": memory_after,
            "duration_s": wall, "requests": requests, "incomplete": incomplete,
            "audio_s": audio_s, "rtf": wall / audio_s if audio_s else None,
            "underruns": play["underruns"], "stall_s": play["stall_s"],
            "underruns_per_10min": play["underruns"] * 600 / max(audio_s, 1e-9),
            # each underrun: the request it came in and how far into that request's audio
            "underrun_at": [underrun_place(at, starts) for at in play["at_s"]]}


# The clocked soak's text is --duration × this many characters: more than the ~17 a
# second of audio the bench's sentences are read at, so it lasts at least --duration.
SOAK_CHARS_PER_S = 18


def bench_clocked_soak(daemon: BenchDaemon, args: argparse.Namespace) -> dict[str, Any]:
    """One kokoro-say of --duration seconds of text or more, played in real time at the
    clocked sink (--sink pulse): the underruns a listener would hear over a long stretch
    (the `soak` preset counts them on a model of playback)."""
    sentences: list[str] = []
    while sum(len(s) + 1 for s in sentences) < args.duration * SOAK_CHARS_PER_S:
        sentences.append(texts.SENTENCES[(args.text_offset + len(sentences))
                                         % len(texts.SENTENCES)])
    text = "\n\n".join(" ".join(sentences[k:k + 5]) for k in range(0, len(sentences), 5))
    output = SayOutput(args.sink)
    try:
        run = say_end_to_end(daemon.socket, text, args, output.env,
                             timeout=args.duration * 3 + 300)
    finally:
        output.close()
    return {"sink": output.describe(), "chars": len(text), **run}


def underrun_place(at_s: float, starts: list[float]) -> dict[str, Any]:
    """Which request of the soak (0-based) ran dry, and after how much of its audio."""
    k = max(0, bisect.bisect_right(starts, at_s) - 1)
    return {"request": k, "into_request_s": round(at_s - starts[k], 3) if starts else at_s}


def _drain(stream: Any) -> threading.Thread:
    """Read a play: true stream on a thread, so its `playing` event can be waited for."""
    th = threading.Thread(target=lambda: [None for _ in stream], daemon=True)
    th.start()
    return th


def _interrupt_after(first: Client, first_text: str, after_s: float, second: Client,
                     second_text: str, voice: str | None, **options: Any) -> tuple[float, str]:
    """`first` speaks; `after_s` into its sound `second` speaks with `options`: seconds
    until the second one sounds, and how the first one ended."""
    playing = first.speak(first_text, voice=voice)
    reader = _drain(playing)
    playing.playing.wait(120)
    time.sleep(after_s)
    t0 = time.perf_counter()
    new = second.speak(second_text, voice=voice, **options)
    new_reader = _drain(new)
    new.playing.wait(120)
    seconds = time.perf_counter() - t0
    new_reader.join(120)
    reader.join(60)
    wait_idle(first)
    return seconds, playing.end.reason if playing.end else "none"


def bench_speaker(daemon: BenchDaemon, args: argparse.Namespace,
                  warm: anchors.WarmKokoro | None) -> dict[str, Any]:
    """Daemon-side playback (`play: true`, what the editor plugins use), into the ALSA
    file sink: request → first sound on the daemon's device; `stop` → the `end` frame
    (sent once the device has stopped); an `important` request from a second client
    interrupting a playing `text` one → its first sound. Cold: every trial new text."""
    rows: dict[str, list[float]] = {"first_sound_s": [], "stop_s": [], "interrupt_s": [],
                                    "replace_s": [], "anchor_ttfa_s": []}
    reasons: list[str] = []
    offset = args.text_offset
    with Client(daemon.socket, client_name="bench-editor") as ed, \
            Client(daemon.socket, client_name="bench-alerts") as alerts:
        for t in range(args.trials):
            text = texts.medium(offset + t)
            t0 = time.perf_counter()
            stream = ed.speak(text, voice=args.voice)
            reader = _drain(stream)
            stream.playing.wait(120)
            rows["first_sound_s"].append(time.perf_counter() - t0)
            time.sleep(1.0)
            t1 = time.perf_counter()
            ed.stop()
            reader.join(60)
            rows["stop_s"].append(time.perf_counter() - t1)
            reasons.append(stream.end.reason if stream.end else "none")
            wait_idle(ed)

            seconds, reason = _interrupt_after(
                ed, texts.medium(offset + 500 + t), 1.0, alerts, texts.short(offset + 900 + t),
                voice=args.voice, priority="important")
            rows["interrupt_s"].append(seconds)
            reasons.append(reason)
            # An editor speaking a long buffer, then a new region (mode interrupt) once the
            # vocoder windows have grown to their largest.
            seconds, reason = _interrupt_after(
                ed, texts.long(offset + t), args.replace_after, ed,
                texts.short(offset + 700 + t), voice=args.voice, mode="interrupt")
            rows["replace_s"].append(seconds)
            reasons.append(reason)
            if warm is not None:
                rows["anchor_ttfa_s"].append(warm.one_shot(text)["ttfa_s"])
            log(args, f"speaker trial {t}: first sound {rows['first_sound_s'][-1]:.3f}s, "
                      f"stop {rows['stop_s'][-1]:.3f}s, interrupt {rows['interrupt_s'][-1]:.3f}s, "
                      f"replace {rows['replace_s'][-1]:.3f}s")
    out: dict[str, Any] = {"raw": rows, "end_reasons": reasons,
                           "summary": {k: summary(v) for k, v in rows.items() if v}}
    if rows["anchor_ttfa_s"]:
        ours, theirs = out["summary"]["first_sound_s"], out["summary"]["anchor_ttfa_s"]
        out["ratio_first_sound_over_one_shot_ttfa"] = {
            q: ours[q] / theirs[q] for q in ("p50", "p95")}
    return out


# ---------------------------------------------------------------- output


def log(args: argparse.Namespace, message: str) -> None:
    if args.verbose:
        print(message, file=sys.stderr, flush=True)


def fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v * 1000:.0f} ms" if unit == "ms" else f"{v:.3f}"
    return str(v)


def print_table(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"\nkokorod bench  {report['date']}  commit {m['kokorod_commit']}")
    print(f"CPU: {m['cpu_model']} ({m['cores']} cores; {' '.join(m['cpu_flags'])})  "
          f"onnxruntime {m['onnxruntime']}  provider {report['daemon']['provider']}")
    print(f"model sha256 {report['daemon']['model_sha256'][:16]}…  "
          f"command: {report['command']}")
    plan = ((report.get("daemon_status_after") or {}).get("engine") or {}).get(
        "window_schedule") or {}
    if plan.get("observed"):
        seen = plan["observed"]
        print(f"window plan: first {plan['first_window_frames']} frames ({plan['source']}); "
              f"{seen['windows']} windows took {seen['real_to_planned']}× their planned cost "
              f"lately, {seen['slowest']}× at most")
    print(f"audio cache hits during the run: {report.get('audio_cache_hits', 0)} (a cold run "
          "has none; hits are not latency)")
    for name, res in report["presets"].items():
        print(f"\n== preset {name} ==")
        rows = [("kokorod", res["kokorod"]["summary"])]
        rows += [(f"kokoro-onnx {k}", v["summary"]) for k, v in res.get("anchors", {}).items()]
        print(f"{'':<28}{'TTFA p50':>10}{'TTFA p95':>10}{'RTF p50':>9}{'RTF p95':>9}"
              f"{'n':>4}")
        for label, s in rows:
            if not s["ttfa_s"].get("n"):
                continue
            print(f"{label:<28}{fmt(s['ttfa_s']['p50'], 'ms'):>10}"
                  f"{fmt(s['ttfa_s']['p95'], 'ms'):>10}{fmt(s['rtf']['p50']):>9}"
                  f"{fmt(s['rtf']['p95']):>9}{s['ttfa_s']['n']:>4}")
        s = res["kokorod"]["summary"]
        print(f"kokorod chunk gaps: median {fmt(s['gap_median_s'].get('p50'), 'ms')}, "
              f"max {fmt(s['gap_max_s'].get('max'), 'ms')}; underruns (prebuffer "
              f"{report['settings']['prebuffer']}): {s['underruns'].get('max')} max/trial; "
              f"seq complete: {s['seq_complete']}")
        places = [a for t in res["kokorod"]["trials"] for a in t.get("underrun_at_s", [])]
        if places:
            print("  underruns after " + ", ".join(f"{a:.2f} s" for a in places)
                  + " of a request's audio")
        for key in ("kokoro_say", "kokoro_say_also"):
            if key not in res:
                continue
            e = res[key]["summary"]["e2e_first_sound_s"]
            own = res[key]["summary"].get("client_share_s") or {}
            print(f"kokoro-say ({res[key].get('checkout')}) "
                  f"process start → first sample: p50 {fmt(e.get('p50'), 'ms')}, "
                  f"p95 {fmt(e.get('p95'), 'ms')}; the client's own share (that, less the "
                  f"daemon's request → first chunk): p50 {fmt(own.get('p50'), 'ms')}, "
                  f"p95 {fmt(own.get('p95'), 'ms')}")
            heard = [(t.get("underruns"), t.get("device_underflows"))
                     for t in res[key]["trials"] if t.get("played")]
            print(f"  at the {res[key]['sink']['kind']} sink, kokoro-say's own count per "
                  "trial (underruns/device underflows): "
                  + ", ".join(f"{u}/{d}" for u, d in heard))
        if "kokoro_say_paired" in res:
            d = res["kokoro_say_paired"]
            print(f"kokoro-say paired, {res['kokoro_say']['checkout']} less "
                  f"{res['kokoro_say_also']['checkout']} (same texts, in turn): start → first "
                  f"sample p50 {fmt(d['e2e_first_sound_s'].get('p50'), 'ms')}, own share p50 "
                  f"{fmt(d['client_share_s'].get('p50'), 'ms')}")
        for anchor, r in res.get("ratios", {}).items():
            print(f"ratio kokorod / {anchor}: " + ", ".join(f"{k} {v:.3f}"
                                                           for k, v in r.items()))
    if "first_sentence" in report:
        fs = report["first_sentence"]
        print(f"\nfirst sentence ~30 vs ~300 chars: TTFA p95 "
              f"{fmt(fs['summary']['short']['p95'], 'ms')} vs "
              f"{fmt(fs['summary']['long']['p95'], 'ms')} "
              f"(ratio {fs['ratio_p95_long_over_short']:.2f})")
    if "concurrency" in report:
        c = report["concurrency"]
        print(f"\nconcurrency {c['clients']} clients: TTFA p95 "
              f"{fmt(c['summary']['ttfa_s'].get('p95'), 'ms')}, RTF p50 "
              f"{fmt(c['summary']['rtf'].get('p50'))}, errors {len(c['errors'])}, short "
              f"request TTFA p95 {fmt(c['short_request_ttfa_s'].get('p95'), 'ms')}")
    if "soak" in report:
        s = report["soak"]
        print(f"\nsoak {s['duration_s']:.0f}s: {s['requests']} requests, "
              f"{s['audio_s']:.0f}s audio, RTF {fmt(s['rtf'])}, underruns {s['underruns']} "
              f"({s['underruns_per_10min']:.2f} per 10 min), incomplete {s['incomplete']}")
        for place in s.get("underrun_at", []):
            print(f"  underrun in request {place['request']}, {place['into_request_s']:.2f} s "
                  "into its audio")
        print(f"soak RSS at steady points ({SOAK_IDLE_S:.0f} s idle after a long text, before "
              f"and after): {s['steady_rss_before_mib']:.1f} → {s['steady_rss_after_mib']:.1f} "
              f"MiB, growth {s['steady_growth_mib']:+.1f} MiB")
        before, after = s["steady_memory_before"], s["steady_memory_after"]
        parts = [f"{k.removesuffix('_bytes')} {(after[k] - before[k]) / 2**20:+.1f}"
                 for k in ("anonymous_bytes", "heap_in_use_bytes", "heap_free_bytes",
                           "heap_mmapped_bytes") if k in before and k in after]
        if parts:
            print(f"  of which (MiB): {', '.join(parts)}")
    if "clocked_soak" in report:
        c = report["clocked_soak"]
        if "error" in c:
            print(f"\nclocked soak: kokoro-say failed: {c['error']}")
        else:
            print(f"\nclocked soak ({c['sink']['what']}): {c['audio_s'] or 0:.0f} s of audio "
                  f"in {c['wall_s']:.0f} s, kokoro-say counted {c['underruns']} underruns "
                  f"({c['underrun_s'] or 0:.2f} s) at {c['underrun_at_s'] or []}, "
                  f"{c['device_underflows']} device underflows")
    if "speaker" in report:
        sp = report["speaker"]["summary"]
        print("\nspeaker (daemon plays, medium texts):")
        for key, label in (("first_sound_s", "request → first sound"),
                           ("stop_s", "stop → device stopped"),
                           ("interrupt_s", "important → its first sound"),
                           ("replace_s", "new region (interrupt) → sound"),
                           ("anchor_ttfa_s", "kokoro-onnx one_shot TTFA")):
            if key in sp:
                print(f"  {label:<30} p50 {fmt(sp[key]['p50'], 'ms'):>9}  "
                      f"p95 {fmt(sp[key]['p95'], 'ms'):>9}  n {sp[key]['n']}")
        ratio = report["speaker"].get("ratio_first_sound_over_one_shot_ttfa")
        if ratio:
            print(f"  ratio first sound / one_shot TTFA: p50 {ratio['p50']:.3f}, "
                  f"p95 {ratio['p95']:.3f}")
    if "memory" in report:
        mem = report["memory"]
        print(f"\ndaemon RSS: before {mem['before_mib']:.0f} MiB, peak {mem['peak_mib']:.0f}, "
              f"after {mem['after_mib']:.0f}, growth {mem['growth_mib']:+.1f} MiB")


def scrub_paths(value: Any) -> Any:
    """Reports are committed: keep file names, drop where they lived on this machine."""
    if isinstance(value, dict):
        return {k: scrub_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_paths(v) for v in value]
    if isinstance(value, str) and value.startswith("/") and " " not in value:
        return Path(value).name
    return value


def write_report(path: str, report: dict[str, Any]) -> None:
    """The JSON report, without machine paths."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(scrub_paths(report), indent=1, default=str))
    print(f"\nwrote {path}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", action="append",
                   choices=["short", "medium", "long", "soak", "clocked-soak",
                            "first-sentence", "speaker"],
                   help="repeatable; default: short")
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--stream", action="store_true",
                   help="also time kokoro-say end to end (process start → first sample "
                        "at the audio device, real playback; see --sink)")
    p.add_argument("--sink", choices=list(SINKS), default="pulse",
                   help="where --stream's kokoro-say plays: 'pulse' (default), a private "
                        "PulseAudio null sink that plays in real time, so its underruns are "
                        "heard ones; 'file', ALSA's file sink (no clock: the old figures)")
    p.add_argument("--say-python", default=sys.executable, metavar="PYTHON",
                   help="the interpreter that runs kokoro-say for --stream (default: this one); "
                        "e.g. a clean venv's python with kokorod pip-installed, to time the "
                        "client as a user's install starts, without this environment's .pth "
                        "hooks")
    p.add_argument("--say-also", metavar="CHECKOUT",
                   help="with --stream: also run kokoro-say from another checkout (a git "
                        "worktree of an earlier commit), text by text in turn with this one, "
                        "and report the paired differences")
    p.add_argument("--memory", action="store_true", help="sample daemon RSS throughout")
    p.add_argument("--concurrency", type=int, default=0, metavar="K",
                   help="also run K clients at once (K-1 medium, 1 short)")
    p.add_argument("--concurrency-preset", default="medium", choices=list(texts.PRESETS),
                   help="text of the K-1 longer concurrent clients")
    p.add_argument("--chunk-ms", type=int, default=50)
    p.add_argument("--prebuffer", type=int, default=2)
    p.add_argument("--duration", type=float, default=600.0, help="soak seconds")
    p.add_argument("--replace-after", type=float, default=8.0, metavar="S",
                   help="speaker preset: seconds of a long text before a new one interrupts it")
    p.add_argument("--compare", action="store_true",
                   help="run the kokoro-onnx anchors on the same texts and print ratios")
    p.add_argument("--cold-trials", type=int, default=3,
                   help="trials of the cold-process anchor (each loads the model)")
    p.add_argument("--warm-cache", action="store_true",
                   help="repeat the same text every trial (labelled: not cold-cache latency)")
    p.add_argument("--voice", default=None)
    p.add_argument("--text-offset", type=int, default=0, help="pick other texts")
    p.add_argument("--socket", help="bench an already running daemon instead of a fresh one")
    p.add_argument("--raw-arrivals", action="store_true",
                   help="keep every chunk arrival time in the JSON")
    p.add_argument("--json", metavar="OUT", help="write the full report here")
    p.add_argument("--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    presets = args.preset or ["short"]
    if (args.stream or "clocked-soak" in presets) and args.sink == "pulse":
        try:
            PulseSink().stop()  # before the daemon starts: say so at once
        except PulseUnavailable as exc:
            raise SystemExit(f"bench: no clocked sink for --stream: {exc}; or --sink file "
                             "(no clock: its underrun counts are artefacts)") from None
    home = alsa_home() if "speaker" in presets and not args.socket else None
    # Cold means cold: the audio cache is off unless --warm-cache asks for repeats.
    cache = {} if args.warm_cache else {"KOKORO_AUDIO_CACHE_MB": "0"}
    daemon = BenchDaemon(args.socket, args.verbose, home, cache)
    sampler = RssSampler(daemon) if args.memory or "soak" in presets else None
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/run_bench.py",
                             *(scrub_paths(a) for a in (argv or sys.argv[1:]))]),
        "machine": machine.describe(REPO),
        "daemon": {k: daemon.status["engine"].get(k) for k in
                   ("provider", "provider_reason", "threads", "model_path", "model_sha256",
                    "model_verified")},
        "settings": {"trials": args.trials, "chunk_ms": args.chunk_ms,
                     "prebuffer": args.prebuffer, "warm_cache": args.warm_cache,
                     "cache": "warm (repeated text)" if args.warm_cache else "cold (new text)",
                     "voice": args.voice or daemon.status["engine"].get("default_voice"),
                     "kokoro_env": {k: v for k, v in os.environ.items()
                                    if k.startswith("KOKORO_")}},
        "presets": {},
    }
    try:
        warm = None
        if args.compare:
            with Client(daemon.socket) as c:
                voice = args.voice or c.server["default_voice"]
            warm = anchors.WarmKokoro(daemon.status["engine"]["model_path"],
                                      daemon.status["engine"]["voices_path"], voice)
        for name in presets:
            if name in texts.PRESETS:
                report["presets"][name] = bench_preset(name, daemon, args, warm)
            elif name == "first-sentence":
                report["first_sentence"] = bench_first_sentence(daemon, args)
            elif name == "soak":
                report["soak"] = bench_soak(daemon, args)
            elif name == "clocked-soak":
                report["clocked_soak"] = bench_clocked_soak(daemon, args)
            elif name == "speaker":
                report["speaker"] = bench_speaker(daemon, args, warm)
        if args.concurrency:
            report["concurrency"] = bench_concurrency(daemon, args)
        if sampler is not None:
            report["memory"] = sampler.finish()
        with Client(daemon.socket) as c:
            report["daemon_status_after"] = c.status()
        before = (daemon.status.get("caches") or {}).get("audio") or {}
        after = report["daemon_status_after"].get("caches", {}).get("audio") or {}
        # Cache hits are not latency: counted here, apart from every timing above.
        report["audio_cache_hits"] = after.get("hits", 0) - before.get("hits", 0)
    finally:
        daemon.stop()
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)
    print_table(report)
    if args.json:
        write_report(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
