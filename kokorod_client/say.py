"""kokoro-say: speak text through the kokorod daemon, like macOS `say`.

    kokoro-say "Hello there."            speak (starts the daemon if needed)
    echo "Hello" | kokoro-say             text from stdin
    kokoro-say -f notes.txt -o notes.wav  write a file instead of playing
    kokoro-say -v '?'                     list voices
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

from kokorod.protocol import SPEED_RANGE
from kokorod_client.audiofile import AudioFileWriter, UnsupportedFormat
from kokorod_client.client import Client, ConnectionLost, DaemonError, Stream
from kokorod_client.player import NoAudioDevice, Player, SinkFactory

PROG = "kokoro-say"
NATURAL_WPM = 170.0  # Kokoro at speed 1.0 speaks roughly this many words a minute
FALLBACK_WAV = "kokoro-say.wav"
MAX_AHEAD_S = 20.0  # audio held by the player before we stop reading the socket


class SayError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Convert text to audible speech with the local kokorod daemon. "
                    "The daemon keeps the Kokoro model warm, so speech starts at once; "
                    "it is started in the background the first time it is needed.",
        epilog="With no audio output device, the audio is written to ./kokoro-say.wav "
               "(or the file given with -o). Environment: KOKORO_SOCKET, KOKORO_VOICE.",
    )
    p.add_argument("text", nargs="*", help="text to speak (default: -f, or standard input)")
    p.add_argument("-f", "--input-file", metavar="FILE",
                   help="read the text from FILE ('-' for standard input)")
    p.add_argument("-v", "--voice",
                   help="voice to use, or a blend 'af_bella:0.6,af_sky:0.4'; "
                        "'?' lists the installed voices")
    p.add_argument("--voices", action="store_true", help="list the installed voices and exit")
    p.add_argument("-r", "--rate", type=float, metavar="WPM",
                   help=f"speech rate in words per minute (about {NATURAL_WPM:.0f} is normal)")
    p.add_argument("--speed", type=float, help="speed factor 0.5–2.0 (alternative to -r)")
    p.add_argument("-l", "--lang",
                   help="espeak language of the text (default: the voice's own, e.g. "
                        "en-us for af_*, en-gb for bf_*)")
    p.add_argument("-o", "--output-file", metavar="FILE",
                   help="write audio to FILE (.wav, .aiff, .flac, .ogg) instead of playing it")
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


def print_voices(client: Client) -> None:
    for v in client.voices():
        details = ", ".join(x for x in (v.get("language"), v.get("gender")) if x)
        print(f"{v['name']:<16} {details}")


class Output:
    """Where audio goes: the player, or a file; the file is the fallback."""

    def __init__(self, args: argparse.Namespace, sink: SinkFactory | None) -> None:
        self.player: Player | None = None
        self.writer: AudioFileWriter | None = None
        self.notice = ""
        path = args.output_file
        if path is None:
            try:
                self.player = Player(prebuffer=args.prebuffer, sink=sink)
            except NoAudioDevice as exc:
                path = FALLBACK_WAV
                self.notice = (f"{PROG}: {exc}; wrote the audio to {path} instead "
                               "(use -o FILE to choose the file)")
        if path is not None:
            try:
                self.writer = AudioFileWriter(path)
            except UnsupportedFormat as exc:
                raise SayError(str(exc)) from None

    def feed(self, seq: int, samples: Any) -> None:
        if self.player is not None:
            self.player.feed(seq, samples)
            while self.player.buffer.buffered_seconds() > MAX_AHEAD_S:
                time.sleep(0.05)
        elif self.writer is not None:
            self.writer.write(samples)

    def finish(self) -> None:
        if self.player is not None:
            self.player.finish()
            self.player.wait()
        if self.writer is not None:
            self.writer.close()

    def abort(self) -> None:
        if self.player is not None:
            self.player.stop()
        if self.writer is not None:
            self.writer.close()


def speak(args: argparse.Namespace, client: Client, text: str, speed: float,
          sink: SinkFactory | None, started: float) -> dict[str, Any]:
    # Ask first, then open the audio device while the daemon synthesizes: PortAudio's
    # start-up (device enumeration) then overlaps the wait instead of adding to it.
    stream: Stream | None = client.synthesize(text, voice=args.voice, speed=speed,
                                              lang=args.lang, chunk_ms=args.chunk_ms)
    try:
        output = Output(args, sink)
    except BaseException:
        with contextlib.suppress(OSError):
            stream.cancel()
        raise
    first_chunk = None
    try:
        for chunk in stream:
            if first_chunk is None:
                first_chunk = time.perf_counter()
            output.feed(chunk.seq, chunk.samples)
        output.finish()
    except KeyboardInterrupt:
        output.abort()
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.cancel()
        raise
    except BaseException:
        output.abort()
        raise
    if output.notice:
        print(output.notice, file=sys.stderr)
    stats: dict[str, Any] = {"end": vars(stream.end) if stream and stream.end else None}
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


def run(argv: list[str] | None = None, sink: SinkFactory | None = None) -> int:
    started = time.perf_counter()
    args = build_parser().parse_args(argv)
    try:
        speed = speed_from(args)
        listing = args.voices or args.voice == "?"
        text = "" if listing else read_text(args)
        if not listing and not text.strip():
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


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(run())


if __name__ == "__main__":
    main()
