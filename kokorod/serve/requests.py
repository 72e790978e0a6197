"""A request's way through the daemon: admitted, prepared, handed on, counted once.

`Requests` is all a connection may do with the daemon's engine, scheduler and
speaker: admit a `synthesize` (limits, voice, language, the text as it will be
spoken), start it — the one place that chooses between streamed back to its
client (the caller then reads it through `Job.drain`) and played by the daemon's
speaker — stop speech by client, and count each request's outcome from its one
final frame (built by job.final_frame for both ways). A reload swaps `engine`
and `config` here; requests already running keep what they started with.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable, Container
from typing import Any

from kokorod import extras
from kokorod.config import Config
from kokorod.serve.job import Job
from kokorod.serve.scheduler import Scheduler
from kokorod.serve.speech_queue import Send, SpeechQueue, Utterance
from kokorod.synth.engine import Engine
from kokorod.synth.lexicon import Lexicon
from kokorod.synth.spoken import Spoken, prepare
from kokorod.synth.ssml_mask import masked
from kokorod.synth.text import speakable, written_in
from kokorod_common.protocol import ErrorCode, ProtocolError, SynthesizeRequest, parse_synthesize

LONG_TEXT = 4000  # characters: cleanup runs off the event loop beyond this


_ESPEAK = {"fr": "fr-fr", "de": "de", "es": "es", "it": "it", "pt": "pt-br"}


def language_note(text: object, lang: str) -> str:
    """A word for the client when a text that looks written in another language is read
    with English rules and voice (no English number words in a French sentence, but the
    voice still reads it as English)."""
    if not isinstance(text, str) or not lang.lower().startswith("en"):
        return ""
    written = written_in(text)
    if written in (None, "en"):
        return ""
    code = _ESPEAK.get(written, written)
    return (f"this text looks written in '{written}', not English: give its language "
            f"(kokoro-say -l {code}, or lang: \"{code}\") and a voice that speaks it")


_KANA = re.compile(r"[\u3040-\u30ff\uff66-\uff9f]")
_HAN = re.compile(r"[\u3400-\u9fff]")
RESTART = "then restart the daemon (kokorod restart)"


def script_note(text: object, lang: str, reads_japanese: Callable[[], bool]) -> str:
    """A word for the client when a voice cannot read the text's script: Japanese without
    the `ja` extra (espeak-ng names each kanji: "Chinese letter …"), or Japanese or
    Chinese text given to another language's voice. `reads_japanese` is asked only for
    Japanese text: finding the extra imports it (~0.6 s), which no other text should wait
    for."""
    if not isinstance(text, str):
        return ""
    sample = text[:4000]
    kana, han = len(_KANA.findall(sample)), len(_HAN.findall(sample))
    letters = sum(1 for ch in sample if ch.isalpha())
    if kana + han == 0 or (kana + han) < 0.3 * letters:
        return ""
    lang = lang.lower()
    if lang == "ja":
        if han and not reads_japanese():
            return ("without the ja extra this Japanese text is read by espeak-ng, which "
                    "names each kanji instead of reading it: "
                    f"{extras.install_hint('ja')}, {RESTART}")
        return ""
    if lang.startswith(("cmn", "zh")):
        return ""
    written, voice = ("Japanese", "jf_alpha") if kana else ("Chinese", "zf_xiaobei")
    return (f"this text is written in {written}, which a '{lang}' voice cannot read (it "
            f"names the characters): use a {written} voice (kokoro-say -v {voice})")


class Requests:
    def __init__(self, config: Config, engine: Engine, scheduler: Scheduler,
                 speech: SpeechQueue, counters: Counter[str]) -> None:
        self.config = config
        self.engine = engine
        self.scheduler = scheduler
        self.speech = speech
        self.counters = counters
        self.streaming: set[Job] = set()  # streamed back, on every connection
        # The user's readings, read again when the file changes.
        self.lexicon = Lexicon(config.lexicon_path, engine.vocab)
        self.shutting_down = False

    # ------------------------------------------------------------ admission
    async def admit(self, message: dict[str, Any], client: str, taken: Container[Any],
                    in_flight: int) -> Job:
        """A `synthesize` message → a prepared Job, or ProtocolError saying why not.
        `taken`: ids in use on the client's connection; `in_flight`: its streams."""
        config = self.config
        req = parse_synthesize(message, max_text_chars=config.max_text_chars,
                               default_chunk_ms=config.chunk_ms)
        if self.shutting_down:
            raise ProtocolError(ErrorCode.SHUTTING_DOWN, "the daemon is shutting down")
        if req.id in taken:
            raise ProtocolError(ErrorCode.DUPLICATE_ID,
                                f"id {req.id!r} is already in use on this connection")
        if in_flight >= config.max_requests_per_connection:
            raise ProtocolError(ErrorCode.BUSY, "too many requests in flight on this connection "
                                f"(limit {config.max_requests_per_connection})")
        if self.scheduler.active_jobs >= config.max_active_requests:
            raise ProtocolError(ErrorCode.BUSY, "the daemon is at its limit of "
                                f"{config.max_active_requests} requests; retry shortly")
        if req.play and self.speech.full():
            raise ProtocolError(ErrorCode.BUSY, f"the speech queue is full "
                                f"({config.max_queued} waiting); retry shortly")
        engine = self.engine
        voice = engine.voice_style(req.voice)
        lang = engine.lang_for(req.voice, req.text, req.lang)
        original = masked(req.text) if req.text_format == "ssml" else req.text
        said = await self.spoken(req, lang)
        req = req._replace(text=said.text)
        self.counters["requests"] += 1
        job = Job(req, voice, lang, client, original=original,
                  spoken=said if said.runs is not None else None,
                  voice_name=req.voice or engine.default_voice)
        if req.mode != "queue":  # before the job is queued or streamed: it ends others only
            self.stop(None if req.mode == "stop-all" else client, "interrupted", job)
        job.note = "; ".join([*said.warnings, language_note(said.text, lang) or script_note(
            said.text, lang, engine.phonemize.reads_japanese)]).strip("; ")
        return job

    async def spoken(self, req: SynthesizeRequest, lang: str) -> Spoken:
        """What the request will say (Markdown, code, numbers, SSML, readings…)."""
        engine = self.engine
        if self.lexicon.path != self.config.lexicon_path:  # a reload moved it
            self.lexicon = Lexicon(self.config.lexicon_path, engine.vocab)

        def voice_lang(name: str) -> str:
            engine.voice_style(name)  # unknown_voice / bad_voice, typed
            return engine.lang_for(name, req.text, None)

        args = (req.text, req.text_format, lang, req.normalize, engine.vocab,
                self.lexicon.apply, voice_lang)
        if len(req.text) > LONG_TEXT:
            said = await asyncio.get_running_loop().run_in_executor(None, prepare, *args)
        else:
            said = prepare(*args)
        if not speakable(said.text):
            raise ProtocolError(ErrorCode.EMPTY_TEXT,
                                f"the {req.text_format} text has nothing speakable in it "
                                "(no letters or digits)")
        for run in said.runs or []:
            if run.lang:
                engine.phonemize.check_lang(run.lang)
        return said

    # ------------------------------------------------------------ the two ways out
    def start(self, job: Job, send: Send) -> Utterance | None:
        """Where the audio goes, decided here alone: `play: true` → the daemon's speaker,
        whose events `send` carries back (counted here); its Utterance is returned, for
        the client's `cancel`. Else streamed: None, and the caller drains the job."""
        if not job.request.play:
            self.stream(job)
            return None

        async def counted(frame: dict[str, Any]) -> None:
            if frame.get("op") in ("end", "error"):
                self.count(frame)
            await send(frame)

        utt = Utterance(job, counted)
        self.speech.add(utt)
        return utt

    def stream(self, job: Job) -> None:
        """Synthesize for a client that reads the audio itself (Job.drain), e.g. HTTP's."""
        self.streaming.add(job)
        self.scheduler.submit(job)

    def ended(self, job: Job, frame: dict[str, Any] | None) -> None:
        """A streamed request is over; `frame` its final frame (None: none could be built)."""
        self.streaming.discard(job)
        if frame is not None:
            self.count(frame)

    def count(self, frame: dict[str, Any]) -> None:
        """Status counters from a request's one final frame."""
        if frame["op"] == "error":
            key = "failed"
        else:
            key = "cancelled" if frame["cancelled"] else "completed"
        self.counters[key] += 1

    # ------------------------------------------------------------ stopping
    def stop(self, client: str | None, reason: str, by: Job | None = None) -> int:
        """End the speech of one client (by client_name) or of all: played and streamed.
        `by`: the request whose mode ends them (named in their end frames)."""
        count = self.speech.stop(client, reason, by)
        for job in list(self.streaming):
            if not job.cancelled and (client is None or job.client == client):
                job.cancel(reason, by)
                count += 1
        return count
