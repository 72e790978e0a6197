"""Where kokoro-say's audio goes and what it shows meanwhile: the player (or a file, the
fallback without a sound device), `-i` (sentences, or on a terminal the word being
spoken) and the `--progress` bar, all moved by the audio actually heard; subtitles."""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from kokorod_client import subtitles
from kokorod_client.client import Client, Stream
from kokorod_client.highlight import WordHighlighter
from kokorod_client.say_options import (
    PREBUFFER,
    PROG,
    SayError,
    feedback_stream,
    request_options,
)
from kokorod_client.timeline import Timeline
from kokorod_common.messages import Chunk, Mark
from kokorod_common.player import DeviceStalled, NoAudioDevice, Player, SinkFactory

if TYPE_CHECKING:  # numpy: imported only when writing a file
    from kokorod_client.audiofile import AudioFileWriter

FALLBACK_WAV = "kokoro-say.wav"
MAX_AHEAD_S = 20.0  # audio held by the player before we stop reading the socket
TICK_S = 0.05


def audio_device(value: str | None) -> int | str | None:
    if value is None:
        return None
    return int(value) if value.strip().isdigit() else value


class Output:
    """Where audio goes: the player, or a file; the file is the fallback."""

    def __init__(self, args: argparse.Namespace, sink: SinkFactory | None) -> None:
        self.player: Player | None = None
        self.writer: AudioFileWriter | None = None
        self.notice = ""
        path = args.output_file
        if path is None:
            try:
                self.player = Player(prebuffer=args.prebuffer or PREBUFFER, sink=sink,
                                     device=audio_device(args.audio_device))
            except NoAudioDevice as exc:
                if args.audio_device is not None:
                    raise SayError(f"audio device {args.audio_device!r}: {exc}; "
                                   f"'{PROG} -a ?' lists them") from None
                path = FALLBACK_WAV
                self.notice = (f"{PROG}: {exc}; wrote the audio to {path} instead "
                               "(use -o FILE to choose the file)")
        if path is not None:
            from kokorod_client.audiofile import AudioFileWriter, UnsupportedFormat  # numpy

            try:
                self.writer = AudioFileWriter(path, file_format=args.file_format,
                                              data_format=args.data_format)
            except UnsupportedFormat as exc:
                raise SayError(str(exc)) from None

    def position(self) -> int:
        """Samples heard so far (written, for a file)."""
        if self.player is not None:
            return self.player.buffer.heard()
        return self.writer.samples if self.writer is not None else 0

    def feed(self, chunk: Chunk, tick: Any) -> None:
        if self.player is not None:
            self.player.feed(chunk.seq, chunk.f32)
            while self.player.backlogged(MAX_AHEAD_S):
                self._check()
                tick()
                time.sleep(TICK_S)
        elif self.writer is not None:
            self.writer.write(chunk.samples)
        tick()

    def finish(self, tick: Any) -> None:
        if self.player is not None:
            self.player.finish()
            while not self.player.buffer.drained.wait(TICK_S):
                self._check()
                tick()
            self.player.wait()
        if self.writer is not None:
            self.writer.close()
        tick()

    def _check(self) -> None:
        assert self.player is not None
        try:
            self.player.check()
        except DeviceStalled as exc:
            raise SayError(f"{exc}; nothing more will be heard") from None

    def abort(self) -> None:
        if self.player is not None:
            self.player.stop()
        if self.writer is not None:
            self.writer.close()


class Feedback:
    """-i, --progress and --subtitles: sentences printed (on a terminal: the word being
    spoken highlighted in place), a bar advanced as the audio is heard, subtitles
    written from the word marks at the end."""

    def __init__(self, args: argparse.Namespace, text: str) -> None:
        self.highlighter: WordHighlighter | None = None
        self.out = feedback_stream(args)  # stderr when stdout carries the audio (-o -)
        if args.interactive and self.out.isatty():
            self.highlighter = WordHighlighter(text, self.out)
        self.subtitles: str | None = args.subtitles
        self.text = text
        self._lock = threading.Lock()  # ticks come from the reader and the ticker thread
        self.live = bool(args.interactive or args.progress)  # shows something while heard
        self.timeline = Timeline(self._say if args.interactive and not self.highlighter else None,
                                 self.highlighter.word if self.highlighter else None)
        self.bar: Any = None
        self.open_line = False  # a sentence was printed in part
        if args.progress:
            from tqdm import tqdm

            self.bar = tqdm(total=1, unit="char", file=sys.stderr, desc=PROG, leave=True,
                            mininterval=0.25,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}")

    def _say(self, text: str, ends: bool) -> None:
        print(text, end="\n" if ends else " ", flush=True, file=self.out)
        self.open_line = not ends

    def started(self, stream: Stream) -> None:
        note = (stream.started or {}).get("note")
        if note:
            print(f"{PROG}: {note}", file=sys.stderr)
        chars = (stream.started or {}).get("chars")
        if self.bar is not None and chars:
            self.bar.total = int(chars)
            self.timeline.total_chars = int(chars)

    def add(self, mark: Mark) -> None:
        with self._lock:
            self.timeline.add(mark)

    @contextlib.contextmanager
    def ticking(self, position: Callable[[], int]) -> Iterator[None]:
        """While in it, a thread moves the feedback along every TICK_S / 2 (chunks arrive
        in bursts, a window of audio at a time; the words must move as they are heard)."""
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(TICK_S / 2):
                self.tick(position())

        thread = threading.Thread(target=run, name="say-feedback", daemon=True)
        if self.live:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread.is_alive():
                thread.join()

    def tick(self, played: int) -> None:
        with self._lock:
            self._tick(played)

    def _tick(self, played: int) -> None:
        self.timeline.advance(played)
        if self.bar is not None and self.timeline.total_chars:
            heard = min(self.timeline.total_chars, self.timeline.chars_at(played))
            if heard > self.bar.n:
                self.bar.update(heard - self.bar.n)  # tqdm redraws at most every 0.25 s

    def done(self, total_samples: int) -> None:
        self.timeline.finish(total_samples)
        self.timeline.advance(total_samples)
        if self.highlighter is not None:
            self.highlighter.close()
        if self.subtitles is not None:
            try:
                subtitles.write(self.subtitles, self.text, self.timeline.words, total_samples)
            except OSError as exc:
                raise SayError(f"cannot write {self.subtitles}: {exc.strerror}") from None
        if self.open_line:
            print(flush=True, file=self.out)
        if self.bar is not None:
            self.bar.update(self.bar.total - self.bar.n)
            self.bar.close()


def speak(args: argparse.Namespace, stream: Stream, text: str, sink: SinkFactory | None,
          started: float) -> dict[str, Any]:
    """Play (or write) `stream`, already asked for (say.py asks before this module and
    the audio device load: both then overlap the daemon's work instead of adding to it)."""
    feedback = Feedback(args, text)
    stream.on_mark = feedback.add
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
        with feedback.ticking(output.position):
            for chunk in stream:
                if first_chunk is None:
                    first_chunk = time.perf_counter()
                    feedback.started(stream)
                total += chunk.size
                output.feed(chunk, tick)
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
    stats: dict[str, Any] = {"end": stream.end._asdict() if stream.end else None}
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
    stream = client.speak(text, **request_options(args, speed))
    try:
        for _ in stream:
            pass
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):
            stream.cancel()
        raise
    finally:  # the start frame's note, as when kokoro-say plays it (nothing comes sooner)
        note = (stream.started or {}).get("note")
        if note:
            print(f"{PROG}: {note}", file=sys.stderr, flush=True)
    return {"mode": "daemon-play", "end": stream.end._asdict() if stream.end else None}
