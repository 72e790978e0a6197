"""sd_kokoro: kokorod as a speech-dispatcher output module, so spd-say, speechd-el, Orca
and browsers speak with Kokoro.

speech-dispatcher starts this as `sd_kokoro <config file>` and talks to it on
stdin/stdout (sd_protocol.py). The audio goes back as server audio: the server
plays it, with its own queue, priorities and audio output. Each message is read
from kokorod as a stream (s16, 24 kHz) and passed on as it comes, so speech starts
after the first chunk. The main thread reads stdin all the time, so STOP and PAUSE
arrive while a message is being spoken (by a worker thread): STOP cancels the
kokorod request and answers 703 STOP before any later audio; PAUSE ends at the next
sentence mark and answers 704 PAUSE.

Marks: speech-dispatcher puts `__spd_N` marks at sentence ends, clients may add
their own (Orca: one per word). A message is read sentence by sentence (one
request each, the next asked for as the previous ends, while its audio still
plays); a sentence mark goes out right after that sentence's audio. A sentence
with marks inside goes to kokorod as SSML with those marks, and each comes back
at the sample where its next word starts: it goes out once that audio has been
passed on. Spelling mode (`SET spelling_mode=on`) reads letter by letter; the
punctuation mode says marks by name (sd_punctuation.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from kokorod_client import sd_protocol as sdp
from kokorod_client.client import Client, Stream
from kokorod_client.sd_punctuation import as_ssml
from kokorod_client.sd_settings import choose_voice, gain_for, same_language, speed_for
from kokorod_common import launcher
from kokorod_common.command_line import run_main
from kokorod_common.messages import ConnectionLost, DaemonError
from kokorod_common.paths import resolve_socket
from kokorod_common.protocol import SAMPLE_RATE
from kokorod_common.punctuation import ends_sentence
from kokorod_common.voice_names import V1_VOICES, describe

log = logging.getLogger("sd_kokoro")

START_TIMEOUT_S = 60.0  # the first message waits this long for a daemon that is starting
INIT_WAIT_S = 3.0  # INIT gives a daemon it started this long to fail (not to load the model)
SENTENCE_GAP_S = 0.2  # between sentences read as separate requests (trimmed at both ends)


class ServerGone(Exception):
    """speech-dispatcher closed the module's standard output: nothing more can be said."""


@dataclass
class Piece:
    """One sentence of a message: its text, marks inside it, the mark that ends it."""

    text: str
    inner: list[tuple[int, str]] = field(default_factory=list)
    end_marks: list[str] = field(default_factory=list)


def pieces(speech: sdp.Speech) -> list[Piece]:
    """Split at speech-dispatcher's sentence marks and at marks after sentence punctuation."""
    out: list[Piece] = []
    start = 0
    inner: list[tuple[int, str]] = []
    for offset, name in speech.marks:
        before = speech.text[start:offset]
        if name.startswith("__spd_") or ends_sentence(before.rstrip()):
            if before.strip() or not out:
                out.append(Piece(before, inner))
            out[-1].end_marks.append(name)
            start, inner = offset, []
        else:
            inner.append((offset - start, name))
    rest = speech.text[start:]
    if rest.strip() or inner or not out:
        out.append(Piece(rest, inner))
    return out


class Module:
    """The module's state and its command loop; `connect` opens a kokorod Client."""

    def __init__(self, stdin: IO[str], stdout: IO[bytes],
                 connect: Callable[[], Client]) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.connect = connect
        self.client: Client | None = None
        self.voices: list[dict[str, Any]] = []
        self.set = {"rate": "0", "volume": "100", "voice": "female1", "language": "en",
                    "synthesis_voice": "NULL"}
        self._write_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._stream: Stream | None = None
        self._stop = threading.Event()
        self._pause = threading.Event()
        self._ended = threading.Event()  # nothing left to say about the current message
        self._ended.set()

    # ------------------------------------------------------------ io
    def write(self, data: str | bytes) -> None:
        with self._write_lock:
            try:
                self.stdout.write(data.encode() if isinstance(data, str) else data)
                self.stdout.flush()
            except (OSError, ValueError):  # a closed pipe (or file): the server has gone
                raise ServerGone from None

    def read_block(self) -> list[str]:
        lines = []
        for raw in self.stdin:
            line = raw.rstrip("\n").rstrip("\r")
            if line == sdp.BLOCK_END:
                break
            lines.append(sdp.undot(line))
        return lines

    # ------------------------------------------------------------ commands
    def run(self) -> None:
        """Answer commands until QUIT or the end of stdin; a server that has gone away
        (stdout closed) ends it quietly."""
        try:
            self._commands()
        except ServerGone:
            log.info("speech-dispatcher closed the pipe; exiting")
            self.stop()

    def _commands(self) -> None:
        for raw in self.stdin:
            command = raw.strip()
            verb = command.upper()
            if not verb:
                continue
            if verb == "QUIT":
                self.stop()
                self.write(sdp.reply(210, "OK QUIT"))
                return
            try:
                self.handle(verb, command)
            except ServerGone:
                raise
            except Exception as exc:  # the server must always get an answer
                log.exception("%s failed", verb)
                self.write(sdp.reply(300, f"ERR {type(exc).__name__}"))
        self.stop()

    def handle(self, verb: str, command: str) -> None:
        if verb == "INIT":
            self.init()
        elif verb == "AUDIO":  # each block comes after the module's "go ahead"
            self.write(sdp.reply(207, "OK RECEIVING AUDIO SETTINGS"))
            method = sdp.settings(self.read_block()).get("audio_output_method", "")
            if method == "server":
                self.write(sdp.reply(203, "OK AUDIO INITIALIZED"))
            else:
                self.write(sdp.reply(300, f"ERR ONLY SERVER AUDIO (not {method!r})"))
        elif verb == "SET":
            self.write(sdp.reply(203, "OK RECEIVING SETTINGS"))
            changed = sdp.settings(self.read_block())
            self.set.update(changed)
            log.debug("settings %s", changed)
            self.write(sdp.reply(203, "OK SETTINGS RECEIVED"))
        elif verb == "LOGLEVEL":
            self.write(sdp.reply(207, "OK RECEIVING LOGLEVEL SETTINGS"))
            self.read_block()
            self.write(sdp.reply(203, "OK LOGLEVEL SET"))
        elif verb.startswith("DEBUG"):
            self.write(sdp.reply(200, f"OK DEBUGGING {'ON' if ' ON' in verb else 'OFF'}"))
        elif verb.startswith("LIST VOICES"):
            self.list_voices(command.split()[2:])
        elif verb in ("SPEAK", "CHAR", "KEY", "SOUND_ICON"):
            self.write(sdp.reply(202, "OK RECEIVING MESSAGE"))
            self.speak(verb, self.read_block())
        elif verb == "STOP":
            self.stop()
        elif verb == "PAUSE":
            self._pause.set()
        else:
            self.write(sdp.reply(300, "ERR UNKNOWN COMMAND"))

    def init(self) -> None:
        """Connect to kokorod; if it is not running, start it without waiting for its model
        (speech-dispatcher waits for INIT): Kokoro's own voice list answers meanwhile, and
        the first message waits for the daemon. A daemon that cannot start at all fails
        INIT at once, so speech-dispatcher uses another module."""
        socket = resolve_socket()
        try:
            if not launcher.socket_is_live(socket):
                _start_in_background(socket)
            if launcher.socket_is_live(socket):
                self.client = self.connect()
                self.voices = self.client.voices()
                about = f"kokorod {self.client.server.get('daemon_version')}"
            else:
                self.voices = [describe(name) for name in V1_VOICES]
                about = "kokorod is starting"
        except Exception as exc:  # kokorod cannot start: let the server use another module
            log.error("kokorod is not available: %s", exc)
            self.write(sdp.reply(399, f"kokorod is not available: {exc}".replace("\n", " "),
                                 "ERR CANT INIT MODULE"))
            return
        self.write(sdp.reply(299, f"{about} with {len(self.voices)} voices",
                             "OK LOADED SUCCESSFULLY"))

    def list_voices(self, filters: list[str]) -> None:
        lang = filters[0].lower() if filters else ""
        rows = [f"{v['name']}\t{v.get('language') or 'none'}\t{v.get('gender') or 'none'}"
                for v in self.voices
                if not lang or same_language(str(v.get("language", "")), lang)]
        if not self.voices:
            self.write(sdp.reply(304, "CANT LIST VOICES"))
            return
        self.write(sdp.reply(200, *rows, "OK VOICE LIST SENT"))

    # ------------------------------------------------------------ speaking
    def speak(self, verb: str, data: list[str]) -> None:
        self._wait_idle()
        if verb == "SPEAK":
            speech = sdp.read_ssml("\n".join(data))
        elif verb == "KEY":
            speech = sdp.Speech(sdp.key_text(" ".join(data)))
        elif verb == "CHAR":  # one character, or a name such as "space" or "linefeed"
            speech = sdp.Speech(" ".join(data).strip() or "space")
        else:  # SOUND_ICON: no sounds of our own
            speech = sdp.Speech("")
        self.write(sdp.reply(200, "OK SPEAKING"))
        log.info("%s: %r, %d marks", verb.lower(), speech.text[:60], len(speech.marks))
        self._stop.clear()
        self._pause.clear()
        self._ended.clear()
        self._worker = threading.Thread(target=self._speak, args=(pieces(speech),),
                                        name="sd-kokoro-speak", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        """End the current message now (no reply: 703 STOP comes from the speaker)."""
        self._stop.set()
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.cancel()
        self._wait_idle()

    def _wait_idle(self) -> None:
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(10)

    def _voice(self) -> str | None:
        chosen = self.set.get("synthesis_voice", "NULL")
        if chosen and chosen.upper() != "NULL":
            return chosen
        default = str(self.client.server.get("default_voice", "")) if self.client else ""
        return choose_voice(self.voices, self.set.get("voice", ""),
                            self.set.get("language", ""), default)

    def _request(self, piece: Piece) -> Stream | None:
        if not piece.text.strip():
            return None
        if self.client is None or self.client.router.lost:
            self.client = self.connect()  # waits for a daemon that is still starting
            self.voices = self.client.voices()
        text, text_format = as_ssml(piece.text, piece.inner,
                                    self.set.get("spelling_mode", "off") == "on",
                                    self.set.get("punctuation_mode", "none"))
        return self.client.synthesize(text, fmt="s16", voice=self._voice(),
                                      speed=speed_for(int(self.set.get("rate", "0") or 0)),
                                      text_format=text_format)

    def _speak(self, todo: list[Piece]) -> None:
        gain = gain_for(int(self.set.get("volume", "100") or 100))
        stream: Stream | None = None
        try:
            self.write("701 BEGIN\n")
            stream = self._request(todo[0]) if todo else None
            for i, piece in enumerate(todo):
                if not self._say(piece, stream, gain):
                    self.write("703 STOP\n")
                    return
                stream = self._request(todo[i + 1]) if i + 1 < len(todo) else None
                if stream is not None and ends_sentence(piece.text.rstrip()):
                    self._audio(np.zeros(int(SENTENCE_GAP_S * SAMPLE_RATE), np.int16))
                for name in piece.end_marks:
                    self.write(sdp.reply(700, name, "INDEX MARK"))
                if self._pause.is_set() and piece.end_marks:
                    if stream is not None:
                        stream.cancel()
                    log.info("paused after mark %s", piece.end_marks[-1])
                    self.write("704 PAUSE\n")
                    return
            self.write("702 END\n")
        except ServerGone:
            self._server_gone(stream)
        except (ConnectionLost, OSError, DaemonError) as exc:
            log.error("kokorod failed mid-message: %s", exc)
            self.client = None
            with contextlib.suppress(ServerGone):
                self.write("702 END\n")
        finally:
            self._stream = None
            self._ended.set()

    def _server_gone(self, stream: Stream | None) -> None:
        """The server closed the pipe mid-message: stop asking kokorod for its audio."""
        log.info("speech-dispatcher closed the pipe mid-message")
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.cancel()

    def _say(self, piece: Piece, stream: Stream | None, gain: float) -> bool:
        """Pass one sentence's audio on as it streams; False if STOP came meanwhile."""
        self._stream = stream
        inner = list(piece.inner)
        sent = 0
        if stream is not None:
            for chunk in stream:
                if self._stop.is_set():
                    stream.cancel()
                    return False
                samples = np.frombuffer(chunk.pcm, dtype="<i2")
                if gain != 1.0:
                    samples = (samples * gain).astype("<i2")
                self._audio(samples)
                sent += samples.size
                placed = [m for m in stream.marks if m.kind == "ssml"]  # kokorod's places
                while inner and len(piece.inner) - len(inner) < len(placed) and \
                        placed[len(piece.inner) - len(inner)].sample < sent:
                    self.write(sdp.reply(700, inner.pop(0)[1], "INDEX MARK"))
            if stream.end is not None and stream.end.cancelled and self._stop.is_set():
                return False
        for _, name in inner:
            self.write(sdp.reply(700, name, "INDEX MARK"))
        return not self._stop.is_set()

    def _audio(self, samples: np.ndarray) -> None:
        for frame in sdp.audio_frames(samples.astype("<i2").tobytes(), SAMPLE_RATE):
            if self._stop.is_set():
                return
            self.write(frame)


def _start_in_background(socket: Path) -> None:
    """Spawn the daemon and give it INIT_WAIT_S: long enough to fail on a bad setting or a
    missing model (StartError, with its log), not to load the model."""
    proc = launcher.spawn(socket)
    try:
        launcher.wait_ready(socket, proc, INIT_WAIT_S)
    except launcher.StartError:
        if proc.poll() is not None and not launcher.instance_lock_held(socket):
            raise  # it exited: a restart will not help


def _connect() -> Client:
    return Client(autostart=True, client_name="speech-dispatcher", timeout=START_TIMEOUT_S)


def main() -> None:
    """Entry point: `sd_kokoro [config file]` (the config file is not needed)."""
    logging.basicConfig(level=logging.DEBUG if os.environ.get("KOKORO_VERBOSE_LOGS") == "1"
                        else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s sd_kokoro %(levelname)s %(message)s")
    stdin = open(sys.stdin.fileno(), encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115

    def body() -> int:
        Module(stdin, sys.stdout.buffer, _connect).run()
        return 0

    sys.exit(run_main("sd_kokoro", body))


if __name__ == "__main__":
    main()
