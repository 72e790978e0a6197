"""Daemon-side playback: one speaker, one queue, speech-dispatcher's priority rules.

Requests with `play: true` become utterances here instead of streams back to
the client. One plays at a time through sounddevice; the rest wait in order of
priority, then arrival. What happens when one arrives (modelled on
speech-dispatcher's message priorities):

    important     never interrupted; interrupts anything else that is playing;
                  waiting notifications are dropped; waiting message/text wait on
    message       interrupts text and notification; drops waiting notifications
    text          interrupts notification; drops waiting notifications
    notification  spoken only when nothing else is playing or waiting, else dropped

An interrupted utterance ends (reason "interrupted"); it does not resume.
Mode `interrupt` first stops everything of the same client (playing, waiting
and streamed back), mode `stop-all` everything of every client. Utterances
outlive their connection (a shell script may send and hang up); `stop` with
the same client_name ends them. Only the playing utterance and the next are
synthesized: the next one is ready when the current ends, and a long queue
costs no memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import numpy as np

from kokorod.serve.job import Job, Piece, final_frame
from kokorod_common.player import DeviceStalled, NoAudioDevice, Player, refresh_devices
from kokorod_common.protocol import PRIORITIES, SAMPLE_RATE, ErrorCode, error_frame

log = logging.getLogger(__name__)

NOTIFICATION = PRIORITIES.index("notification")  # the lowest rank; 0 = important
AHEAD_S = 10.0  # audio handed to the device ahead of what it has played
POLL_S = 0.02

Send = Callable[[dict[str, Any]], Awaitable[None]]
Submit = Callable[[Job], None]  # hands a job to the scheduler
OpenPlayer = Callable[[str, int], Any]  # (device, prebuffer) → a Player; blocking


@dataclass(eq=False)
class Utterance:
    job: Job
    send: Send  # events go back to the requesting connection (quietly, it may be gone)
    state: str = "queued"  # queued → playing → done
    submitted: bool = False  # handed to the scheduler
    played_samples: int = 0

    @property
    def rank(self) -> int:
        return self.job.rank

    @property
    def client(self) -> str:
        return self.job.client

    @property
    def reason(self) -> str:
        """Why it ended early ("" while it may still play): the job's first cancel reason."""
        return self.job.reason

    def end(self, reason: str, by: Job | None = None) -> None:
        self.job.cancel(reason, by)  # the first reason sticks

    def describe(self) -> dict[str, Any]:
        req = self.job.request
        return {"id": req.id, "client": self.client, "priority": req.priority,
                "state": self.state, "text": req.text[:80],
                "played_seconds": round(self.played_samples / SAMPLE_RATE, 3)}


class NoOutput(RuntimeError):
    """The daemon cannot open an audio output device."""


def open_player(device: str, prebuffer: int) -> Player:
    """A Player on the configured device, as the devices are now (blocking: off the loop)."""
    try:
        refresh_devices()
        return Player(prebuffer=prebuffer, device=device or None)
    except NoAudioDevice as exc:
        raise NoOutput(str(exc)) from None


class SpeechQueue:
    """`submit` hands a job to the scheduler and `player` opens the device; both are
    injectable, so the priority rules are tested without a model or a sound card."""

    def __init__(self, submit: Submit, device: str = "", prebuffer: int = 2,
                 max_queued: int = 64, player: OpenPlayer = open_player) -> None:
        self.submit = submit
        self.open_player = player
        self.device = device
        self.prebuffer = prebuffer
        self.max_queued = max_queued
        self.current: Utterance | None = None
        self.waiting: list[Utterance] = []
        self.paused = False
        self._player: Any = None
        self._wake = asyncio.Event()
        self._finishing: set[asyncio.Task[None]] = set()  # `end` frames of dropped ones
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="speech-queue")

    async def close(self) -> None:
        for utt in [*self.waiting, *([self.current] if self.current else [])]:
            utt.end("shutdown")
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for utt in self.waiting:
            await self._finish(utt)
        self.waiting.clear()
        if self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)

    # ------------------------------------------------------------ requests
    def add(self, utt: Utterance) -> None:
        """Queue by the priority rules (see the module docstring)."""
        rank = utt.rank
        if rank == NOTIFICATION and (self.waiting or (
                self.current and self.current.rank < rank)):
            utt.end("discarded")
            self._later(self._finish(utt))
            return
        current = self.current
        if current is not None and rank < current.rank:
            current.end("interrupted", utt.job)
        if rank < NOTIFICATION:
            for other in [u for u in self.waiting if u.rank == NOTIFICATION]:
                self._drop(other, "discarded")
        at = len(self.waiting)
        for i, other in enumerate(self.waiting):
            if other.rank > rank or (utt.job.request.mode == "interrupt"
                                     and other.rank == rank):
                at = i
                break
        self.waiting.insert(at, utt)
        self._wake.set()

    def full(self) -> bool:
        return len(self.waiting) >= self.max_queued

    def stop(self, client: str | None, reason: str = "stopped", by: Job | None = None) -> int:
        """End the playing and waiting utterances of `client` (None: everyone's); `by`:
        the request whose mode ends them."""
        count = 0
        for utt in list(self.waiting):
            if client is None or utt.client == client:
                self._drop(utt, reason, by)
                count += 1
        current = self.current
        if current is not None and not current.reason and (client is None or
                                                          current.client == client):
            current.end(reason, by)
            count += 1
        self._wake.set()
        return count

    def cancel(self, utt: Utterance) -> None:
        """The client's own `cancel` of one played request."""
        if utt in self.waiting:
            self._drop(utt, "cancelled")
        elif utt is self.current:
            utt.end("cancelled")
        self._wake.set()

    def pause(self) -> None:
        self.paused = True
        if self._player is not None:
            self._player.pause()

    def resume(self) -> None:
        self.paused = False
        if self._player is not None:
            self._player.resume()
        self._wake.set()

    def snapshot(self) -> dict[str, Any]:
        return {"paused": self.paused,
                "playing": self.current.describe() if self.current else None,
                "waiting": [u.describe() for u in self.waiting]}

    # ------------------------------------------------------------ internals
    def _drop(self, utt: Utterance, reason: str, by: Job | None = None) -> None:
        self.waiting.remove(utt)
        utt.end(reason, by)
        self._later(self._finish(utt))

    def _later(self, coro: Coroutine[Any, Any, None]) -> None:
        """Send a final frame soon; the task is kept until done (and awaited at close)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    def _submit(self, utt: Utterance) -> None:
        if not utt.submitted:
            utt.submitted = True
            self.submit(utt.job)

    async def _finish(self, utt: Utterance, frame: dict[str, Any] | None = None) -> None:
        """The one final frame of a played request (`frame`: a device fault of our own)."""
        utt.state = "done"
        await utt.send(frame or final_frame(utt.job, played_samples=utt.played_samples))

    async def _run(self) -> None:
        while True:
            if not self.waiting or self.paused:
                self._wake.clear()
                await self._wake.wait()
                continue
            utt = self.waiting.pop(0)
            self.current = utt
            try:
                await self._play(utt)
            except asyncio.CancelledError:
                utt.end("shutdown")
                await self._finish(utt)
                raise
            except Exception as exc:  # a device fault must not stop the queue
                log.exception("playback of %r failed", utt.job.request.id)
                utt.end("error")
                await self._finish(utt, error_frame(utt.job.request.id, ErrorCode.INTERNAL,
                                                    f"playback failed: {exc}"))
            finally:
                self.current = None
                await self._close_player()

    async def _close_player(self) -> None:
        """Stop and close the device off the loop (a Bluetooth device can take its time)."""
        player, self._player = self._player, None
        if player is not None:
            await asyncio.get_running_loop().run_in_executor(None, player.stop)

    async def _play(self, utt: Utterance) -> None:
        loop = asyncio.get_running_loop()
        job = utt.job
        self._submit(utt)  # synthesis starts while the device opens
        try:
            player = await loop.run_in_executor(None, self.open_player, self.device,
                                                self.prebuffer)
        except NoOutput as exc:
            utt.end("error")
            await self._finish(utt, error_frame(job.request.id, ErrorCode.NO_AUDIO_DEVICE,
                                                f"the daemon cannot play audio: {exc}"))
            return
        self._player = player
        if self.paused:
            player.pause()
        utt.state = "playing"
        announce = loop.create_task(self._announce(utt, player), name="speech-playing")
        try:
            await self._feed(job, player)
        except DeviceStalled as exc:
            log.warning("playback of %r: %s", job.request.id, exc)
            utt.end("error")
            await self._close_player()
            await self._finish(utt, error_frame(job.request.id, ErrorCode.NO_AUDIO_DEVICE,
                                                str(exc)))
            return
        finally:
            announce.cancel()
        utt.played_samples = player.buffer.stats.samples_played
        if job.timed_marks and not job.cancelled:
            await self._marks_heard(utt, utt.played_samples + 1)  # marks at the very end too
        await self._close_player()  # silence first: `end` means the device has stopped
        await self._finish(utt)

    @staticmethod
    async def _announce(utt: Utterance, player: Any) -> None:
        """`playing` goes out when the first sound reaches the device, not before; then
        (marks: "word") each mark as its sample is played."""
        while player.buffer.stats.first_sound_at is None:
            await asyncio.sleep(POLL_S)
        await utt.send({"op": "playing", "id": utt.job.request.id})
        if not utt.job.timed_marks:
            return
        while True:
            await SpeechQueue._marks_heard(utt, player.buffer.heard())
            await asyncio.sleep(POLL_S)

    @staticmethod
    async def _marks_heard(utt: Utterance, played: int) -> None:
        job = utt.job
        while job.marks and job.marks[0]["sample"] < played:
            await utt.send({"op": "mark", "id": job.request.id, **job.marks.pop(0)})

    async def _feed(self, job: Job, player: Any) -> None:
        """Hand the job's audio to the player until it has played out (or was cancelled)."""
        async for piece in job.drain():  # marks go out as they are heard (_announce)
            assert isinstance(piece, Piece)
            player.feed(piece.seq, np.asarray(piece.audio))
            while player.backlogged(AHEAD_S) and not job.cancelled:
                player.check()
                await asyncio.sleep(POLL_S)
        if not job.cancelled:
            self._prefetch_next()
            player.finish()
            while not player.played_out() and not job.cancelled:
                player.check()
                await asyncio.sleep(POLL_S)
            if not job.cancelled:
                await asyncio.sleep(0.05)  # the device's last block

    def _prefetch_next(self) -> None:
        """Synthesis of this utterance is done: start the next one so it is ready in time."""
        if self.waiting and not self.paused:
            self._submit(self.waiting[0])
