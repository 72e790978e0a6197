"""kokoro-say end to end: file output, real sounddevice playback into an ALSA file sink
(the exact samples) or a clocked PulseAudio null sink (timing),
autostart, and the daemon's lifecycle commands."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from helpers import (
    DaemonProc,
    alsa_home,
    clocked_sink,
    daemon_env,
    raw_conn,
    read_alsa_capture,
    start_daemon,
    wait_live,
    without_silence,
)

from kokorod_client import Client
from kokorod_common.launcher import socket_is_live

SHORT = "Hello from the speech daemon."


def say(args: list[str], env: dict[str, str], cwd: Path | None = None,
        stdin: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kokorod_client.say", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          input=stdin)


def test_say_writes_valid_wav(daemon: DaemonProc, tmp_path: Path) -> None:
    out = tmp_path / "x.wav"
    result = say(["--no-autostart", "-o", str(out), SHORT], daemon.env)
    assert result.returncode == 0, result.stderr
    info = sf.info(str(out))
    assert info.samplerate == 24_000 and info.channels == 1 and info.format == "WAV"
    audio, _ = sf.read(str(out), dtype="float32")
    assert 0.03 * len(SHORT) < audio.size / 24_000 < 0.15 * len(SHORT) + 1
    assert np.sqrt(np.mean(audio ** 2)) > 0.01


def test_say_reads_stdin_and_file(daemon: DaemonProc, tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("Text from a file.")
    for args, stdin in ((["-f", str(src)], None), (["-f", "-"], "Text from stdin."),
                        ([], "Text piped in.")):
        out = tmp_path / f"o{len(args)}{stdin is None}.aiff"
        result = say(["--no-autostart", "-o", str(out), *args], daemon.env, stdin=stdin)
        assert result.returncode == 0, result.stderr
        assert sf.info(str(out)).format == "AIFF" and sf.info(str(out)).frames > 10_000


def test_say_plays_through_sounddevice_into_alsa_file(daemon: DaemonProc,
                                                      tmp_path: Path) -> None:
    """The real PortAudio/ALSA path: the samples that land match what the daemon sends."""
    home, capture = alsa_home(tmp_path)
    env = {**daemon.env, "HOME": str(home)}
    result = say(["--no-autostart", "--json-stats", "--prebuffer", "2", SHORT], env)
    assert result.returncode == 0, result.stderr
    assert "wrote the audio" not in result.stderr  # it really played
    played = read_alsa_capture(capture)
    with Client(daemon.socket) as client:
        stream = client.synthesize(SHORT)
        sent = np.concatenate([c.samples for c in stream])
    # The device gets silence before the pre-buffer fills (and in an underrun, should a
    # slow machine have one); the speech itself must arrive whole, in order, unchanged.
    body, expected = without_silence(played), without_silence(sent)
    assert body.size >= expected.size - 1
    np.testing.assert_allclose(body[: expected.size], expected, atol=1e-6)


def test_say_without_audio_device_writes_wav(daemon: DaemonProc, tmp_path: Path) -> None:
    home = tmp_path / "nohome"
    home.mkdir()
    (home / ".asoundrc").write_text('pcm.!default { type hw card 99 }\n')
    result = say(["--no-autostart", SHORT], {**daemon.env, "HOME": str(home)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "audio" in result.stderr and "-o" in result.stderr
    assert sf.info(str(tmp_path / "kokoro-say.wav")).samplerate == 24_000


def test_say_lists_voices(daemon: DaemonProc) -> None:
    for args in (["-v", "?"], ["--voices"]):
        result = say(["--no-autostart", *args], daemon.env)
        assert result.returncode == 0, result.stderr
        assert "jf_alpha" in result.stdout and "female" in result.stdout


def test_say_reports_errors_clearly(daemon: DaemonProc, tmp_path: Path) -> None:
    result = say(["--no-autostart", "-v", "nobody", "-o", str(tmp_path / "x.wav"), "Hi."],
                 daemon.env)
    assert result.returncode == 1
    assert "not installed" in result.stderr and "unknown_voice" in result.stderr
    result = say(["--no-autostart", "-r", "5000", "Hi."], daemon.env)
    assert result.returncode == 2 and "rate" in result.stderr  # a bad command line
    assert "Traceback" not in result.stderr


def test_say_without_daemon_and_no_autostart(run_dir: Path, data_dir: Path) -> None:
    env = daemon_env(run_dir / "none.sock", data_dir)
    result = say(["--no-autostart", "Hi."], env)
    assert result.returncode == 1 and "not running" in result.stderr


def test_ctrl_c_stops_and_cancels(daemon: DaemonProc, tmp_path: Path) -> None:
    home, capture = alsa_home(tmp_path)
    env = {**daemon.env, "HOME": str(home)}
    text = " ".join(["This is a long text that keeps going so there is time to interrupt it."]
                    * 20)
    # A runner started in the background (`cmd &` in a script) ignores SIGINT, and its
    # children inherit that; a user's Ctrl-C reaches a process with the default action.
    proc = subprocess.Popen([sys.executable, "-m", "kokorod_client.say", "--no-autostart",
                             text], env=env, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120  # interrupt it while it plays, however slow the CPU
    while not (capture.exists() and capture.stat().st_size > 96_000):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(60)
    assert code == 130, proc.stderr.read() if proc.stderr else ""
    with raw_conn(daemon.socket) as c:  # the daemon dropped the request
        deadline = time.monotonic() + 10
        while True:
            c.send({"op": "status", "id": 1})
            if c.recv()["active_requests"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        c.send({"op": "status", "id": 2})
        assert c.recv()["active_requests"] == 0


@pytest.mark.model  # its client autostarts a daemon (or tune builds engines)
def test_autostart_stale_socket_and_lifecycle(run_dir: Path, data_dir: Path,
                                              tmp_path: Path) -> None:
    """kokorod start/status/stop, kill -9, stale socket, and kokoro-say auto-start."""
    sock = run_dir / "k.sock"
    env = daemon_env(sock, data_dir)

    def kokorod(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kokorod", *args], env=env,
                              capture_output=True, text=True, timeout=180)

    assert kokorod("status").returncode == 3
    started = kokorod("start")
    assert started.returncode == 0, started.stderr
    status = kokorod("status", "--json")
    assert status.returncode == 0 and '"running": true' in status.stdout
    human = kokorod("status")
    assert re.search(r"^speech\s+idle, 0 waiting$", human.stdout, re.M), human.stdout
    pid = int(next(line for line in status.stdout.splitlines() if '"pid"' in line)
              .split(":")[1].strip(" ,"))
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sock.exists() and not socket_is_live(sock)  # stale socket left behind
    out = tmp_path / "auto.wav"
    result = say(["-o", str(out), SHORT], env)  # auto-starts a new daemon
    assert result.returncode == 0, result.stderr
    assert sf.info(str(out)).frames > 10_000
    assert socket_is_live(sock)
    stopped = kokorod("stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not sock.exists()
    assert kokorod("status").returncode == 3


def test_sigterm_drains_and_removes_socket(run_dir: Path, data_dir: Path) -> None:
    handle = start_daemon(run_dir / "k.sock", data_dir)
    try:
        with raw_conn(handle.socket) as c:
            c.send({"op": "synthesize", "id": 1, "text": "Finish this sentence before exit."})
            assert c.recv()["op"] == "start"
            handle.proc.send_signal(signal.SIGTERM)
            frames = c.until_final(1)
        assert frames[-1]["op"] == "end"
        assert handle.proc.wait(30) == 0
        assert not handle.socket.exists()
    finally:
        handle.stop()


def test_sigterm_after_the_grace_period_ends_streams_with_reason_shutdown(
        run_dir: Path, data_dir: Path) -> None:
    """PROTOCOL.md: a stream still running when the grace period ends gets its `end`
    frame, cancelled, reason `shutdown` — not a bare EOF."""
    handle = start_daemon(run_dir / "k.sock", data_dir, KOKORO_SHUTDOWN_GRACE_S="0.5")
    try:
        with raw_conn(handle.socket) as c:
            long_text = " ".join(["A long text that cannot finish in half a second."] * 20)
            c.send({"op": "synthesize", "id": 1, "text": long_text})
            frames = []
            for frame in c.frames():
                frames.append(frame)
                if frame["op"] == "chunk":
                    handle.proc.send_signal(signal.SIGTERM)
                    break
            frames += c.until_final(1)
        end = frames[-1]
        assert end["op"] == "end" and end["cancelled"] and end["reason"] == "shutdown", end
        assert handle.proc.wait(30) == 0
    finally:
        handle.stop()


def test_stale_socket_file_is_replaced(run_dir: Path, data_dir: Path) -> None:
    import socket as socketlib

    sock_path = run_dir / "k.sock"
    dead = socketlib.socket(socketlib.AF_UNIX)
    dead.bind(str(sock_path))
    dead.close()  # bound, never listening: a stale socket file
    handle = start_daemon(sock_path, data_dir, wait=False)
    try:
        wait_live(handle)
        with raw_conn(sock_path) as c:
            c.send({"op": "ping", "id": 1})
            assert c.recv()["op"] == "pong"
    finally:
        handle.stop()


@pytest.mark.parametrize(("var", "value", "needle"), [
    ("KOKORO_PROVIDER", "gpu", "auto, cpu, coreml"),
    ("KOKORO_COREML_COMPUTE_UNITS", "Everything", "CPUOnly, CPUAndGPU"),
    ("KOKORO_THREADS", "many", "KOKORO_THREADS"),
    ("KOKORO_MODEL_PATH", "/nonexistent/model.onnx", "not found"),
])
def test_bad_settings_give_one_clear_line(run_dir: Path, data_dir: Path, var: str, value: str,
                                          needle: str) -> None:
    env = daemon_env(run_dir / "k.sock", data_dir, **{var: value})
    result = subprocess.run([sys.executable, "-m", "kokorod", "run"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.model  # its client autostarts a daemon (or tune builds engines)
def test_two_clients_autostart_at_once(run_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    """Both start a daemon; one wins the lock, the other waits for it; both speak."""
    env = daemon_env(run_dir / "k.sock", data_dir)
    procs = [subprocess.Popen([sys.executable, "-m", "kokorod_client.say", "-o",
                               str(tmp_path / f"{i}.wav"), f"Client {i} speaking."],
                              env=env, stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
        for p in procs:
            assert p.wait(180) == 0, p.stderr.read() if p.stderr else ""
        for i in range(2):
            assert sf.info(str(tmp_path / f"{i}.wav")).frames > 10_000
    finally:
        subprocess.run([sys.executable, "-m", "kokorod", "stop"], env=env, timeout=60)


# ---------------------------------------------------------------- say parity


def test_say_lists_voices_like_say(daemon: DaemonProc) -> None:
    result = say(["--no-autostart", "-v", "?"], daemon.env)
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and len(lines) == 54  # the v1.0 voices
    for line in lines:  # name, locale, '#' and a sample sentence, as `say -v '?'` prints
        assert re.match(r"^[a-z]{2}_\w+\s+[a-z]{2}_[A-Z]{2}\s+# \((fe)?male\) \S", line), line
        if line.split()[1].startswith("en_"):
            assert re.search(r"Hello! My name is \w+\.$", line), line
    assert any(line.startswith("ff_siwis") and "fr_FR" in line and "Bonjour" in line
               for line in lines)


def test_help_reads_like_the_say_man_page() -> None:
    result = subprocess.run([sys.executable, "-m", "kokorod_client.say", "--help"],
                            capture_output=True, text=True, timeout=60)
    out = result.stdout
    assert result.returncode == 0
    assert out.startswith("usage: kokoro-say [-v voice] [-r rate] [-o outfile")
    for part in ("convert text to audible speech", "--file-format", "--data-format",
                 "-a device", "--interactive", "--progress", "examples:", "LEF32",
                 "kokoro-say -v '?'"):
        assert part in out, part


@pytest.fixture(scope="module")
def reference(daemon: DaemonProc, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """The 16-bit samples of SHORT, from a plain WAV."""
    out = tmp_path_factory.mktemp("ref") / "ref.wav"
    assert say(["--no-autostart", "-o", str(out), SHORT], daemon.env).returncode == 0
    return sf.read(str(out), dtype="int16")[0]


@pytest.mark.parametrize(("name", "args", "container", "subtype"), [
    ("a.aiff", [], "AIFF", "PCM_16"),
    ("a.aifc", ["--file-format", "AIFC", "--data-format", "BEF32"], "AIFF", "FLOAT"),
    ("a.flac", ["--data-format", "I24"], "FLAC", "PCM_24"),
    ("a.wav", ["--data-format", "LEF32@24000"], "WAV", "FLOAT"),
    ("a.out", ["--file-format", "WAVE"], "WAV", "PCM_16"),
])
def test_say_file_formats(daemon: DaemonProc, tmp_path: Path, reference: np.ndarray,
                          name: str, args: list[str], container: str, subtype: str) -> None:
    out = tmp_path / name
    result = say(["--no-autostart", "-o", str(out), *args, SHORT], daemon.env)
    assert result.returncode == 0, result.stderr
    info = sf.info(str(out))
    assert (info.format, info.subtype, info.samplerate) == (container, subtype, 24_000)
    assert info.frames == reference.size


@pytest.mark.parametrize(("fmt", "dtype"), [("s16", "<i2"), ("LEI16", "<i2"),
                                            ("BEI16", ">i2"), ("f32", "<f4")])
def test_say_raw_output(daemon: DaemonProc, tmp_path: Path, reference: np.ndarray,
                        fmt: str, dtype: str) -> None:
    out = tmp_path / "speech.raw"
    result = say(["--no-autostart", "-o", str(out), "--data-format", fmt, SHORT], daemon.env)
    assert result.returncode == 0, result.stderr
    samples = np.frombuffer(out.read_bytes(), dtype=dtype)
    assert samples.size == reference.size  # headerless: only samples
    as16 = samples if samples.dtype.kind == "i" else np.round(samples * 32767)
    assert np.abs(as16.astype(np.int32) - reference.astype(np.int32)).max() <= 1


@pytest.mark.parametrize(("args", "message"), [
    (["-o", "x.wav", "--data-format", "LEI16@22050"], "24000"),
    (["-o", "x.wav", "--data-format", "BEI16"], "little-endian"),
    (["-o", "x.mp3"], "cannot tell the format"),
    (["-o", "x.wav", "--file-format", "mp3"], "not supported"),
    (["-o", "x.raw", "--data-format", "Q7"], "not understood"),
])
def test_say_refuses_formats_it_cannot_write(daemon: DaemonProc, tmp_path: Path,
                                             args: list[str], message: str) -> None:
    result = say(["--no-autostart", *args, SHORT], daemon.env, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr  # command line
    assert "Traceback" not in result.stderr


def test_say_audio_devices(daemon: DaemonProc, tmp_path: Path) -> None:
    home, capture = alsa_home(tmp_path)
    env = {**daemon.env, "HOME": str(home)}
    listing = say(["-a", "?"], env)
    assert listing.returncode == 0 and re.search(r"^\s+\d+ default", listing.stdout, re.M)
    index = re.search(r"^\s+(\d+) default", listing.stdout, re.M).group(1)
    for device in ("default", index):
        capture.unlink(missing_ok=True)
        result = say(["--no-autostart", "-a", device, SHORT], env)
        assert result.returncode == 0, result.stderr
        assert without_silence(read_alsa_capture(capture)).size > 24_000 * 0.5
    bad = say(["--no-autostart", "-a", "no-such-device", SHORT], env)
    assert bad.returncode == 1 and "-a ?" in bad.stderr


def test_say_interactive_prints_each_sentence_as_spoken(daemon: DaemonProc,
                                                        tmp_path: Path) -> None:
    sink = clocked_sink()  # sentences printed as heard: at a device that keeps time
    sentences = ["First sentence here.", "The second one is a little longer, to be sure.",
                 "Third!", "And a fourth sentence at the end of it all, which is long "
                 "enough to be cut into more than one segment by the daemon."]
    try:
        result = say(["--no-autostart", "-i", "--progress", " ".join(sentences)],
                     {**daemon.env, **sink.env})
    finally:
        sink.stop()
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == sentences
    assert "100%" in result.stderr  # the progress bar reached the end


def test_say_reads_markdown_files_as_prose(daemon: DaemonProc, tmp_path: Path) -> None:
    md = tmp_path / "notes.md"
    md.write_text("# Notes\n\nSee [the guide](https://example.com/a/long/path/to/the/guide) "
                  "for **details**.\n")
    plain = tmp_path / "plain.txt"
    plain.write_text("Notes.\n\nSee the guide for details.\n")
    lengths = []
    for src in (md, plain):
        out = tmp_path / f"{src.stem}.wav"
        assert say(["--no-autostart", "-f", str(src), "-o", str(out)], daemon.env).returncode == 0
        lengths.append(sf.info(str(out)).frames)
    assert abs(lengths[0] - lengths[1]) < 0.1 * lengths[1]


def test_say_daemon_play_and_stop(speaker: Any) -> None:
    env = {**os.environ, "KOKORO_SOCKET": str(speaker.socket)}
    result = say(["--no-autostart", "--daemon-play", "--json-stats", SHORT], env)
    assert result.returncode == 0, result.stderr
    end = json.loads(result.stdout.strip().splitlines()[-1])["end"]
    assert end["reason"] == "done" and end["audio_seconds"] > 0.5
    stop = say(["--no-autostart", "--stop"], env)
    assert stop.returncode == 0 and stop.stdout.startswith("stopped ")


def test_ctrl_c_ends_kokoro_say_even_when_something_hangs() -> None:
    """The interrupt watcher: a process whose main thread never gets the KeyboardInterrupt
    (stuck, or the handler swallowed) still exits 130 shortly after Ctrl-C."""
    script = ("import signal, time\n"
              "from kokorod_client.say import exit_if_interrupt_hangs\n"
              "exit_if_interrupt_hangs(0.5)\n"
              "signal.signal(signal.SIGINT, lambda *a: None)  # nothing reaches Python\n"
              "print('ready', flush=True)\n"
              "time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130


@pytest.mark.parametrize(("argv", "why"), [
    (["--daemon-play", "-o", "x.wav", "hi"], "choose one"),
    (["--daemon-play", "-i", "hi"], "local playback"),
    (["--data-format", "LEI16", "hi"], "there is none"),
    (["-r", "200", "--speed", "1.2", "hi"], "give one"),
    (["--stop", "hi"], "no text"),
    (["--all", "hi"], "goes with --stop"),
    (["-f", "notes.txt", "hi"], "one or the other"),
    (["--prebuffer", "0", "hi"], "from 1 to 16"),
    (["-a", "7", "-o", "b.wav", "hi"], "choose one"),
])
def test_flags_that_would_be_ignored_are_refused(argv: list[str], why: str) -> None:
    result = say(["--no-autostart", *argv], dict(os.environ))
    assert result.returncode == 2 and why in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_version_and_stop_without_a_daemon(run_dir: Path) -> None:
    version = say(["--version"], dict(os.environ))
    assert version.returncode == 0 and re.match(r"kokoro-say \d+\.\d+", version.stdout)
    env = {**os.environ, "KOKORO_SOCKET": str(run_dir / "k.sock")}
    stopped = say(["--stop"], env)
    assert stopped.returncode == 0 and "not running" in stopped.stdout
    assert not (run_dir / "k.sock").exists()  # no daemon was started to stop nothing


def test_aifc_is_aifc_and_stdout_gets_the_file(daemon: DaemonProc, tmp_path: Path) -> None:
    out = tmp_path / "x.aifc"
    assert say(["--no-autostart", "-o", str(out), SHORT], daemon.env).returncode == 0
    head = out.read_bytes()[:16]
    assert head[8:12] == b"AIFC" and head[12:16] == b"FVER"
    assert sf.info(str(out)).frames > 10_000
    piped = subprocess.run([sys.executable, "-m", "kokorod_client.say", "--no-autostart",
                            "-o", "-", SHORT], env=daemon.env, capture_output=True, timeout=180)
    assert piped.returncode == 0 and piped.stdout[:4] == b"RIFF" and piped.stdout[8:12] == b"WAVE"
    missing = say(["--no-autostart", "-o", str(tmp_path / "no" / "dir.wav"), SHORT], daemon.env)
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_not_all_spoken_says_why_and_exits_3(speaker: Any) -> None:
    env = {**os.environ, "KOKORO_SOCKET": str(speaker.socket)}
    long = " ".join(["A long message that keeps the daemon's speaker busy."] * 12)
    busy = subprocess.Popen([sys.executable, "-m", "kokorod_client.say", "--no-autostart",
                             "--daemon-play", "--priority", "message", long], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3.0)
    note = say(["--no-autostart", "--daemon-play", "--priority", "notification", SHORT], env)
    assert note.returncode == 3 and "dropped" in note.stderr, note.stderr
    assert say(["--no-autostart", "--stop", "--all"], env).returncode == 0
    _, err = busy.communicate(timeout=60)
    assert busy.returncode == 3 and "stopped" in err, err


def test_nothing_speakable_and_binary_input_are_refused(daemon: DaemonProc) -> None:
    for text in ("...", "---", "🙂🙂", "* * *"):
        result = say(["--no-autostart", "-o", "/dev/null", "--file-format", "raw", "--", text],
                     daemon.env)
        assert result.returncode == 1 and "nothing speakable" in result.stderr, (text, result)
    binary = say(["--no-autostart", "-o", "/dev/null", "--file-format", "raw", "-f",
                  sys.executable], daemon.env)
    assert binary.returncode == 1 and "binary file" in binary.stderr


def test_a_text_too_big_for_one_request_is_refused_cleanly(daemon: DaemonProc,
                                                           tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("A sentence of a very long book. " * 40_000)  # 1.3 MB
    result = say(["--no-autostart", "-o", str(tmp_path / "x.wav"), "-f", str(big)], daemon.env)
    assert result.returncode == 1 and "split the text" in result.stderr
    assert "Traceback" not in result.stderr


def test_say_speaks_without_importing_numpy(daemon: DaemonProc, tmp_path: Path) -> None:
    """The speaking client's hot path moves the daemon's float32 bytes to PortAudio's raw
    stream as they are: numpy (~100 ms of start-up) is never imported. And it asks first:
    the request leaves before the Client (threads, queues, reply routing) loads, and the
    player, PortAudio and the launcher load while the daemon synthesizes. The wire
    format's types need no `dataclasses` (it imports `inspect`, ~15 ms)."""
    home, capture = alsa_home(tmp_path)
    late = ("kokorod_client.client", "kokorod_client.core", "kokorod_common.player",
            "kokorod_client.speaking", "sounddevice", "kokorod_common.launcher",
            "kokorod_client.subtitles", "dataclasses")
    # Watch the socket itself: the request is whatever frame first carries "synthesize".
    code = ("import socket, sys\nsendall = socket.socket.sendall\n"
            "def watch(self, data, *a):\n"
            "    if b'synthesize' in data and not hasattr(sys, 'asked'):\n"
            "        sys.asked = True\n"
            f"        print('loaded before asking:', [m for m in {late!r} if m in sys.modules],"
            " file=sys.stderr)\n"
            "    return sendall(self, data, *a)\n"
            "socket.socket.sendall = watch\n"
            "from kokorod_client.say import run\n"
            f"rc = run(['--no-autostart', {SHORT!r}])\n"
            "print('numpy loaded:', 'numpy' in sys.modules, file=sys.stderr)\nsys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code], env={**daemon.env, "HOME": str(home)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "loaded before asking: []" in lines, result.stderr
    assert lines[-1] == "numpy loaded: False", result.stderr
    played = without_silence(read_alsa_capture(capture))
    assert played.size > 0.5 * 24_000  # it really played, through the raw stream


# ---------------------------------------------------------------- issue 36 (client side)


def say_bytes(args: list[str | bytes], env: dict[str, str], stdin: bytes | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """kokoro-say with arguments and standard input as raw bytes (not UTF-8, maybe)."""
    return subprocess.run([sys.executable.encode(), b"-m", b"kokorod_client.say", *(
        a if isinstance(a, bytes) else a.encode() for a in args)], env=env,
        capture_output=True, input=stdin, timeout=180, cwd=cwd)


def one_line(stderr: bytes) -> str:
    text = stderr.decode()
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    return text


def test_text_that_is_not_utf8_gets_one_line_and_encoding_reads_it(daemon: DaemonProc,
                                                                    tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Un café, s'il vous plaît. Déjà vu à Noël.".encode("latin-1"))
    out = str(tmp_path / "x.wav")
    for args, stdin in (([b"Un caf\xe9"], None), ([], b"caf\xe9 au lait"),
                        (["-f", str(latin1)], None), (["-f", "-"], b"d\xe9j\xe0 vu")):
        result = say_bytes(["--no-autostart", "-o", out, *args], daemon.env, stdin)
        assert result.returncode == 1, result
        line = one_line(result.stderr)
        assert "not UTF-8 (looks like latin-1?)" in line and "--encoding latin-1" in line
    noise = say_bytes(["--no-autostart", "-o", out], daemon.env, os.urandom(4096))
    assert noise.returncode == 1 and "binary data, not text" in one_line(noise.stderr)
    for flag in ("-v", "-l", "--encoding"):  # text flags: a bad command line
        bad = say_bytes(["--no-autostart", "-o", out, flag, b"caf\xe9", "Hi."], daemon.env)
        assert bad.returncode == 2, bad
        assert "error: argument " in one_line(bad.stderr) and "'caf\\xe9' is not UTF-8 text" \
            in one_line(bad.stderr)
    unknown = say_bytes(["--no-autostart", "--encoding", "klingon", "-o", out, "Hi."],
                        daemon.env)
    assert unknown.returncode == 2 and "klingon" in one_line(unknown.stderr)
    words = tmp_path / "w.json"
    for args in ([b"Un caf\xe9 pour No\xebl."], ["-f", str(latin1)]):
        read = say_bytes(["--no-autostart", "--encoding", "latin-1", "-o", out,
                          "--subtitles", str(words), *args], daemon.env)
        assert read.returncode == 0, read.stderr
        assert "café" in [w["text"] for w in json.loads(words.read_text())["words"]]


def test_utf16_text_and_file_names_that_are_not_utf8(daemon: DaemonProc,
                                                     tmp_path: Path) -> None:
    """Issue 36 row 6: a Windows "Unicode" file (UTF-16 with its byte order mark) is read
    as what its mark says; UTF-16 without one gets the hint, not "binary"; a file name is
    bytes, whatever they are (-o, -f, --subtitles)."""
    words = tmp_path / "w.json"
    for data in ("Un café.".encode("utf-16"), "Un café.".encode("utf-32")):
        read = say_bytes(["--no-autostart", "-o", str(tmp_path / "x.wav"), "--subtitles",
                          str(words)], daemon.env, data)
        assert read.returncode == 0, read.stderr
        assert [w["text"] for w in json.loads(words.read_text())["words"]] == ["Un", "café"]
    bare = say_bytes(["--no-autostart", "-o", str(tmp_path / "x.wav")], daemon.env,
                     "Hello there.".encode("utf-16-le"))
    assert bare.returncode == 1 and "--encoding utf-16-le" in one_line(bare.stderr)
    source = os.fsencode(tmp_path) + b"/n\xe9.txt"
    Path(os.fsdecode(source)).write_text("Hello.")
    wav, vtt = os.fsencode(tmp_path) + b"/x\xe9.wav", os.fsencode(tmp_path) + b"/s\xe9.vtt"
    named = say_bytes(["--no-autostart", "-f", source, "-o", wav, "--subtitles", vtt],
                      daemon.env)
    assert named.returncode == 0 and named.stderr == b"", named.stderr
    audio, rate = sf.read(io.BytesIO(Path(os.fsdecode(wav)).read_bytes()))
    assert rate == 24_000 and audio.size > 0.3 * 24_000
    assert "Hello." in Path(os.fsdecode(vtt)).read_text()


@pytest.mark.parametrize("argv", [
    ["-r", "50"], ["--speed", "5"], ["--chunk-ms", "5"], ["-o", "x.wav", "--data-format", "foo"],
    ["-o", "a.mp3"], ["-o", "x.wav", "--file-format", "mp3"],
])
def test_bad_values_are_a_bad_command_line(argv: list[str], tmp_path: Path) -> None:
    """Issue 36 row 17: exit 2 and one line as argparse's own errors ("kokoro-say: error:
    …"), before any daemon is asked (none runs here)."""
    env = {**os.environ, "KOKORO_SOCKET": str(tmp_path / "none.sock")}
    result = say(["--no-autostart", *argv, "hi"], env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("kokoro-say: error: "), result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and "not running" not in result.stderr


# A valid value for each kokoro-say flag that takes one (a new flag must be added here,
# and to the modes that read it in kokorod_client/say_modes.py).
SAMPLE_VALUES = {"rate": "170", "speed": "1.1", "chunk_ms": "100", "prebuffer": "3",
                 "priority": "text", "text_format": "plain", "file_format": "WAVE",
                 "data_format": "LEI16", "output_file": "x.wav", "audio_device": "1",
                 "voice": "af_bella", "lang": "en-us", "encoding": "latin-1",
                 "subtitles": "s.vtt", "input_file": "t.txt", "socket": "/nonexistent/k.sock"}
MODE_BASES = {"voices": ["-v", "?"], "stop": ["--stop"], "daemon-play": ["--daemon-play", "hi"],
              "file": ["-o", "x.wav", "hi"], "play": ["hi"]}


@pytest.mark.parametrize("mode", sorted(MODE_BASES))
def test_every_flag_a_mode_would_ignore_is_refused(mode: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 36 row 18, for every flag the parser has (not a list of known cases): added to
    a command line of a mode that does not read it, it turns an accepted command line
    into a refused one (exit 2, one line) — `-a 7 -o b.wav`, `--prebuffer 3
    --daemon-play`, `-v '?' -o x.wav` …"""
    from kokorod_client import say as say_module
    from kokorod_client.say_modes import ANY_MODE, MODES, mode_of

    monkeypatch.setenv("KOKORO_SOCKET", str(tmp_path / "none.sock"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.txt").write_text("hi")

    def status(argv: list[str]) -> tuple[int, str]:
        try:
            code = say_module.run(["--no-autostart", *argv])
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
        return code, capsys.readouterr().err

    base = MODE_BASES[mode]
    code, err = status(base)
    assert code != 2, err  # the mode alone is a good command line
    parser = say_module.build_parser()
    checked = []
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "version") \
                or action.dest in MODES[mode][1] | ANY_MODE:
            continue
        flag = [action.option_strings[-1]] + (
            [SAMPLE_VALUES[action.dest]] if action.nargs != 0 else [])
        argv = flag + base
        if mode_of(parser.parse_args(argv)) != mode:
            continue  # the flag picks another mode (-o, --daemon-play, --stop)
        code, err = status(argv)
        assert code == 2, (argv, err)
        assert err.startswith("kokoro-say: error: ") and len(err.splitlines()) == 1, err
        checked.append(action.dest)
    assert len(checked) >= 3, checked


def test_audio_on_stdout_keeps_feedback_and_stats_off_it(daemon: DaemonProc,
                                                         tmp_path: Path) -> None:
    """Issue 36 row 9: -o -: stdout is the WAV file, whole and nothing else; -i's lines,
    --json-stats, --stats and --progress go to standard error."""
    text = "First sentence here. And the second one."
    for flags in (["-i"], ["--json-stats"], ["--stats", "--progress"]):
        result = subprocess.run([sys.executable, "-m", "kokorod_client.say", "--no-autostart",
                                 *flags, "-o", "-", text], env=daemon.env, capture_output=True,
                                timeout=180)
        assert result.returncode == 0, result.stderr
        wav = result.stdout
        assert wav[:4] == b"RIFF" and int.from_bytes(wav[4:8], "little") + 8 == len(wav)
        audio, rate = sf.read(io.BytesIO(wav))
        assert rate == 24_000 and audio.size > 24_000
        err = result.stderr.decode().splitlines()
        if flags == ["-i"]:
            assert err == ["First sentence here.", "And the second one."]
        elif flags == ["--json-stats"]:
            assert json.loads(err[-1])["end"]["reason"] == "done"
        else:
            assert re.search(r"audio +\d+\.\d\d s in \d+ chunks", result.stderr.decode())
            assert "kokoro-say: 100%" in result.stderr.decode()


def in_terminal(command: str, tmp_path: Path, timeout: float = 60) -> str:
    """Run `command` (a shell line) in a real terminal (tmux); the screen when it is done."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    script = tmp_path / "term.sh"
    script.write_text(f"{command}; echo \"EXIT=$?\"; sleep 30\n")
    server = ["tmux", "-L", f"ks{tmp_path.name[-8:]}"]
    subprocess.run([*server, "new-session", "-d", "-x", "150", "-y", "20", "-s", "t",
                    f"sh {script}"], check=True)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = subprocess.run([*server, "capture-pane", "-p", "-t", "t"],
                                    capture_output=True, text=True).stdout
            if "EXIT=" in screen:
                return screen
            time.sleep(0.1)
        return screen
    finally:
        subprocess.run([*server, "kill-server"], capture_output=True)


def terminal_env(daemon: DaemonProc) -> str:
    return " ".join(f"{k}='{v}'" for k, v in daemon.env.items()
                    if "'" not in v and k.isidentifier())


def test_audio_to_stdout_on_a_terminal_is_refused(daemon: DaemonProc, tmp_path: Path) -> None:
    """Issue 36 row 10: `-o -` at a terminal, and the terminal by another name (/dev/tty,
    /dev/stdout): refused, nothing binary on the screen."""
    say_cmd = f"env -i {terminal_env(daemon)} {sys.executable} -m kokorod_client.say " \
              "--no-autostart"
    screen = in_terminal(f"{say_cmd} -o - '{SHORT}'; echo A=$?; "
                         f"{say_cmd} -o /dev/tty --file-format WAVE '{SHORT}'; echo B=$?; "
                         f"{say_cmd} -o /dev/stdout --file-format WAVE '{SHORT}'", tmp_path)
    lines = [line for line in screen.splitlines() if line.strip()]
    assert lines == [
        "kokoro-say: error: -o - writes the audio file to standard output, which is a "
        "terminal: redirect it (> file.wav) or pipe it", "A=2",
        "kokoro-say: error: -o /dev/tty is a terminal: give a file name (-o file.wav)", "B=2",
        "kokoro-say: error: -o /dev/stdout is a terminal: give a file name (-o file.wav)",
        "EXIT=2"], screen


def test_highlighting_goes_to_the_terminal_while_the_audio_goes_to_a_file(
        daemon: DaemonProc, tmp_path: Path) -> None:
    """Issue 36 row 9, as typed at a terminal: `kokoro-say -i -o - "…" > x.wav`. The words
    are shown (standard error is the terminal) and x.wav is the WAV file, whole."""
    wav = tmp_path / "x.wav"
    text = "First sentence here. And the second one."
    screen = in_terminal(f"env -i {terminal_env(daemon)} {sys.executable} -m "
                         f"kokorod_client.say --no-autostart -i -o - '{text}' > {wav}",
                         tmp_path, timeout=120)
    lines = [line for line in screen.splitlines() if line.strip()]
    assert lines[-1] == "EXIT=0", screen
    assert " ".join(lines[:-1]).split() == text.split(), screen  # the text, nothing else
    data = wav.read_bytes()
    assert data[:4] == b"RIFF" and int.from_bytes(data[4:8], "little") + 8 == len(data)
    audio, rate = sf.read(wav)
    assert rate == 24_000 and audio.size > 1.5 * 24_000


def test_daemon_play_stats_fit_the_mode(speaker: Any) -> None:
    env = {**os.environ, "KOKORO_SOCKET": str(speaker.socket)}
    result = say(["--no-autostart", "--daemon-play", "--stats", SHORT], env)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"played by kokorod \d+\.\d\d s \(done\)\n", result.stderr), \
        result.stderr
    seconds = float(result.stderr.split()[3])
    assert seconds > 0.5 and "chunks" not in result.stderr


def test_same_priority_interrupt_is_not_called_more_urgent(speaker: Any) -> None:
    env = {**os.environ, "KOKORO_SOCKET": str(speaker.socket)}
    long = " ".join(["A long message that keeps the daemon's speaker busy."] * 12)
    busy = subprocess.Popen([sys.executable, "-m", "kokorod_client.say", "--no-autostart",
                             "--daemon-play", long], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3.0)
        after = say(["--no-autostart", "--daemon-play", "--interrupt", SHORT], env)
        assert after.returncode == 0, after.stderr
        _, err = busy.communicate(timeout=60)
    finally:
        if busy.poll() is None:
            busy.kill()
    assert busy.returncode == 3, err
    assert err.strip() == ("kokoro-say: not all was spoken: interrupted by newer speech from "
                           "kokoro-say sent with --interrupt (mode interrupt)"), err


def test_daemon_play_prints_the_start_frames_note(speaker: Any) -> None:
    """Issue 36 row 13: the note reaches kokoro-say's stderr also when the daemon plays it
    (an English voice on Japanese text: which voice reads it)."""
    env = {**os.environ, "KOKORO_SOCKET": str(speaker.socket)}
    result = say(["--no-autostart", "--daemon-play", "-v", "af_heart", "今日は。"], env)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "Japanese" in line]
    assert len(notes) == 1 and "-v jf_alpha" in notes[0], result.stderr
