"""`kokorod lexicon add|remove|list|say`: teach the daemon how a word is read.

The file (KOKORO_LEXICON, default lexicon.toml beside the configuration) is written
atomically; the daemon reads it again at its next request, so a change is heard at
once. `say` asks the running daemon what it will now read (the `phonemes` op) and
speaks the word through kokoro-say.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from kokorod.config import load
from kokorod.synth.lexicon import CASES, Entry, entry, read
from kokorod_common import atomic, control
from kokorod_common.messages import DaemonError

HEADER = ("# kokorod lexicon: how words are read (docs/pronunciation.md).\n"
          "# A table per language (\"en-us\", \"en\" for every English, \"*\" for all);\n"
          "# a value between slashes is phonemes in Kokoro's set, else a respelling.\n")


def _vocab() -> dict[str, int]:
    from kokoro_onnx.tokenizer import Tokenizer

    return dict(Tokenizer().vocab)


def _value(e: Entry) -> str:
    value = e.value()
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    inner = ", ".join(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in value.items())
    return "{ " + inner + " }"


def render(entries: list[Entry]) -> str:
    """The file's text for `entries`, a table per language."""
    out = [HEADER]
    for lang in sorted({e.lang for e in entries}):
        out.append(f"\n[{json.dumps(lang)}]\n")
        out.extend(f"{json.dumps(e.written, ensure_ascii=False)} = {_value(e)}\n"
                   for e in entries if e.lang == lang)
    return "".join(out)


def cmd_list(args: argparse.Namespace) -> int:
    path = load().lexicon_path
    entries, warnings = read(path, _vocab())
    for warning in warnings:
        print(f"kokorod: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps({"path": str(path), "entries": [
            {"written": e.written, "lang": e.lang, "phonemes": e.phonemes, "say": e.say,
             "case": e.case} for e in entries], "warnings": warnings}, ensure_ascii=False))
        return 0
    print(f"# {path}: {len(entries)} entries")
    for e in entries:
        reading = f"/{e.phonemes}/" if e.phonemes is not None else f"say {e.say!r}"
        case = "" if e.case == "any" else f" ({e.case} case)"
        print(f"[{e.lang}] {e.written} → {reading}{case}")
    return 1 if warnings else 0


def cmd_add(args: argparse.Namespace) -> int:
    path = load().lexicon_path
    vocab = _vocab()
    entries, _ = read(path, vocab)
    reading = args.reading.strip()
    ipa = len(reading) > 1 and reading.startswith("/") and reading.endswith("/")
    value: Any = reading if args.case == "any" else (
        {"phonemes": reading[1:-1]} if ipa else {"say": reading}) | {"case": args.case}
    try:
        new = entry(args.word, args.lang.lower(), value)
    except ValueError as exc:
        print(f"kokorod: {exc}", file=sys.stderr)
        return 2
    bad = sorted({c for c in new.phonemes or "" if c not in vocab and not c.isspace()})
    if bad:
        print(f"kokorod: symbols outside Kokoro's phoneme set: {' '.join(bad)}",
              file=sys.stderr)
        return 2
    kept = [e for e in entries if not (e.lang == new.lang and e.written == new.written)]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, render([*kept, new]))
    print(f"{path}: [{new.lang}] {new.written} → "
          f"{'/' + new.phonemes + '/' if new.phonemes is not None else new.say}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    path = load().lexicon_path
    entries, _ = read(path, None)
    kept = [e for e in entries if not (e.written.casefold() == args.word.casefold()
                                       and (args.lang is None or e.lang == args.lang.lower()))]
    if len(kept) == len(entries):
        print(f"kokorod: {args.word!r} is not in {path}", file=sys.stderr)
        return 1
    atomic.write_text(path, render(kept))
    print(f"{path}: {args.word} removed")
    return 0


def cmd_say(args: argparse.Namespace) -> int:
    if not args.word.strip():
        print("kokorod lexicon say: error: the word is empty", file=sys.stderr)
        return 2
    config = load(socket=getattr(args, "socket", None))
    fields = {"text": args.word, "lang": args.lang, "voice": args.voice}
    try:
        reply = control.call(config.socket_path, "phonemes", client_name="kokorod-lexicon",
                             **{k: v for k, v in fields.items() if v})
    except (FileNotFoundError, ConnectionRefusedError):
        print("kokorod: the daemon is not running (kokorod start)", file=sys.stderr)
        return 1
    except DaemonError as exc:
        print(f"kokorod: {exc}", file=sys.stderr)
        return 1
    print(f"{reply['text']}: /{reply['phonemes']}/")
    if args.phonemes:
        return 0
    say = [sys.executable, "-m", "kokorod_client.say"]
    say += [a for k, v in (("-l", args.lang), ("-v", args.voice)) if v for a in (k, v)]
    return subprocess.run([*say, "--", args.word], check=False).returncode


def add_parser(sub: Any) -> None:
    lex = sub.add_parser("lexicon", help="how words are read: add, remove, list, say")
    lsub = lex.add_subparsers(dest="lexicon_command", required=True)
    ls = lsub.add_parser("list", help="the entries, and a warning for each bad one")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    add = lsub.add_parser("add", help="read WORD (or a phrase) as READING from now on")
    add.add_argument("word")
    add.add_argument("reading", help="a respelling (\"engine x\"), or /phonemes/ in "
                                     "Kokoro's set (see `kokorod lexicon say`)")
    add.add_argument("--lang", default="en", help="en-us, en-gb, en (every English, the "
                                                   "default), fr-fr, … or * for all")
    add.add_argument("--case", choices=CASES, default="any",
                     help="exact: only as written (SQL, not sql)")
    add.set_defaults(func=cmd_add)
    rm = lsub.add_parser("remove", help="forget WORD (in every language, or --lang's)")
    rm.add_argument("word")
    rm.add_argument("--lang")
    rm.set_defaults(func=cmd_remove)
    say = lsub.add_parser("say", help="speak WORD as it will now be read, with its phonemes")
    say.add_argument("word")
    say.add_argument("--phonemes", action="store_true", help="print them, say nothing")
    say.add_argument("--lang")
    say.add_argument("--voice")
    say.set_defaults(func=cmd_say)
