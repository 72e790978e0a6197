"""kokoro-say: speak text through the kokorod daemon, like macOS `say`.

    kokoro-say "Hello there."            speak (starts the daemon if needed)
    echo "Hello" | kokoro-say             text from stdin
    kokoro-say -f notes.md -o notes.wav   write a file instead of playing
    kokoro-say -v '?'                     list voices; -a '?' lists output devices
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from kokorod_client.early import ask_early
from kokorod_client.say_modes import ignored_flags
from kokorod_client.say_options import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NOT_ALL_SPOKEN,
    GREETINGS,
    LOCALES,
    NOT_ALL_SPOKEN,
    PROG,
    SayError,
    build_parser,
    check_combination,
    check_outputs,
    feedback_stream,
    marks_for,
    read_text,
    request_options,
    speed_from,
)
from kokorod_common.command_line import EXIT_USAGE, quiet_exit, run_main, stdout_closed
from kokorod_common.messages import ConnectionLost, DaemonError

if TYPE_CHECKING:
    from kokorod_client.client import Client, Stream
    from kokorod_common.player import SinkFactory

log = logging.getLogger(PROG)


def run(argv: list[str] | None = None, sink: SinkFactory | None = None) -> int:
    started = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_combination(args)
        ignored = ignored_flags(args, parser)
        if ignored:
            raise SayError(ignored, EXIT_USAGE)
        check_outputs(args)
        if args.audio_device == "?":
            print_devices()
            return 0
        speed = speed_from(args)
        listing = args.voices or args.voice == "?"
        text = "" if listing or args.stop else read_text(args)
        if not (listing or args.stop) and not text.strip():
            raise SayError("the text is empty")
        # Speech is asked for first, before the Client loads (kokorod_client.early).
        early = None if listing or args.stop or args.daemon_play else \
            ask_early(args.socket, PROG, text, "f32", request_fields(args, speed))
        from kokorod_client.client import Client

        try:  # no daemon is started just to stop nothing
            client = Client(args.socket, autostart=not (args.no_autostart or args.stop),
                            client_name=PROG, early=early)
        except (FileNotFoundError, ConnectionRefusedError):
            if args.stop:
                print("kokorod is not running: nothing to stop")
                return 0
            raise SayError("kokorod is not running; start it with 'kokorod start' "
                           "(or drop --no-autostart)") from None
        except RuntimeError as exc:  # launcher.StartError: each of its lines is ours to say
            raise SayError(f"\n{PROG}: ".join(str(exc).splitlines())) from None
        with client:
            limit = int(client.server.get("max_frame_bytes") or 0)
            if limit and len(text.encode("utf-8")) > limit - 1024:
                raise SayError(f"the text is {len(text.encode()) / 2**20:.1f} MiB; kokorod takes "
                               f"up to {limit / 2**20:.1f} MiB a request (KOKORO_MAX_FRAME_BYTES "
                               "on the daemon): split the text, or raise the limit")
            if listing:
                print_voices(client)
                return 0
            if args.stop:
                print(f"stopped {client.stop(everyone=args.all)}")
                return 0
            if args.daemon_play:
                from kokorod_client.speaking import daemon_play

                stats = daemon_play(args, client, text, speed)
            else:
                stream = client.early_stream or ask(args, client, text, speed)
                # Playback, feedback and the audio device load while the daemon works.
                from kokorod_client.speaking import speak

                stats = speak(args, stream, text, sink, started)
        if args.json_stats:
            import json  # only for --json-stats, after the speech

            print(json.dumps(stats), file=feedback_stream(args))
        elif args.stats:
            print(_human(stats), file=sys.stderr)
        return _spoken_status(stats)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except DaemonError as exc:
        print(f"{PROG}: {exc.message} [{exc.code}]", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        if stdout_closed():
            return quiet_exit(EXIT_ERROR)
        print(f"{PROG}: kokorod closed the connection (stopped or crashed) before all was "
              "spoken; the next kokoro-say starts it again", file=sys.stderr)
        return EXIT_NOT_ALL_SPOKEN
    except (ConnectionLost, ConnectionResetError):
        print(f"{PROG}: kokorod closed the connection (stopped or crashed) before all was "
              "spoken; the next kokoro-say starts it again", file=sys.stderr)
        return EXIT_NOT_ALL_SPOKEN
    except SayError as exc:  # a bad command line as argparse says it: "prog: error: …"
        said = "error: " if exc.status == EXIT_USAGE else ""
        print(f"{PROG}: {said}{exc}", file=sys.stderr)
        return exc.status


def request_fields(args: argparse.Namespace, speed: float) -> dict[str, Any]:
    """The synthesize request's fields for playback or a file here."""
    return {"chunk_ms": args.chunk_ms, "marks": marks_for(args),
            **request_options(args, speed)}


def ask(args: argparse.Namespace, client: Client, text: str, speed: float) -> Stream:
    """Send the request (when it could not go early: the daemon had to be started first),
    so that the daemon synthesizes while this process loads its player and opens the
    audio device."""
    return client.synthesize(text, **request_fields(args, speed))


def not_all_spoken(reason: str, by: dict[str, Any] | None) -> str:
    """Why, in words: an interruption names what interrupted (its mode or priority)."""
    if reason == "interrupted" and by:
        who = f"from {by.get('client_name') or 'a client'}"
        if by.get("mode") == "interrupt":
            return f"interrupted by newer speech {who} sent with --interrupt (mode interrupt)"
        if by.get("mode") == "stop-all":
            return f"interrupted by speech {who} that stops all other speech (mode stop-all)"
        return f"interrupted by more urgent speech ({by.get('priority')}, {who})"
    return NOT_ALL_SPOKEN.get(reason, reason)


def _spoken_status(stats: dict[str, Any]) -> int:
    """0 when all was spoken; else say why on stderr and return EXIT_NOT_ALL_SPOKEN."""
    end = stats.get("end") or {}
    reason = end.get("reason", "done")
    if reason == "done":
        return 0
    print(f"{PROG}: not all was spoken: {not_all_spoken(reason, end.get('interrupted_by'))}",
          file=sys.stderr)
    return EXIT_NOT_ALL_SPOKEN


def print_voices(client: Client) -> None:
    """Like `say -v '?'`: name, locale, then a sample sentence after '#'."""
    for v in client.voices():
        name = v["name"]
        locale = LOCALES.get(str(v.get("language", "")).lower(), v.get("language") or "")
        given = name.split("_", 1)[-1].replace("_", " ").title()
        gender = f"({v['gender']}) " if v.get("gender") else ""
        greeting = GREETINGS.get(locale[:2], "Hello! My name is {}.").format(given)
        print(f"{name:<20} {locale:<8} # {gender}{greeting}")


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


def _human(stats: dict[str, Any]) -> str:
    lines = []
    end = stats.get("end") or {}
    if "first_chunk_ms" in stats:
        lines.append(f"first chunk      {stats['first_chunk_ms']:.0f} ms after start")
    if "first_sound_ms" in stats:
        lines.append(f"first sound      {stats['first_sound_ms']:.0f} ms after start")
    if end and stats.get("mode") == "daemon-play":
        lines.append(f"played by kokorod {end['audio_seconds']:.2f} s ({end['reason']})")
    elif end:
        lines.append(f"audio            {end['audio_seconds']:.2f} s in {end['chunks']} chunks")
    pb = stats.get("playback")
    if pb:
        lines.append(f"underruns        {pb['underruns']} ({pb['underrun_seconds']} s), "
                     f"device underflows {pb.get('device_underflows', 0)}")
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
    logging.basicConfig(level=logging.DEBUG if os.environ.get("KOKORO_VERBOSE_LOGS") == "1"
                        else logging.WARNING, format=f"{PROG}: %(message)s")
    exit_if_interrupt_hangs()
    # Standard output closed by its reader: status 1, as not all was delivered.
    sys.exit(run_main(PROG, run, closed_status=EXIT_ERROR))


if __name__ == "__main__":
    main()
