"""kokoro-say: speak text through the kokorod daemon, like macOS `say`.

    kokoro-say "Hello there."            speak (starts the daemon if needed)
    echo "Hello" | kokoro-say             text from stdin
    kokoro-say -f notes.md -o notes.wav   write a file instead of playing
    kokoro-say -v '?'                     list voices; -a '?' lists output devices
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from kokorod_client.audiofile import AudioFileWriter, UnsupportedFormat
from kokorod_client.client import Client, ConnectionLost, DaemonError, Stream
from kokorod_client.timeline import Timeline
from kokorod_common.player import NoAudioDevice, Player, SinkFactory
from kokorod_common.protocol import PRIORITIES, SPEED_RANGE, TEXT_FORMATS

PROG = "kokoro-say"
NATURAL_WPM = 170.0  # Kokoro at speed 1.0 speaks roughly this many words a minute
FALLBACK_WAV = "kokoro-say.wav"
MAX_AHEAD_S = 20.0  # audio held by the player before we stop reading the socket
TICK_S = 0.05

MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd", ".rmd")
CODE_SUFFIXES = (".py", ".js", ".ts", ".jsx", ".tsx", ".c", ".h", ".cc", ".cpp", ".hpp", ".rs",
                 ".go", ".java", ".kt", ".swift", ".rb", ".sh", ".bash", ".zsh", ".lua", ".el",
                 ".vim", ".cs", ".php", ".scala", ".hs", ".ml", ".sql", ".r", ".pl", ".toml",
                 ".yaml", ".yml", ".json")
LOCALES = {"en-us": "en_US", "en-gb": "en_GB", "es": "es_ES", "fr-fr": "fr_FR", "hi": "hi_IN",
           "it": "it_IT", "ja": "ja_JP", "pt-br": "pt_BR", "cmn": "zh_CN"}
# `say -v '?'` greets in each voice's own language.
GREETINGS = {"es": "¡Hola! Me llamo {}.", "fr": "Bonjour ! Je m'appelle {}.",
             "hi": "नमस्ते! मेरा नाम {} है।", "it": "Ciao! Mi chiamo {}.",
             "ja": "こんにちは！私の名前は{}です。", "pt": "Olá! Meu nome é {}.",
             "zh": "你好！我叫{}。"}

DESCRIPTION = """\
This tool uses the kokorod daemon to convert input text to audible speech and
either send it to the sound output device or save it to an audio file. The
daemon keeps the Kokoro model loaded, so speech starts at once; it is started
in the background the first time it is needed.

The text comes from the arguments, from a file (-f), or from standard input."""

EPILOG = """\
audio file formats:
  --file-format WAVE, AIFF, AIFC, FLAC, OGG or raw (default: from the -o extension:
  .wav .aiff .aif .aifc .flac .ogg .raw .pcm). --data-format takes say's notation:
  LEI16, BEI16, LEF32, BEF32, I24, F32, UI8 (LE/BE = byte order; @24000 may follow;
  Kokoro speaks at 24000 Hz and other rates are refused), or s16 / f32. Raw files are
  headerless samples, little-endian unless BE is given.

text formats:
  plain (numbers, dates, units and abbreviations in words), markdown (read as prose:
  no '#' or '*', links by their text), code (snake_case and camelCase split, symbols
  spoken). -f guesses from the file's extension.

without a sound device:
  the audio is written to ./kokoro-say.wav (or the -o file) and a notice says so.

examples:
  kokoro-say Hello, World
  kokoro-say -v '?'
  kokoro-say -v af_bella -r 200 -o hi.aiff Hello
  kokoro-say -o hi.raw --data-format=LEF32 Hello
  kokoro-say -f README.md --progress
  git log -1 --format=%s | kokoro-say -i

environment:
  KOKORO_SOCKET (daemon socket), KOKORO_VOICE (default voice; daemon side),
  KOKORO_VERBOSE_LOGS=1 (debug logging)"""


class SayError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        usage=f"{PROG} [-v voice] [-r rate] [-o outfile [--file-format=fmt] "
              "[--data-format=fmt]] [-a device] [-f file | string ...] [-i] [--progress]",
        description=f"{PROG} - convert text to audible speech\n\n{DESCRIPTION}",
        epilog=EPILOG,
    )
    p.add_argument("text", nargs="*", help="text to speak (default: -f, or standard input)")
    p.add_argument("-f", "--input-file", metavar="file",
                   help="read the text from file ('-' for standard input)")
    p.add_argument("-v", "--voice", metavar="voice",
                   help="voice to use, or a blend 'af_bella:0.6,af_sky:0.4'; '?' lists the "
                        "installed voices")
    p.add_argument("--voices", action="store_true", help="list the installed voices and exit")
    p.add_argument("-r", "--rate", type=float, metavar="rate",
                   help=f"speech rate in words per minute (about {NATURAL_WPM:.0f} is normal; "
                        f"{SPEED_RANGE[0] * NATURAL_WPM:.0f}–{SPEED_RANGE[1] * NATURAL_WPM:.0f})")
    p.add_argument("--speed", type=float, help="speed factor 0.5–2.0 (alternative to -r)")
    p.add_argument("-o", "--output-file", metavar="outfile",
                   help="write the audio to outfile instead of playing it")
    p.add_argument("--file-format", metavar="fmt", help="format of the -o file (see below)")
    p.add_argument("--data-format", metavar="fmt", help="sample format of the -o file")
    p.add_argument("-a", "--audio-device", metavar="device",
                   help="output device, by number or (part of the) name; '?' lists them")
    p.add_argument("-i", "--interactive", action="store_true",
                   help="print each sentence as it is spoken")
    p.add_argument("--progress", action="store_true",
                   help="show a progress bar of the text spoken so far (on standard error)")
    p.add_argument("-l", "--lang", metavar="lang",
                   help="espeak language of the text (default: the voice's own, e.g. "
                        "en-us for af_*, en-gb for bf_*)")
    p.add_argument("--text-format", choices=TEXT_FORMATS,
                   help="how to read the text (default: from -f's extension, else plain)")
    p.add_argument("--no-normalize", action="store_true",
                   help="leave numbers, dates, units and abbreviations as written")
    p.add_argument("--priority", choices=PRIORITIES,
                   help="speech-dispatcher priority of this speech (default: text)")
    p.add_argument("--interrupt", action="store_true",
                   help="stop other kokoro-say speech first")
    p.add_argument("--daemon-play", action="store_true",
                   help="let the daemon play the audio (its queue and priorities apply)")
    p.add_argument("--stop", action="store_true",
                   help="stop speech the daemon plays for kokoro-say (with --all: everyone's) "
                        "and exit")
    p.add_argument("--all", action="store_true", help="with --stop: stop everyone's speech")
    p.add_argument("--prebuffer", type=int, default=2, metavar="N",
                   help="chunks to hold before playback starts (1–3 recommended, default 2)")
    p.add_argument("--chunk-ms", type=int, metavar="MS", help="chunk length, 20–500 ms")
    p.add_argument("--stats", action="store_true",
                   help="print timing, underrun and gap statistics to standard error")
    p.add_argument("--json-stats", action="store_true", help="print the statistics as JSON")
    p.add_argument("--socket", help="daemon socket (default: $KOKORO_SOCKET or per-user)")
    p.add_argument("--no-autostart", action="store_true",
                   help="fail instead of starting the daemon when it is not running")
    return p


def speed_from(args: argparse.Namespace) -> float:
    lo, hi = SPEED_RANGE
    if args.rate is not None:
        speed = args.rate / NATURAL_WPM
        if not lo <= speed <= hi:
            raise SayError(f"rate {args.rate:g} wpm is out of range; use "
                           f"{lo * NATURAL_WPM:.0f}–{hi * NATURAL_WPM:.0f}")
        return speed
    if args.speed is not None:
        if not lo <= args.speed <= hi:
            raise SayError(f"speed {args.speed:g} is out of range; use {lo}–{hi}")
        return float(args.speed)
    return 1.0


def read_text(args: argparse.Namespace) -> str:
    if args.input_file and args.input_file != "-":
        try:
            return Path(args.input_file).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise SayError(f"cannot read {args.input_file}: {exc.strerror}") from None
    if args.text and args.input_file != "-":
        return " ".join(args.text)
    if sys.stdin is None or (sys.stdin.isatty() and args.input_file != "-"):
        raise SayError("no text given; pass it as arguments, with -f FILE, or on stdin")
    return sys.stdin.read()


def text_format_for(args: argparse.Namespace) -> str:
    if args.text_format:
        return str(args.text_format)
    suffix = Path(args.input_file).suffix.lower() if args.input_file else ""
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown"
    return "code" if suffix in CODE_SUFFIXES else "plain"


def print_voices(client: Client) -> None:
    """Like `say -v '?'`: name, locale, then a sample sentence after '#'."""
    for v in client.voices():
        name = v["name"]
        locale = LOCALES.get(str(v.get("language", "")).lower(), v.get("language") or "")
        given = name.split("_", 1)[-1].replace("_", " ").title()
        gender = f"({v['gender']}) " if v.get("gender") else ""
        greeting = GREETINGS.get(locale[:2], "Hello! My name is {}.").format(given)
        print(f"{name:<20} {locale:<8} # {gender}{greeting}")


def audio_device(value: str | None) -> int | str | None:
    if value is None:
        return None
    return int(value) if value.strip().isdigit() else value


def print_devices() -> None:
    """Like `say -a '?'`: the output devices, by number."""
    try:
        import sounddevice as sd

        devices = sd.query_devices()
        default_out = sd.default.device[1]
    except (OSError, Exception) as exc:  # PortAudio missing or failing
        raise SayError(f"cannot list audio devices: {exc}") from None
    found = False
    for index, dev in enumerate(devices):
        if dev["max_output_channels"] > 0:
            found = True
            mark = " (default)" if index == default_out else ""
            print(f"{index:>5} {dev['name']}{mark}")
    if not found:
        print("no audio output devices (use -o FILE to write a file)", file=sys.stderr)


class Output:
    """Where audio goes: the player, or a file; the file is the fallback."""

    def __init__(self, args: argparse.Namespace, sink: SinkFactory | None) -> None:
        self.player: Player | None = None
        self.writer: AudioFileWriter | None = None
        self.notice = ""
        path = args.output_file
        if path is None:
            try:
                self.player = Player(prebuffer=args.prebuffer, sink=sink,
                                     device=audio_device(args.audio_device))
            except NoAudioDevice as exc:
                if args.audio_device is not None:
                    raise SayError(f"audio device {args.audio_device!r}: {exc}; "
                                   f"'{PROG} -a ?' lists them") from None
                path = FALLBACK_WAV
                self.notice = (f"{PROG}: {exc}; wrote the audio to {path} instead "
                               "(use -o FILE to choose the file)")
        if path is not None:
            try:
                self.writer = AudioFileWriter(path, file_format=args.file_format,
                                              data_format=args.data_format)
            except UnsupportedFormat as exc:
                raise SayError(str(exc)) from None

    def position(self) -> int:
        """Samples heard so far (written, for a file)."""
        if self.player is not None:
            return self.player.buffer.stats.samples_played
        return self.writer.samples if self.writer is not None else 0

    def feed(self, seq: int, samples: Any, tick: Any) -> None:
        if self.player is not None:
            self.player.feed(seq, samples)
            while self.player.buffer.buffered_seconds() > MAX_AHEAD_S:
                tick()
                time.sleep(TICK_S)
        elif self.writer is not None:
            self.writer.write(samples)
        tick()

    def finish(self, tick: Any) -> None:
        if self.player is not None:
            self.player.finish()
            while not self.player.buffer.drained.wait(TICK_S):
                tick()
            self.player.wait()
        if self.writer is not None:
            self.writer.close()
        tick()

    def abort(self) -> None:
        if self.player is not None:
            self.player.stop()
        if self.writer is not None:
            self.writer.close()


class Feedback:
    """-i and --progress: sentences printed and a bar advanced as the audio is heard."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.timeline = Timeline(self._say if args.interactive else None)
        self.bar: Any = None
        self.open_line = False  # a sentence was printed in part
        if args.progress:
            from tqdm import tqdm

            self.bar = tqdm(total=1, unit="char", file=sys.stderr, desc=PROG, leave=True,
                            mininterval=0.25,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}")

    def _say(self, text: str, ends: bool) -> None:
        print(text, end="\n" if ends else " ", flush=True)
        self.open_line = not ends

    def started(self, stream: Stream) -> None:
        chars = (stream.started or {}).get("chars")
        if self.bar is not None and chars:
            self.bar.total = int(chars)
            self.timeline.total_chars = int(chars)

    def tick(self, played: int) -> None:
        self.timeline.advance(played)
        if self.bar is not None and self.timeline.total_chars:
            heard = min(self.timeline.total_chars, self.timeline.chars_at(played))
            if heard > self.bar.n:
                self.bar.update(heard - self.bar.n)  # tqdm redraws at most every 0.25 s

    def done(self, total_samples: int) -> None:
        self.timeline.finish(total_samples)
        self.timeline.advance(total_samples)
        if self.open_line:
            print(flush=True)
        if self.bar is not None:
            self.bar.update(self.bar.total - self.bar.n)
            self.bar.close()


def speak(args: argparse.Namespace, client: Client, text: str, speed: float,
          sink: SinkFactory | None, started: float) -> dict[str, Any]:
    # Ask first, then open the audio device while the daemon synthesizes: PortAudio's
    # start-up (device enumeration) then overlaps the wait instead of adding to it.
    stream: Stream = client.synthesize(
        text, voice=args.voice, speed=speed, lang=args.lang, chunk_ms=args.chunk_ms,
        text_format=text_format_for(args), priority=args.priority,
        mode="interrupt" if args.interrupt else None,
        normalize=False if args.no_normalize else None)
    feedback = Feedback(args)
    stream.on_mark = feedback.timeline.add
    try:
        output = Output(args, sink)
    except BaseException:
        with contextlib.suppress(OSError):
            stream.cancel()
        raise
    first_chunk = None
    total = 0

    def tick() -> None:
        feedback.tick(output.position())

    try:
        for chunk in stream:
            if first_chunk is None:
                first_chunk = time.perf_counter()
                feedback.started(stream)
            total += chunk.samples.size
            output.feed(chunk.seq, chunk.samples, tick)
        feedback.timeline.finish(total)
        output.finish(tick)
        feedback.done(total)
    except KeyboardInterrupt:
        output.abort()
        with contextlib.suppress(OSError):
            stream.cancel()
        raise
    except BaseException:
        output.abort()
        raise
    if output.notice:
        print(output.notice, file=sys.stderr)
    stats: dict[str, Any] = {"end": vars(stream.end) if stream.end else None}
    if output.player is not None:
        pb = output.player.buffer.stats
        stats["playback"] = pb.summary()
        if pb.first_sound_at is not None:
            stats["first_sound_ms"] = round((pb.first_sound_at - started) * 1000, 1)
            # Wall clock, so a caller can measure from before this process started.
            stats["first_sound_unix"] = time.time() - (time.perf_counter() - pb.first_sound_at)
    if first_chunk is not None:
        stats["first_chunk_ms"] = round((first_chunk - started) * 1000, 1)
    return stats


def daemon_play(args: argparse.Namespace, client: Client, text: str,
                speed: float) -> dict[str, Any]:
    """--daemon-play: the daemon's speaker plays it; wait until it is done."""
    stream = client.speak(text, voice=args.voice, speed=speed, lang=args.lang,
                          text_format=text_format_for(args), priority=args.priority,
                          mode="interrupt" if args.interrupt else None,
                          normalize=False if args.no_normalize else None)
    try:
        for _ in stream:
            pass
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):
            stream.cancel()
        raise
    return {"end": vars(stream.end) if stream.end else None}


def run(argv: list[str] | None = None, sink: SinkFactory | None = None) -> int:
    started = time.perf_counter()
    args = build_parser().parse_args(argv)
    try:
        if args.audio_device == "?":
            print_devices()
            return 0
        speed = speed_from(args)
        listing = args.voices or args.voice == "?"
        text = "" if listing or args.stop else read_text(args)
        if not (listing or args.stop) and not text.strip():
            raise SayError("the text is empty")
        try:
            client = Client(args.socket, autostart=not args.no_autostart, client_name=PROG)
        except (FileNotFoundError, ConnectionRefusedError):
            raise SayError("kokorod is not running; start it with 'kokorod start' "
                           "(or drop --no-autostart)") from None
        except RuntimeError as exc:  # launcher.StartError
            raise SayError(str(exc)) from None
        with client:
            if listing:
                print_voices(client)
                return 0
            if args.stop:
                print(f"stopped {client.stop(everyone=args.all)}")
                return 0
            if args.daemon_play:
                stats = daemon_play(args, client, text, speed)
            else:
                stats = speak(args, client, text, speed, sink, started)
        if args.stats or args.json_stats:
            out = json.dumps(stats) if args.json_stats else _human(stats)
            print(out, file=sys.stderr)
        return 0
    except KeyboardInterrupt:
        return 130
    except DaemonError as exc:
        print(f"{PROG}: {exc.message} [{exc.code}]", file=sys.stderr)
        return 1
    except ConnectionLost as exc:
        print(f"{PROG}: {exc}; try again (the daemon restarts on demand)", file=sys.stderr)
        return 1
    except SayError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1


def _human(stats: dict[str, Any]) -> str:
    lines = []
    end = stats.get("end") or {}
    if "first_chunk_ms" in stats:
        lines.append(f"first chunk      {stats['first_chunk_ms']:.0f} ms after start")
    if "first_sound_ms" in stats:
        lines.append(f"first sound      {stats['first_sound_ms']:.0f} ms after start")
    if end:
        lines.append(f"audio            {end['audio_seconds']:.2f} s in {end['chunks']} chunks")
    pb = stats.get("playback")
    if pb:
        lines.append(f"underruns        {pb['underruns']} ({pb['underrun_seconds']} s)")
        lines.append(f"arrival gaps     median {pb['gap_median_ms']} ms, max {pb['gap_max_ms']} ms")
    return "\n".join(lines)


INTERRUPT_GRACE_S = 5.0


def exit_if_interrupt_hangs(grace: float = INTERRUPT_GRACE_S) -> None:
    """Ctrl-C always ends kokoro-say: normally KeyboardInterrupt stops the player, cancels
    the request and exits 130 at once; should anything hang on the way (an audio device
    that does not stop, a call stuck in C where Python's handler cannot run), a watcher
    thread, woken by the signal itself through the wakeup fd, exits 130 after `grace`."""
    import signal
    import threading

    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except ValueError:  # not the main thread (embedded use): nothing to guard
        return

    def watch() -> None:
        while signal.SIGINT not in os.read(read_fd, 64):
            pass
        time.sleep(grace)
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        os._exit(130)

    threading.Thread(target=watch, name="interrupt-watch", daemon=True).start()


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    exit_if_interrupt_hangs()
    sys.exit(run())


if __name__ == "__main__":
    main()
