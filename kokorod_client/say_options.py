"""kokoro-say's command line: its options, their help, and what they mean for a request.

Kept apart from the flow (say.py) and from playback and feedback (speaking.py), so each
reads on one screen.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from kokorod_common import __version__
from kokorod_common.command_line import EXIT_USAGE, Parser, any_bytes, shown
from kokorod_common.protocol import CHUNK_MS_RANGE, PRIORITIES, SPEED_RANGE, TEXT_FORMATS

PROG = "kokoro-say"
PREBUFFER = 2  # chunks held before playback starts, unless --prebuffer says
NATURAL_WPM = 170.0  # Kokoro at speed 1.0 speaks roughly this many words a minute

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
  spoken), ssml (--ssml: <break>, <say-as>, <phoneme>, <mark>…), plain+ipa (plain with
  [word](/phonemes/) readings). -f guesses from the file's extension (.md, .ssml, …).

without a sound device:
  the audio is written to ./kokoro-say.wav (or the -o file) and a notice says so.

examples:
  kokoro-say Hello, World
  kokoro-say -v '?'
  kokoro-say -v af_bella -r 200 -o hi.aiff Hello
  kokoro-say -o hi.raw --data-format=LEF32 Hello
  kokoro-say -f README.md --progress
  kokoro-say -o talk.wav --subtitles talk.vtt -f talk.txt
  git log -1 --format=%s | kokoro-say -i

environment:
  KOKORO_SOCKET (daemon socket), KOKORO_VOICE (default voice; daemon side),
  KOKORO_VERBOSE_LOGS=1 (debug logging)

exit status:
  0 all was spoken (or written), 1 an error, 2 a bad command line, 3 not all was
  spoken (stopped, interrupted by other speech, a dropped notification, the daemon
  stopped), 130 Ctrl-C."""


# Exit statuses (documented in --help): 2 is argparse's for a bad command line.
EXIT_ERROR = 1
EXIT_NOT_ALL_SPOKEN = 3  # stopped, interrupted, dropped, or the daemon stopped meanwhile
EXIT_INTERRUPTED = 130  # Ctrl-C

# Why a request ended before all was spoken (End.reason) → what the user is told.
NOT_ALL_SPOKEN = {
    "stopped": "stopped ('kokoro-say --stop' or another client's stop)",
    "interrupted": "interrupted by other speech (of a higher priority, or sent with --interrupt)",
    "discarded": "dropped: a notification is spoken only when nothing else is",
    "shutdown": "kokorod was stopped",
    "cancelled": "cancelled",
    "error": "the daemon's audio device failed",
}


class SayError(Exception):
    """A user-facing failure: printed as one line, exit status 1 (or `status`)."""

    def __init__(self, message: str, status: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.status = status


def _prebuffer(text: str) -> int:
    value = int(text) if text.strip().isdigit() else -1
    if not 1 <= value <= 16:
        raise argparse.ArgumentTypeError(f"{text!r}: use a number of chunks from 1 to 16")
    return value


def _chunk_ms(text: str) -> int:
    lo, hi = CHUNK_MS_RANGE
    value = int(text) if text.strip().isdigit() else -1
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"{text!r}: use a chunk length from {lo} to {hi} ms")
    return value


def _rate(text: str) -> float:
    lo, hi = SPEED_RANGE
    value = _number(text)
    if not lo * NATURAL_WPM <= value <= hi * NATURAL_WPM:
        raise argparse.ArgumentTypeError(f"{text!r}: use a rate from {lo * NATURAL_WPM:.0f} "
                                         f"to {hi * NATURAL_WPM:.0f} words per minute")
    return value


def _speed(text: str) -> float:
    lo, hi = SPEED_RANGE
    value = _number(text)
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"{text!r}: use a speed factor from {lo} to {hi}")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")  # out of every range


def stdout_carries_audio(args: argparse.Namespace) -> bool:
    """`-o -`: the audio file goes to standard output, so nothing else may."""
    return args.output_file == "-"


def is_terminal(path: str | None) -> bool:
    """Whether `path` is a terminal device (/dev/tty, /dev/stdout at a terminal, …)."""
    import os
    import stat

    try:
        if path is None or not stat.S_ISCHR(os.stat(path).st_mode):
            return False
        fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        return os.isatty(fd)
    finally:
        os.close(fd)


def feedback_stream(args: argparse.Namespace) -> TextIO:
    """Where -i and --json-stats write: standard output, unless it carries the audio."""
    return sys.stderr if stdout_carries_audio(args) else sys.stdout


def request_options(args: argparse.Namespace, speed: float) -> dict[str, Any]:
    """The request's fields from the command line: the same whether the audio plays here
    or in the daemon (--daemon-play)."""
    return {"voice": args.voice, "speed": speed, "lang": args.lang,
            "text_format": text_format_for(args), "priority": args.priority,
            "mode": "interrupt" if args.interrupt else None,
            "normalize": False if args.no_normalize else None}


def marks_for(args: argparse.Namespace) -> str | None:
    """The marks to ask the daemon for: word marks when a word is shown (-i on a
    terminal) or written (--subtitles)."""
    shown = args.interactive and feedback_stream(args).isatty()
    return "word" if shown or args.subtitles else None


def check_combination(args: argparse.Namespace) -> None:
    """Refuse flags that would be silently ignored together, with one line saying why."""
    given_text = bool(args.text)
    rules = [
        (args.daemon_play and args.output_file, "--daemon-play plays in the daemon; -o "
         "writes a file here: choose one"),
        (args.daemon_play and (args.interactive or args.progress or args.audio_device
                               or args.subtitles),
         "-i, --progress, --subtitles and -a follow local playback; --daemon-play has none"),
        (args.audio_device not in (None, "?") and args.output_file, "-a picks the device "
         "to play on; -o writes a file instead: choose one"),
        (stdout_carries_audio(args) and sys.stdout.isatty(), "-o - writes the audio file to "
         "standard output, which is a terminal: redirect it (> file.wav) or pipe it"),
        (not stdout_carries_audio(args) and is_terminal(args.output_file), f"-o "
         f"{args.output_file} is a terminal: give a file name (-o file.wav)"),
        ((args.data_format or args.file_format) and not args.output_file,
         "--data-format and --file-format describe the -o file; there is none"),
        (args.rate is not None and args.speed is not None, "-r and --speed both set the "
         "speed: give one"),
        (args.stop and (given_text or args.input_file), "--stop takes no text"),
        (args.all and not args.stop, "--all goes with --stop"),
        (args.input_file and given_text, "-f reads the text from a file; the text "
         "arguments would be dropped: give one or the other"),
    ]
    for broken, why in rules:
        if broken:
            raise SayError(why, EXIT_USAGE)


def check_outputs(args: argparse.Namespace) -> None:
    """The -o and --subtitles files, checked before any speech is asked for: a format
    that cannot be written is a bad command line (2); a missing directory an error (1)."""
    if args.output_file:
        from kokorod_client.audiofile import UnsupportedFormat, check_target, file_spec

        try:
            file_spec(args.output_file, args.file_format, args.data_format)
        except UnsupportedFormat as exc:
            raise SayError(str(exc), EXIT_USAGE) from None
        problem = check_target(args.output_file)
        if problem:
            raise SayError(problem)
    if args.subtitles:  # here, not at the top: a client that only speaks does not load it
        from kokorod_client.subtitles import FORMATS, check_writable

        problem = check_writable(args.subtitles)
        if problem:
            wrong_kind = not args.subtitles.lower().endswith(FORMATS)
            raise SayError(problem, EXIT_USAGE if wrong_kind else EXIT_ERROR)


def build_parser() -> Parser:
    p = Parser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        usage=f"{PROG} [-v voice] [-r rate] [-o outfile [--file-format=fmt] "
              "[--data-format=fmt]] [-a device] [-f file | string ...] [-i] [--progress] "
              "[--subtitles file]",
        description=f"{PROG} - convert text to audible speech\n\n{DESCRIPTION}",
        epilog=EPILOG,
    )
    p.add_argument("text", nargs="*", type=any_bytes,
                   help="text to speak (default: -f, or standard input)")
    p.add_argument("-f", "--input-file", metavar="file", type=any_bytes,
                   help="read the text from file ('-' for standard input)")
    p.add_argument("-v", "--voice", metavar="voice",
                   help="voice to use, or a blend 'af_bella:0.6,af_sky:0.4'; '?' lists the "
                        "installed voices")
    p.add_argument("--voices", action="store_true", help="list the installed voices and exit")
    p.add_argument("-r", "--rate", type=_rate, metavar="rate",
                   help=f"speech rate in words per minute (about {NATURAL_WPM:.0f} is normal; "
                        f"{SPEED_RANGE[0] * NATURAL_WPM:.0f}–{SPEED_RANGE[1] * NATURAL_WPM:.0f})")
    p.add_argument("--speed", type=_speed, help="speed factor 0.5–2.0 (alternative to -r)")
    p.add_argument("-o", "--output-file", metavar="outfile", type=any_bytes,
                   help="write the audio to outfile instead of playing it")
    p.add_argument("--file-format", metavar="fmt", help="format of the -o file (see below)")
    p.add_argument("--data-format", metavar="fmt", help="sample format of the -o file")
    p.add_argument("-a", "--audio-device", metavar="device",
                   help="output device, by number or (part of the) name; '?' lists them")
    p.add_argument("-i", "--interactive", action="store_true",
                   help="show the text as it is spoken: on a terminal each word is "
                        "highlighted as it is heard, elsewhere a line per sentence")
    p.add_argument("--subtitles", metavar="file", type=any_bytes,
                   help="write subtitles timed to the audio: .vtt, .srt, or .json (every "
                        "word's start and end in seconds)")
    p.add_argument("--progress", action="store_true",
                   help="show a progress bar of the text spoken so far (on standard error)")
    p.add_argument("-l", "--lang", metavar="lang",
                   help="espeak language of the text (default: the voice's own, e.g. "
                        "en-us for af_*, en-gb for bf_*)")
    p.add_argument("--encoding", metavar="codec",
                   help="the text's encoding when it is not UTF-8 (latin-1, cp1252, utf-16…)")
    p.add_argument("--text-format", choices=TEXT_FORMATS,
                   help="how to read the text (default: from -f's extension, else plain)")
    p.add_argument("--ssml", action="store_const", const="ssml", dest="text_format",
                   help="the text is SSML (the same as --text-format ssml; -f x.ssml too)")
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
    p.add_argument("--prebuffer", type=_prebuffer, metavar="N",
                   help="chunks to hold before playback starts (1–3 recommended, default 2)")
    p.add_argument("--chunk-ms", type=_chunk_ms, metavar="MS", help="chunk length, 20–500 ms")
    p.add_argument("--stats", action="store_true",
                   help="print timing, underrun and gap statistics to standard error")
    p.add_argument("--json-stats", action="store_true",
                   help="print the statistics as JSON on standard output")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    p.add_argument("--socket", type=any_bytes,
                   help="daemon socket (default: $KOKORO_SOCKET or per-user)")
    p.add_argument("--no-autostart", action="store_true",
                   help="fail instead of starting the daemon when it is not running")
    return p


def speed_from(args: argparse.Namespace) -> float:
    """The speed factor from -r (words per minute) or --speed; both were range-checked as
    they were parsed (_rate, _speed)."""
    if args.rate is not None:
        return float(args.rate) / NATURAL_WPM
    return 1.0 if args.speed is None else float(args.speed)


def read_text(args: argparse.Namespace) -> str:
    """The text from the arguments, -f FILE or standard input, decoded (text_input)."""
    from kokorod_client.text_input import TextInputError, decode, from_arguments, read_limited

    try:
        if args.input_file and args.input_file != "-":
            try:
                with open(args.input_file, "rb") as file:  # /dev/urandom too: bounded
                    data = read_limited(file, shown(args.input_file), args.encoding)
            except OSError as exc:
                raise SayError(f"cannot read {shown(args.input_file)}: {exc.strerror}") from None
            return decode(data, shown(args.input_file), args.encoding)
        if args.text and args.input_file != "-":
            return from_arguments(args.text, args.encoding)
        return decode(_stdin_bytes(args.encoding), "standard input", args.encoding)
    except TextInputError as exc:
        raise SayError(str(exc), EXIT_USAGE if exc.usage else EXIT_ERROR) from None


def _stdin_bytes(encoding: str | None) -> bytes:
    if sys.stdin is None:
        raise SayError("no text given; pass it as arguments, with -f FILE, or on stdin")
    if sys.stdin.isatty():  # as say does: type the text, end it with Ctrl-D
        print(f"{PROG}: reading the text from the terminal; end it with Ctrl-D",
              file=sys.stderr)
    from kokorod_client.text_input import read_limited

    return read_limited(sys.stdin.buffer, "standard input", encoding)


def text_format_for(args: argparse.Namespace) -> str:
    if args.text_format:
        return str(args.text_format)
    suffix = Path(args.input_file).suffix.lower() if args.input_file else ""
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown"
    if suffix == ".ssml":
        return "ssml"
    return "code" if suffix in CODE_SUFFIXES else "plain"


