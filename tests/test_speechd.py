"""sd_kokoro, kokorod's speech-dispatcher module: the protocol without the server, then a
real speech-dispatcher of its own per test (private HOME and runtime dir, ALSA's file sink),
driven by spd-say and by python3-speechd as clients nobody on this team wrote."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np
import pytest
from helpers import REPO, DaemonProc, raw_conn, short_tmpdir, start_daemon, stream_audio
from testkit.speechd_setup import Speechd, start_speechd, stop_speechd

from kokorod_client import sd_protocol as sdp
from kokorod_client.sd_kokoro import pieces
from kokorod_client.sd_settings import choose_voice, gain_for, speed_for

SERVER_SCALE = 0.925  # speech-dispatcher plays server audio at this amplitude (volume 85)
LONG = " ".join(f"This is sentence number {i} of a text long enough to be stopped midway."
                for i in range(12))


# ---------------------------------------------------------------- the protocol, no server


def test_audio_escaping_round_trips_every_byte() -> None:
    pcm = bytes(range(256)) * 3 + b"\x7d\n\x7d\x7d\n\n"
    escaped = sdp.escape_audio(pcm)
    assert b"\n" not in escaped and sdp.unescape_audio(escaped) == pcm
    frames = sdp.audio_frames(pcm * 20, 24_000)
    assert len(frames) > 1 and all(f.endswith(b"\n705 AUDIO\n") for f in frames)
    fields, data = sdp.parse_audio_frame(frames[0])
    assert fields["sample_rate"] == "24000" and int(fields["num_samples"]) * 2 == len(data)
    assert b"".join(sdp.parse_audio_frame(f)[1] for f in frames) == pcm * 20


def test_data_lines_and_replies() -> None:
    assert sdp.undot("..leading dot") == ".leading dot" and sdp.undot(".x") == ".x"
    assert sdp.reply(200, "a", "b", "OK DONE") == "200-a\n200-b\n200 OK DONE\n"
    assert sdp.settings(["rate=20", "voice=male1", "junk"]) == {"rate": "20", "voice": "male1"}
    assert sdp.key_text("shift_a") == "shift a" and sdp.key_text("space") == "space"


def test_ssml_marks_split_the_message_into_sentences() -> None:
    speech = sdp.read_ssml('<speak>Tom &amp; Jerry ran.<mark name="__spd_1"/> They '
                           '<mark name="w2"/>hid.<mark name="__spd_2"/></speak>')
    assert speech.text == "Tom & Jerry ran. They hid."
    assert [name for _, name in speech.marks] == ["__spd_1", "w2", "__spd_2"]
    parts = pieces(speech)
    assert [p.text.strip() for p in parts] == ["Tom & Jerry ran.", "They hid."]
    assert parts[0].end_marks == ["__spd_1"] and parts[1].inner == [(6, "w2")]
    assert pieces(sdp.read_ssml("plain text, no tags"))[0].text == "plain text, no tags"


def test_settings_map_to_kokoro() -> None:
    assert speed_for(0) == 1.0 and speed_for(100) == 2.0 and speed_for(-100) == 0.5
    assert speed_for(300) == 2.0 and gain_for(100) == 1.0 and gain_for(-100) == 0.0
    voices = [{"name": n, "language": lang, "gender": g} for n, lang, g in [
        ("af_alloy", "en-us", "female"), ("af_heart", "en-us", "female"),
        ("am_adam", "en-us", "male"), ("bf_emma", "en-gb", "female"),
        ("jf_alpha", "ja", "female")]]
    assert choose_voice(voices, "female1", "en", "af_heart") == "af_heart"  # default first
    assert choose_voice(voices, "female2", "en-US", "af_heart") == "af_alloy"
    assert choose_voice(voices, "male1", "en") == "am_adam"
    assert choose_voice(voices, "female1", "en-gb") == "bf_emma"
    assert choose_voice(voices, "child_female", "ja") == "jf_alpha"
    assert choose_voice(voices, "male1", "fr") is None  # the daemon's default then


def split_audio(out: bytes) -> tuple[bytes, bytes]:
    """A module's stdout → (its server-audio samples, every other line)."""
    pcm, events = b"", b""
    while (start := out.find(b"705-bits=16\n")) >= 0:
        events += out[:start]
        data = out.index(b"705-AUDIO\0", start)
        end = out.index(b"\n705 AUDIO\n", data) + len(b"\n705 AUDIO\n")  # data has no \n
        pcm += sdp.parse_audio_frame(out[start:end])[1]
        out = out[end:]
    return pcm, events + out


def read_until(stream: IO[bytes], ending: bytes) -> bytes:
    """The module's output up to the line `ending` (the server, too, waits for it)."""
    out = b""
    while not out.endswith(ending):
        line = stream.readline()
        assert line, out[-300:]
        out += line
    return out


def test_module_alone_speaks_kokorods_audio(daemon: DaemonProc) -> None:
    """The module driven through its pipes as speech-dispatcher would (no server)."""
    script = ("INIT\nAUDIO\naudio_output_method=server\n.\nLIST VOICES\nSET\nrate=0\n"
              "voice=female1\nlanguage=en\nsynthesis_voice=NULL\n.\nSPEAK\n"
              '<speak>One small sentence.<mark name="__spd_1"/></speak>\n.\n')
    env = {**os.environ, "KOKORO_SOCKET": str(daemon.socket), "PYTHONPATH": str(REPO)}
    module = subprocess.Popen([sys.executable, "-m", "kokorod_client.sd_kokoro", "none.conf"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert module.stdin is not None and module.stdout is not None
    module.stdin.write(script.encode())
    module.stdin.flush()
    out = read_until(module.stdout, b"702 END\n")  # the server sends nothing more until then
    module.stdin.write(b"KEY\nshift_a\n.\n")  # keys are spoken too
    module.stdin.flush()
    key = read_until(module.stdout, b"702 END\n")
    assert key.startswith(b"202 OK RECEIVING MESSAGE\n200 OK SPEAKING\n701 BEGIN\n")
    assert len(split_audio(key)[0]) > 0.2 * 24_000 * 2  # "shift a" is heard
    module.stdin.write(b"QUIT\n")
    module.stdin.close()
    out += module.stdout.read()
    module.wait(30)
    pcm, events = split_audio(out)
    assert events.startswith(b"299-") and b"299 OK LOADED SUCCESSFULLY" in events
    assert b"200-af_heart\ten-us\tfemale" in events and b"203 OK AUDIO INITIALIZED" in events
    assert events.endswith(b"200 OK SPEAKING\n701 BEGIN\n700-__spd_1\n700 INDEX MARK\n"
                           b"702 END\n210 OK QUIT\n")  # the mark after the sentence's audio
    heard = np.frombuffer(pcm, "<i2").astype(np.float32) / 32767
    direct = stream_audio(daemon.socket, "direct", "One small sentence.")
    assert abs(heard.size - direct.size) < 0.02 * direct.size
    assert np.corrcoef(heard[:direct.size], direct[:heard.size])[0, 1] > 0.99


# ---------------------------------------------------------------- a real speech-dispatcher


def _version() -> tuple[int, ...]:
    out = subprocess.run(["speech-dispatcher", "-v"], capture_output=True, text=True).stdout
    return tuple(int(x) for x in out.split()[1].split(".")[:2])


needs_speechd = pytest.mark.skipif(
    shutil.which("speech-dispatcher") is None or shutil.which("spd-say") is None,
    reason="speech-dispatcher is not installed (.ci/run installs it)")


@pytest.fixture
def speechd(daemon: DaemonProc, data_dir: Path) -> Iterator[Speechd]:
    if shutil.which("speech-dispatcher") is None:
        pytest.skip("speech-dispatcher is not installed (.ci/run installs it)")
    sd = start_speechd(daemon.socket, data_dir)
    yield sd
    stop_speechd(sd)


def requests_seen(daemon: DaemonProc) -> dict[str, int]:
    with raw_conn(daemon.socket) as conn:
        conn.send({"op": "status", "id": "s"})
        st = conn.recv()
    return {k: st[k] for k in ("requests", "completed", "cancelled")}


@needs_speechd
def test_spd_say_speaks_with_kokorod(speechd: Speechd, daemon: DaemonProc) -> None:
    text = "Speech dispatcher now speaks with Kokoro."
    result = speechd.say("-w", text)
    assert result.returncode == 0, result.stderr
    listing = speechd.say("-o", "kokoro", "-L")
    assert "af_heart" in listing.stdout and "bf_emma" in listing.stdout
    speechd.proc.send_signal(signal.SIGTERM)  # the server closes its PCM: the sink is whole
    speechd.proc.wait(10)
    heard = speechd.sink()
    direct = stream_audio(daemon.socket, "direct", text) * SERVER_SCALE
    assert abs(heard.size - direct.size) < 0.02 * direct.size, (heard.size, direct.size)
    n = min(heard.size, direct.size)
    assert np.corrcoef(heard[:n], direct[:n])[0, 1] > 0.99  # the same samples, in time
    assert abs(np.abs(heard).max() / np.abs(direct).max() - 1) < 0.02  # scaled as the server does


@needs_speechd
def test_cancel_ends_the_waiting_client_and_the_next_speaks(speechd: Speechd,
                                                            daemon: DaemonProc) -> None:
    before = requests_seen(daemon)
    waiting = speechd.start_say("-w", LONG)
    time.sleep(2.0)
    cancelled_at = time.monotonic()
    assert speechd.say("-C").returncode == 0
    waiting.wait(10)
    assert time.monotonic() - cancelled_at < 1.5
    assert speechd.say("-w", "And now the next one.").returncode == 0
    after = requests_seen(daemon)
    assert after["cancelled"] >= before["cancelled"] + 1  # the kokorod request was cancelled
    assert after["completed"] >= before["completed"] + 1


@needs_speechd
def test_priorities_are_speech_dispatchers(speechd: Speechd, daemon: DaemonProc) -> None:
    text = speechd.start_say("-w", "-P", "text", LONG)
    time.sleep(2.0)
    started = time.monotonic()
    important = speechd.say("-w", "-P", "important", "Important news.")
    assert important.returncode == 0
    text.wait(10)
    assert time.monotonic() - started < 8  # the long text did not run to its end
    before = requests_seen(daemon)
    message = speechd.start_say("-w", "-P", "message", LONG)
    time.sleep(2.0)
    speechd.say("-P", "notification", "A notification nobody will hear.")
    time.sleep(1.0)
    speechd.say("-C")
    message.wait(10)
    log = speechd.module_log()
    assert "This is sentence number 0" in log and "notification nobody" not in log
    assert requests_seen(daemon)["requests"] > before["requests"]


MARKS_CLIENT = """
import json, sys, threading, speechd
done = threading.Event()
marks = []
def callback(kind, index_mark=None):
    if kind == speechd.CallbackType.INDEX_MARK:
        marks.append(index_mark)
    elif kind in (speechd.CallbackType.END, speechd.CallbackType.CANCEL):
        done.set()
client = speechd.SSIPClient("kokorod-test")
client.set_output_module("kokoro")
client.set_data_mode(speechd.DataMode.SSML)
client.speak('<speak>First <mark name="one"/>words, then <mark name="two"/>more words.</speak>',
             callback=callback, event_types=(speechd.CallbackType.INDEX_MARK,
             speechd.CallbackType.END, speechd.CallbackType.CANCEL))
done.wait(60)
client.close()
print(json.dumps(marks))
"""


@needs_speechd
def test_ssml_marks_come_back_to_a_python3_speechd_client(speechd: Speechd) -> None:
    out = subprocess.run(["/usr/bin/python3", "-c", MARKS_CLIENT], env=speechd.env,
                         capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    marks = json.loads(out.stdout)
    assert [m for m in marks if not m.startswith("__spd_")] == ["one", "two"], marks


@needs_speechd
def test_kokorod_killed_mid_speech_leaves_speech_dispatcher_serving(data_dir: Path) -> None:
    run = short_tmpdir("kk")
    own = start_daemon(run / "k.sock", data_dir, KOKORO_WARMUP="0")
    sd = start_speechd(own.socket, data_dir)
    try:
        waiting = sd.start_say("-w", LONG)
        time.sleep(2.5)
        own.proc.kill()
        own.proc.wait(10)
        waiting.wait(20)  # the module reported the message over; the client is not stuck
        assert sd.proc.poll() is None
        assert "kokorod failed mid-message" in sd.module_log()
        listing = sd.say("-O")
        assert listing.returncode == 0 and "kokoro" in listing.stdout
    finally:
        stop_speechd(sd)
        own.stop()
        for extra in run.glob("*.pid"):  # a daemon the module may have started again
            with contextlib.suppress(ValueError, OSError):
                os.kill(int(extra.read_text()), signal.SIGTERM)
        shutil.rmtree(run, ignore_errors=True)


PAUSE_CLIENT = """
import json, sys, threading, time, speechd
events = []
seen = {kind: threading.Event() for kind in ("pause", "resume", "end", "cancel")}
def callback(kind, index_mark=None):
    events.append(str(kind))
    if str(kind) in seen:
        seen[str(kind)].set()
client = speechd.SSIPClient("kokorod-test")
client.set_output_module("kokoro")
client.speak(sys.argv[1], callback=callback, event_types=(speechd.CallbackType.PAUSE,
             speechd.CallbackType.RESUME, speechd.CallbackType.END,
             speechd.CallbackType.CANCEL))
time.sleep(2.0)
client.pause()
if seen["pause"].wait(5):  # at the next sentence end
    client.resume()
    seen["resume"].wait(5)
    time.sleep(1.0)
client.cancel()
seen["cancel"].wait(3)
client.close()
print(json.dumps(events))
"""


@needs_speechd
def test_pause_stops_at_a_sentence_end_and_resume_goes_on(speechd: Speechd) -> None:
    # Short sentences: the next sentence end comes soon after PAUSE, on any CPU.
    text = " ".join(f"Sentence {i} is short." for i in range(40))
    out = subprocess.run(["/usr/bin/python3", "-c", PAUSE_CLIENT, text], env=speechd.env,
                         capture_output=True, text=True, timeout=120)
    assert "paused after mark __spd_" in speechd.module_log()  # the module's part, any version
    if _version() < (0, 12):
        pytest.xfail("speech-dispatcher < 0.12 does not pass a server-audio PAUSE on to the "
                     "client (brailcom/speechd#813, fixed in 0.12.0)")
    events = json.loads(out.stdout or "[]")
    assert events[:2] == ["pause", "resume"] and events[-1] == "cancel", (events, out.stderr)


def test_init_fails_cleanly_when_kokorod_cannot_start(run_dir: Path) -> None:
    """speech-dispatcher then uses another module; nothing waits for long."""
    env = {**os.environ, "KOKORO_SOCKET": str(run_dir / "none.sock"), "PYTHONPATH": str(REPO),
           "KOKORO_MODEL_PATH": str(run_dir / "missing.onnx")}
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "kokorod_client.sd_kokoro", "none.conf"],
                         input=b"INIT\nQUIT\n", capture_output=True, env=env, timeout=120)
    assert out.stdout.startswith(b"399-") and b"399 ERR CANT INIT MODULE\n" in out.stdout
    assert b"missing.onnx" in out.stdout  # says why
    assert time.monotonic() - started < 30


@pytest.mark.model  # its client autostarts a daemon (or tune builds engines)
def test_init_answers_at_once_while_kokorod_starts(run_dir: Path, data_dir: Path,
                                                   tmp_path: Path) -> None:
    """speech-dispatcher waits for INIT: a cold daemon is started, not waited for; Kokoro's
    voices are listed meanwhile, and the first message waits for the daemon."""
    sock = run_dir / "cold.sock"
    env = {**os.environ, "KOKORO_SOCKET": str(sock), "PYTHONPATH": str(REPO),
           "KOKORO_DATA_DIR": str(data_dir), "XDG_STATE_HOME": str(tmp_path)}
    module = subprocess.Popen([sys.executable, "-m", "kokorod_client.sd_kokoro", "none.conf"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert module.stdin is not None and module.stdout is not None
    try:
        started = time.monotonic()
        module.stdin.write(b"INIT\nLIST VOICES\n")
        module.stdin.flush()
        out = read_until(module.stdout, b"200 OK VOICE LIST SENT\n")
        assert time.monotonic() - started < 10  # not the daemon's whole start
        assert b"299 OK LOADED SUCCESSFULLY" in out and b"200-af_heart\ten-us\tfemale" in out
        module.stdin.write(b"SPEAK\n<speak>Now it speaks.</speak>\n.\n")
        module.stdin.flush()
        spoken = read_until(module.stdout, b"702 END\n")
        assert len(split_audio(spoken)[0]) > 24_000  # over half a second of speech
    finally:
        module.kill()
        subprocess.run([sys.executable, "-m", "kokorod", "stop"], env=env, cwd=REPO,
                       capture_output=True, timeout=60)


def _module_events(daemon: DaemonProc, script: str) -> list[tuple[str, int]]:
    """Run the module alone on `script`; its 700 marks with the samples passed on before
    each, and ("END", samples) at 702 END."""
    env = {**os.environ, "KOKORO_SOCKET": str(daemon.socket), "PYTHONPATH": str(REPO)}
    module = subprocess.Popen([sys.executable, "-m", "kokorod_client.sd_kokoro", "none.conf"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert module.stdin is not None and module.stdout is not None
    module.stdin.write(("INIT\nAUDIO\naudio_output_method=server\n.\n" + script).encode())
    module.stdin.flush()
    out = read_until(module.stdout, b"702 END\n")
    module.stdin.write(b"QUIT\n")
    module.stdin.close()
    module.wait(30)
    events, samples = [], 0
    while out:
        if out.startswith(b"705-bits=16\n"):
            end = out.index(b"\n705 AUDIO\n") + len(b"\n705 AUDIO\n")
            samples += len(sdp.parse_audio_frame(out[:end])[1]) // 2
            out = out[end:]
            continue
        line, _, out = out.partition(b"\n")
        if line.startswith(b"700-"):
            events.append((line[4:].decode(), samples))
        elif line == b"702 END":
            events.append(("END", samples))
    return events


def test_marks_inside_a_sentence_come_back_at_their_words(daemon: DaemonProc) -> None:
    """speech-dispatcher's SSML marks go to kokorod as SSML: each 700 INDEX MARK follows
    the audio up to the sample where kokorod says its next word starts."""
    said = ('<speak>One <mark name="a"/>small <mark name="b"/>sentence here.'
            '<mark name="__spd_1"/></speak>')
    events = _module_events(daemon, "SET\nrate=0\nsynthesis_voice=NULL\n.\nSPEAK\n"
                                    f"{said}\n.\n")
    with raw_conn(daemon.socket) as conn:
        conn.send({"op": "synthesize", "id": 1, "format": "s16", "text": '<speak>One <mark '
                   'name="a"/>small <mark name="b"/>sentence here.</speak>'})
        frames = conn.until_final(1)
    exact = {f["name"]: f["sample"] for f in frames if f.get("kind") == "ssml"}
    at = dict(events)
    assert [name for name, _ in events] == ["a", "b", "__spd_1", "END"]
    for name in ("a", "b"):  # passed on with the chunk that holds the word's first sample
        assert exact[name] < at[name] <= exact[name] + 1200, (name, exact, events)
    assert at["__spd_1"] == at["END"] == frames[-1]["samples"]


def test_spelling_mode_reads_letters(daemon: DaemonProc) -> None:
    spelled = _module_events(daemon, "SET\nspelling_mode=on\n.\nSPEAK\nkokorod\n.\n")
    plain = _module_events(daemon, "SET\nspelling_mode=off\n.\nSPEAK\nkokorod\n.\n")
    assert spelled[-1][1] > 1.5 * plain[-1][1]  # seven letter names, not one word


def test_punctuation_modes_and_marks_become_ssml() -> None:
    from kokorod_client.sd_punctuation import as_ssml, said

    text = "Hi, a@b & (c) e-mail 3.5."
    assert said(text, "none") == text
    assert said(text, "some") == "Hi, a at b and (c) e-mail 3.5."
    assert said(text, "most") == "Hi, a at b and left paren c right paren e-mail 3.5."
    assert said(text, "all").startswith("Hi comma, a at b and left paren")
    assert said(text, "all").rstrip().endswith("e-mail 3.5 dot.")
    ssml, fmt = as_ssml("One small, two & three.", [(4, "a"), (11, "b")], False, "all")
    assert fmt == "ssml" and ssml == ('<speak>One <mark name="a"/>small comma, '
                                      '<mark name="b"/>two and three dot. </speak>')
    assert as_ssml("Plain.", [], False, "none") == ("Plain.", None)
