"""Socket lifecycle: single instance, stale-socket cleanup, serve, graceful shutdown.

Start: take the instance lock, probe any socket already there (a live daemon →
refuse; a dead one → remove), load and warm the engine, then bind 0600 in a
0700 directory. Stop (first SIGTERM/SIGINT): close the listener, let in-flight
streams finish for `shutdown_grace_s`, end the rest as cancelled, remove the
socket. A second signal skips the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from typing import Any

import psutil

from kokorod import __version__, logs
from kokorod import config as config_module
from kokorod.config import ENGINE_SETTINGS, Config
from kokorod.serve.connection import Connection
from kokorod.serve.http_front import HttpFront
from kokorod.serve.requests import Requests
from kokorod.serve.runtime_files import RuntimeFiles
from kokorod.serve.scheduler import Scheduler
from kokorod.serve.speech_queue import SpeechQueue
from kokorod.serve.state import ReloadError, ServerState
from kokorod.serve.wyoming_front import WyomingFront
from kokorod.store import first_run, models
from kokorod.synth import heap
from kokorod.synth.engine import Engine

log = logging.getLogger(__name__)


class Daemon:
    version = __version__

    def __init__(self, config: Config) -> None:
        self.config = config
        self.socket_path = config.socket_path
        self.engine: Engine
        self.scheduler: Scheduler
        self.speech: SpeechQueue
        self.requests: Requests
        self.state: ServerState
        self.connections: set[Connection] = set()
        self.counters: Counter[str] = Counter()
        self.started_at = time.time()
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._force = False
        self.files = RuntimeFiles(self.socket_path)
        self._keeper: asyncio.Task[None] | None = None
        self._fronts: asyncio.Task[None] | None = None
        self.http = HttpFront()  # the OpenAI speech API, when KOKORO_HTTP_PORT is set
        self.wyoming = WyomingFront()  # Home Assistant's protocol, when KOKORO_WYOMING_URI is set
        self._conn_tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ startup
    def prepare(self) -> None:
        """Everything before the event loop: lock, socket probe, engine load."""
        heap.configure()  # before any thread or large buffer exists
        self.files.claim()
        first_run.ensure_english_voices(self.config)
        self.engine = Engine(self.config)

    async def start(self) -> None:
        self.scheduler = Scheduler(self.engine, self.config)
        self.scheduler.start()
        self.speech = SpeechQueue(self.scheduler.submit, self.config.audio_device,
                                  self.config.playback_prebuffer, self.config.max_queued)
        self.speech.start()
        self.requests = Requests(self.config, self.engine, self.scheduler, self.speech,
                                 self.counters)
        self.state = ServerState(self.version, self.requests, self.speech, self.status,
                                 self.reload)
        # before the socket: a live socket means all is served
        await self.http.apply(self.config, self.requests, at_start=True)
        await self.wyoming.apply(self.config, self.requests, at_start=True)
        await self.files.bind(self._accept)
        self._keeper = asyncio.get_running_loop().create_task(
            self.files.keep(self._accept, self.config.runtime_check_s, self.request_stop),
            name="runtime-files")
        self._fronts = asyncio.get_running_loop().create_task(self._retry_fronts(),
                                                              name="front-ends")
        log.info("kokorod %s serving on %s (pid %d)", self.version, self.socket_path, os.getpid())

    async def _retry_fronts(self) -> None:
        """A front-end whose port was taken comes on once it is free (checked as often as
        the runtime files)."""
        while True:
            await asyncio.sleep(self.config.runtime_check_s)
            async with self._reload_lock:  # not while a reload moves them
                await self.http.retry()
                await self.wyoming.retry()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(self.state, reader, writer)
        self.connections.add(conn)
        self.counters["connections"] += 1
        task = asyncio.current_task()
        if task is not None:
            self._conn_tasks.add(task)
        try:
            await conn.serve()
        finally:
            self.connections.discard(conn)
            if task is not None:
                self._conn_tasks.discard(task)

    # ------------------------------------------------------------ run/stop
    def request_stop(self, signame: str = "") -> None:
        if self._stop.is_set():
            log.warning("second %s: stopping now", signame or "stop request")
            self._force = True
        else:
            log.info("%s: stopping (in-flight streams get %.1fs)", signame or "stop",
                     self.config.shutdown_grace_s)
        self._stop.set()

    def request_reload(self) -> None:
        async def reload_logged() -> None:
            with contextlib.suppress(ReloadError):  # already logged; old settings serve on
                await self.reload()

        task = asyncio.get_running_loop().create_task(reload_logged(), name="reload")
        self._conn_tasks.add(task)
        task.add_done_callback(self._conn_tasks.discard)

    def _files_changed(self, new: Config) -> bool:
        """Does the model store (KOKORO_*_PATH or `model use`) now point elsewhere?"""
        files = models.resolve(new.model_path, new.voices_path)
        old = self.engine.files
        return (files.model, files.voices, files.sha256) != (old.model, old.voices, old.sha256)

    async def reload(self, rebuild: bool = False) -> dict[str, Any]:
        """SIGHUP or the `reload` op: re-read settings and the model choice, keep every stream.

        Limits, chunk and segment sizes apply to the next request. A change of
        model, voices, provider or threads (or `rebuild`) builds a new engine
        beside the old one and swaps it in between segments: in-flight streams
        carry on with the new session. If that fails the old one keeps serving
        and ReloadError says why. The socket path cannot change without a restart.
        """
        async with self._reload_lock:
            loop = asyncio.get_running_loop()
            try:
                new = config_module.load(socket=str(self.socket_path))
                changed = rebuild or await loop.run_in_executor(None, self._files_changed, new)
            except (config_module.ConfigError, models.ModelError) as exc:
                log.error("reload: %s; keeping the current settings", exc)
                raise ReloadError(str(exc)) from None
            old = self.config
            changed = changed or any(getattr(old, n) != getattr(new, n) for n in ENGINE_SETTINGS)
            if changed:
                try:
                    engine = await loop.run_in_executor(None, Engine, new, self.engine.schedule)
                except Exception as exc:
                    log.error("reload: the new engine failed (%s); keeping the current one", exc)
                    raise ReloadError(f"the new engine failed: {exc}; the current model "
                                      "keeps serving") from None
                self.engine = self.requests.engine = self.scheduler.engine = engine
            self.config = self.requests.config = self.scheduler.config = new
            self.speech.device, self.speech.max_queued = new.audio_device, new.max_queued
            self.speech.prebuffer = new.playback_prebuffer
            await self.http.apply(new, self.requests, at_start=False)  # on, off or moved
            await self.wyoming.apply(new, self.requests, at_start=False)
            logs.setup(new.verbose_logs)
            self.counters["reloads"] += 1
            log.warning("reloaded settings (reload %d)", self.counters["reloads"])
            return {"rebuilt": changed, "model_path": str(self.engine.files.model),
                    "voices_path": str(self.engine.files.voices),
                    "model_sha256": self.engine.files.sha256,
                    "voices": self.engine.voices.names()}

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop, sig.name)
            loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        await self.start()
        try:
            await self._stop.wait()
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        self.requests.shutting_down = True
        for task in (self._keeper, self._fronts):
            if task is not None:
                task.cancel()
        self.files.close_listener()
        self.wyoming.close_listener()
        deadline = time.monotonic() + self.config.shutdown_grace_s
        self.speech.stop(None, "shutdown")  # the speaker stops with the daemon
        while (self.scheduler.active_jobs or self.requests.streaming) and not self._force:
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
        await self.speech.close()
        if self.http.api is not None:  # its streams end like the socket's: cancelled
            self.requests.stop(None, "shutdown")
            await self.http.stop()
        await self.wyoming.stop()  # its requests end cancelled, as the socket's
        # together: each may wait (bounded) for a slow reader to take its last frames
        await asyncio.gather(*(conn.close("shutdown") for conn in list(self.connections)))
        if self._conn_tasks:
            await asyncio.wait(self._conn_tasks, timeout=2.0)
        await self.scheduler.stop()
        self.files.release()
        log.info("kokorod stopped")

    # ------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        proc = psutil.Process()
        mem = proc.memory_info()
        return {
            "daemon_version": self.version,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started_at, 1),
            "socket": str(self.socket_path),
            "connections": len(self.connections),
            "active_requests": self.scheduler.active_jobs,
            "paused_requests": self.scheduler.paused_jobs,
            "worker_busy": self.scheduler.busy,
            "idle_closed": self.counters["idle_closed"],
            "requests": self.counters["requests"],
            "completed": self.counters["completed"],
            "cancelled": self.counters["cancelled"],
            # requests = completed + cancelled + failed + in flight; refused: error replies
            # to frames that never became a request; errors = failed + refused
            "failed": self.counters["failed"],
            "refused": self.counters["refused"],
            "errors": self.counters["failed"] + self.counters["refused"],
            "reloads": self.counters["reloads"],
            "http": self.http.status(),
            "wyoming": self.wyoming.status(),
            "rss_bytes": mem.rss,
            "num_fds": proc.num_fds() if hasattr(proc, "num_fds") else None,
            "num_tasks": len(asyncio.all_tasks()),
            "num_threads": proc.num_threads(),
            "memory": {**heap.stats(), "python_blocks": sys.getallocatedblocks()},
            "engine": self.engine.status(),
            "speech": self.speech.snapshot(),
            "scheduler": {"first_segment_chars": self.config.first_segment_chars,
                          "segment_chars": self.config.segment_chars},
            "caches": {"audio": self.scheduler.cache.status(),
                       "phonemes": self.engine.phonemize.status()},
        }


def run(config: Config) -> None:
    """`kokorod run`: foreground daemon (uvloop where available)."""
    daemon = Daemon(config)
    try:
        daemon.prepare()
        try:
            import uvloop

            runner: Any = uvloop.run
        except ImportError:  # pragma: no cover - uvloop missing on this platform
            runner = asyncio.run
        runner(daemon.serve())
    finally:
        daemon.files.release()  # a start that failed leaves no pid or lock file behind
