"""Which of kokoro-say's flags each of its modes reads. A flag given in a mode that does
not read it would be silently ignored (`-a 7 -o b.wav`, `--prebuffer 3 --daemon-play`,
`-v '?' -o x.wav`): it is refused instead, with one line naming it and the mode.

Given means "not the parser's default", so the rule holds for every flag added later:
a new flag is refused everywhere until a mode below says it reads it.
"""

from __future__ import annotations

import argparse

# How to reach the daemon: fine with every mode (a shell alias may always pass them).
ANY_MODE = frozenset({"socket", "no_autostart"})
# What a request for speech reads, wherever the audio goes.
SPEECH = frozenset({"text", "input_file", "encoding", "voice", "rate", "speed", "lang",
                    "text_format", "no_normalize", "priority", "interrupt", "stats",
                    "json_stats"})
# The audio comes here, in chunks, and is followed as it is heard or written.
HERE = frozenset({"chunk_ms", "interactive", "subtitles", "progress"})

# mode → (how the refusal names it, the flags it reads)
MODES: dict[str, tuple[str, frozenset[str]]] = {
    "voices": ("when listing voices", frozenset({"voice", "voices"})),
    "devices": ("when listing audio devices (-a '?')", frozenset({"audio_device"})),
    "stop": ("with --stop", frozenset({"stop", "all"})),
    "daemon-play": ("with --daemon-play (the daemon plays it; nothing plays or is written "
                    "here)", SPEECH | {"daemon_play"}),
    "file": ("with -o (the audio is written, not played)",
             SPEECH | HERE | {"output_file", "file_format", "data_format"}),
    "play": ("when playing here", SPEECH | HERE | {"audio_device", "prebuffer"}),
}


def mode_of(args: argparse.Namespace) -> str:
    if args.voices or args.voice == "?":
        return "voices"
    if args.audio_device == "?":
        return "devices"
    if args.stop:
        return "stop"
    if args.daemon_play:
        return "daemon-play"
    return "file" if args.output_file else "play"


def ignored_flags(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str | None:
    """One line naming the flags given that the mode would ignore; None when all count."""
    mode = mode_of(args)
    where, reads = MODES[mode]
    names = []
    for action in parser._actions:
        dest = action.dest
        if dest in reads or dest in ANY_MODE or not hasattr(args, dest):
            continue
        value = getattr(args, dest)
        if value != action.default and value not in (None, False, []):
            names.append("/".join(action.option_strings) or f"the {dest}")
    if not names:
        return None
    what = ", ".join(names)
    verb = "does" if len(names) == 1 else "do"
    return f"{what} {verb} nothing {where}: drop {'it' if len(names) == 1 else 'them'}"
