"""The user lexicon and inline phonemes: entries read and checked (a bad one named by its
line, the others applied), matched by case rule and language, written by `kokorod
lexicon`, and heard at once by a running daemon — the front's phonemes and the audio
change without a restart (the caches key by the reading), word marks still point at
the written words."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import DaemonProc, kokorod_cli, raw_conn, short_tmpdir, start_daemon
from kokoro_onnx.tokenizer import Tokenizer

from kokorod.synth import overrides
from kokorod.synth.lexicon import Lexicon, read

VOCAB = dict(Tokenizer().vocab)  # the model's phoneme set


def lexicon(tmp_path: Path, text: str) -> Lexicon:
    path = tmp_path / "lexicon.toml"
    path.write_text(text, encoding="utf-8")
    return Lexicon(path, VOCAB)


def readings(marked: str) -> list[tuple[str, str | None, str | None]]:
    return [tuple(p) for p in overrides.pieces(marked) if p.phonemes or p.spelling]


def test_entries_apply_by_word_case_and_language(tmp_path: Path) -> None:
    lex = lexicon(tmp_path, '[en]\nKokoro = "/kˈOkəɹO/"\nnginx = "engine x"\n'
                            '"New York" = "/nuː jˈɔːk/"\n'
                            'SQL = { say = "sequel", case = "exact" }\n'
                            '["en-gb"]\nKokoro = "/kˈəʊkəɹəʊ/"\n["*"]\nGIF = "jif"\n')
    out = lex.apply("Kokoro, kokoro and KokoroX; nginx in New  York; SQL not sql; GIF.", "en-us")
    assert readings(out) == [("Kokoro", "kˈOkəɹO", None), ("kokoro", "kˈOkəɹO", None),
                             ("nginx", None, "engine x"), ("New  York", "nuː jˈɔːk", None),
                             ("SQL", None, "sequel"), ("GIF", None, "jif")]
    assert overrides.visible(out) == \
        "Kokoro, kokoro and KokoroX; nginx in New  York; SQL not sql; GIF."
    assert readings(lex.apply("Kokoro", "en-gb")) == [("Kokoro", "kˈəʊkəɹəʊ", None)]
    assert readings(lex.apply("Kokoro GIF", "fr-fr")) == [("GIF", None, "jif")]


def test_a_bad_entry_is_named_by_its_line_and_the_others_apply(tmp_path: Path) -> None:
    path = tmp_path / "lexicon.toml"
    path.write_text('[en]\ngood = "/ɡʊd/"\nbad = "/b§d/"\nempty = ""\nalso = "fine"\n')
    entries, warnings = read(path, VOCAB)
    assert [e.written for e in entries] == ["good", "also"]
    assert any(":3:" in w and "§" in w for w in warnings), warnings
    assert any(":4:" in w for w in warnings), warnings
    path.write_text("[en\nbroken")
    entries, warnings = read(path, VOCAB)
    assert entries == [] and "not valid TOML" in warnings[0]


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    lex = lexicon(tmp_path, '[en]\nword = "/wɜd/"\n')
    assert readings(lex.apply("word", "en-us")) == [("word", "wɜd", None)]
    (tmp_path / "lexicon.toml").write_text('[en]\nword = "/wˈɜːd/"\n')
    assert readings(lex.apply("word", "en-us")) == [("word", "wˈɜːd", None)]
    (tmp_path / "lexicon.toml").unlink()
    assert lex.apply("word", "en-us") == "word"


# ---------------------------------------------------------------- through the daemon
@pytest.fixture(scope="module")
def lex_daemon(data_dir: Path) -> Iterator[tuple[DaemonProc, Path]]:
    run = short_tmpdir("kl")
    path = run / "lexicon.toml"
    handle = start_daemon(run / "k.sock", data_dir, KOKORO_LEXICON=str(path))
    yield handle, path
    handle.stop()
    shutil.rmtree(run, ignore_errors=True)


def ask(sock: Path, op: str, text: str, **fields: Any) -> list[dict[str, Any]]:
    with raw_conn(sock) as conn:
        conn.send({"op": op, "id": 1, "text": text, **fields})
        if op == "phonemes":
            return [conn.recv()]
        return conn.until_final(1)


def audio_of(frames: list[dict[str, Any]]) -> Any:
    assert frames[-1]["op"] == "end", frames[-1]
    return np.concatenate([np.frombuffer(f["pcm"], np.float32)
                           for f in frames if f["op"] == "chunk"])


def test_a_lexicon_entry_is_heard_at_once(lex_daemon: tuple[DaemonProc, Path]) -> None:
    daemon, path = lex_daemon
    text = "Please say Kubernetes twice."
    before = ask(daemon.socket, "phonemes", text)[0]
    heard = audio_of(ask(daemon.socket, "synthesize", text))  # now in the audio cache
    env = {"KOKORO_LEXICON": str(path)}
    done = kokorod_cli("lexicon", "add", "Kubernetes", "/kˈuːbənˌɛtiːz/", env=env)
    assert done.returncode == 0, done.stderr
    after = ask(daemon.socket, "phonemes", text)[0]
    assert "kˈuːbənˌɛtiːz" in after["phonemes"] and "kˈuːbənˌɛtiːz" not in before["phonemes"]
    assert after["lexicon"]["entries"] == 1 and after["text"] == text
    frames = ask(daemon.socket, "synthesize", text, marks="word")
    now = audio_of(frames)
    assert now.size != heard.size or not np.allclose(now, heard, atol=1e-3)
    words = [f["text"] for f in frames if f.get("kind") == "word"]
    assert words == ["Please", "say", "Kubernetes", "twice"]  # still the written words
    listed = kokorod_cli("lexicon", "list", "--json", env=env)
    assert '"written": "Kubernetes"' in listed.stdout
    assert kokorod_cli("lexicon", "remove", "Kubernetes", env=env).returncode == 0
    assert ask(daemon.socket, "phonemes", text)[0]["phonemes"] == before["phonemes"]


def test_a_bad_entry_is_reported_and_the_rest_serve(lex_daemon: tuple[DaemonProc, Path]
                                                    ) -> None:
    daemon, path = lex_daemon
    path.write_text('[en]\nalpha = "/ˈælfə§/"\nbeta = "bay tah"\n', encoding="utf-8")
    try:
        reply = ask(daemon.socket, "phonemes", "alpha beta")[0]
        assert any(":2:" in w and "§" in w for w in reply["lexicon"]["warnings"])
        plain = ask(daemon.socket, "phonemes", "bay tah")[0]["phonemes"]
        assert reply["phonemes"].endswith(plain)
        bad = kokorod_cli("lexicon", "add", "gamma", "/ɡ§/", env={"KOKORO_LEXICON": str(path)})
        assert bad.returncode == 2 and "§" in bad.stderr and "Traceback" not in bad.stderr
    finally:
        path.unlink()


def test_inline_phonemes_in_plain_text(lex_daemon: tuple[DaemonProc, Path]) -> None:
    daemon, _ = lex_daemon
    text = "I like [Kokoro](/kˈOkəɹO/) a lot."
    reply = ask(daemon.socket, "phonemes", text, text_format="plain+ipa")[0]
    assert "kˈOkəɹO" in reply["phonemes"] and reply["text"] == "I like Kokoro a lot."
    frames = ask(daemon.socket, "synthesize", text, text_format="plain+ipa", marks="word")
    assert audio_of(frames).size > 24000
    assert [f["text"] for f in frames if f.get("kind") == "word"] == \
        ["I", "like", "Kokoro", "a", "lot"]
    plain = ask(daemon.socket, "phonemes", text)[0]  # not asked for: read as written
    assert "kˈOkəɹO" not in plain["phonemes"]
    bad = ask(daemon.socket, "synthesize", "[x](/k§/)", text_format="plain+ipa")
    assert bad[-1]["code"] == "bad_phonemes"


def test_lexicon_say_prints_the_current_reading(lex_daemon: tuple[DaemonProc, Path]) -> None:
    daemon, path = lex_daemon
    env = {"KOKORO_LEXICON": str(path), "KOKORO_SOCKET": str(daemon.socket)}
    before = kokorod_cli("lexicon", "say", "--phonemes", "Kokoro", env=env)
    assert before.returncode == 0 and before.stdout.startswith("Kokoro: /"), before.stderr
    assert kokorod_cli("lexicon", "add", "Kokoro", "/kˈOkəɹO/", env=env).returncode == 0
    try:
        after = kokorod_cli("lexicon", "say", "--phonemes", "Kokoro", env=env)
        assert after.stdout.strip() == "Kokoro: /kˈOkəɹO/" != before.stdout.strip()
    finally:
        path.unlink()
    gone = kokorod_cli("lexicon", "say", "--phonemes", "x",
                       env={**env, "KOKORO_SOCKET": str(path.parent / "none.sock")})
    assert gone.returncode == 1 and "not running" in gone.stderr
