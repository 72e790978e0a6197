"""Source code read aloud: identifiers split into words, symbols spoken or skipped.

`parse_config_file(path)` should sound like "parse config file path", not a
string of letters; `a != b` like "a not equals b". Comments and string
literals are read as prose; brackets and most punctuation are silent; each
line ends a phrase so the reader pauses where the code breaks lines.
"""

from __future__ import annotations

import re

from kokorod_common.punctuation import ends_sentence

# Multi-character operators first (the tokenizer tries them in this order).
OPERATORS: dict[str, str] = {
    "===": "strictly equals", "!==": "strictly not equals", "**=": "power equals",
    "//=": "floor divide equals", ">>=": "shift right equals", "<<=": "shift left equals",
    "...": "", "==": "equals", "!=": "not equals", "<=": "less than or equal to",
    ">=": "greater than or equal to", "->": "returns", "=>": "arrow", "&&": "and",
    "||": "or", "+=": "plus equals", "-=": "minus equals", "*=": "times equals",
    "/=": "divide equals", "%=": "mod equals", "|=": "or equals", "&=": "and equals",
    "::": "", "**": "to the power", "//": "floor divide", "<<": "shift left",
    ">>": "shift right", "++": "plus plus", "--": "minus minus", ":=": "becomes",
    "=": "equals", "+": "plus", "-": "minus", "*": "times", "/": "divided by",
    "%": "mod", "<": "less than", ">": "greater than", "!": "not", "&": "and",
    "|": "pipe", "^": "xor", "~": "tilde", "@": "at", "?": "", ".": "dot",
    "(": "", ")": "", "[": "", "]": "", "{": "", "}": "", ",": ",", ";": ".",
    ":": "", "$": "", "\\": "", "`": "", "#": "hash",
}

# Abbreviations common in identifiers, read as words.
WORDS: dict[str, str] = {
    "def": "define", "fn": "function", "func": "function", "impl": "implement",
    "elif": "else if", "str": "string", "bool": "boolean", "int": "int", "len": "length",
    "ptr": "pointer", "buf": "buffer", "msg": "message", "cfg": "config", "conf": "config",
    "args": "args", "kwargs": "keyword args", "argv": "arg v", "ctx": "context",
    "req": "request", "res": "result", "resp": "response", "err": "error", "idx": "index",
    "num": "number", "tmp": "temp", "src": "source", "dst": "destination", "dir": "dir",
    "init": "init", "enum": "enum", "var": "var", "val": "value", "vals": "values",
    "db": "D B", "id": "I D", "ids": "I Ds", "js": "J S", "ts": "T S", "py": "pie",
    "nil": "nil", "println": "print line", "printf": "print f", "std": "standard",
    "usize": "u size", "i32": "i thirty-two", "u8": "u eight",
}

_COMMENT_RE = re.compile(r"(?:^|\s)(?:#|//|--(?=\s)|;;)\s?(.*)$")
_TOKEN_RE = re.compile(
    r"""(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
    r"""|(?P<number>\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?|0[xX][0-9a-fA-F]+)"""
    r"""|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)"""
    r"""|(?P<op>""" + "|".join(re.escape(o) for o in sorted(OPERATORS, key=len, reverse=True))
    + r""")|(?P<other>\S)"""
)
_CAMEL_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def split_identifier(name: str) -> str:
    """`parseHTTPResponse_v2` → 'parse HTTP Response v 2'; known abbreviations expanded."""
    words: list[str] = []
    for part in name.split("_"):
        for word in _CAMEL_RE.findall(part):
            words.append(WORDS.get(word.lower(), word))
    return " ".join(w for w in words if w)


def _read_line(line: str) -> str:
    comment = ""
    stripped = line.strip()
    if stripped.startswith(("/*", "*/", "* ", "*")) and not stripped.startswith("**"):
        return stripped.strip("/* ")
    match = _COMMENT_RE.search(line)
    if match and not _inside_string(line, match.start()):
        comment = match.group(1).strip()
        line = line[:match.start()]
    spoken: list[str] = []
    prev_op = True
    for tok in _TOKEN_RE.finditer(line):
        kind = tok.lastgroup
        text = tok.group(0)
        after_op, prev_op = prev_op, kind == "op" and text not in (")", "]", "}")
        if kind == "string":
            body = text[1:-1].strip()
            if body:
                spoken.append(f"“{body}”" if len(body.split()) > 1 else body)
        elif kind == "number":
            spoken.append(text.replace("_", ""))
        elif kind == "ident":
            spoken.append(split_identifier(text))
        elif kind == "op":
            word = OPERATORS[text]
            if text in ("*", "**", "&") and after_op:
                word = ""  # unpacking, pointer or reference, not arithmetic
            if word in (",", "."):
                if spoken:
                    spoken[-1] += word
            elif word:
                spoken.append(word)
    phrase = " ".join(spoken).strip()
    if comment:
        phrase = f"{phrase}, comment: {comment}" if phrase else comment
    return phrase


def _inside_string(line: str, pos: int) -> bool:
    return line[:pos].count('"') % 2 == 1 or line[:pos].count("'") % 2 == 1


def code_to_speech(code: str) -> str:
    """A block of code → one phrase per non-empty line, each ending in a full stop."""
    phrases = []
    for line in code.splitlines():
        phrase = _read_line(line)
        phrase = re.sub(r"\s+([,.])", r"\1", phrase).strip(" ,")
        if phrase:
            phrases.append(phrase if ends_sentence(phrase, also=":") else phrase + ".")
    return "\n".join(phrases)
