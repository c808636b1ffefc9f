"""Java regular expressions (the syntax of botocore's `pattern` traits) for the `regex` package.

The two dialects read most syntax alike; they differ on what a class escape means:
Java's `\\p{Upper}`, `\\p{Graph}`, `\\d`, `\\s`, `\\w` are ASCII-only, the `regex` package's
are Unicode-wide, and some names (`Alpha`, `Punct`) denote different sets. Java's `.`
excludes every line terminator, not only `\\n`. Character classes may nest and intersect
(`[a-z&&[^aeiou]]`), which the `regex` package spells the same way in its VERSION1 mode, so
the translation targets VERSION1 and escapes every literal in a class to stay clear of
VERSION1's other set operators (`--`, `||`, `~~`).

Models validate whole values (Java's `Matcher.matches()`), so callers use `fullmatch`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

import regex

Ranges = tuple[tuple[int, int], ...]

_LINE_TERMINATORS: Final[Ranges] = ((0x0A, 0x0A), (0x0D, 0x0D), (0x85, 0x85), (0x2028, 0x2029))

_POSIX: Final[dict[str, Ranges]] = {
    "Lower": ((0x61, 0x7A),),
    "Upper": ((0x41, 0x5A),),
    "ASCII": ((0x00, 0x7F),),
    "Alpha": ((0x41, 0x5A), (0x61, 0x7A)),
    "Digit": ((0x30, 0x39),),
    "Alnum": ((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)),
    "Punct": ((0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)),
    "Graph": ((0x21, 0x7E),),
    "Print": ((0x20, 0x7E),),
    "Blank": ((0x20, 0x20), (0x09, 0x09)),
    "Cntrl": ((0x00, 0x1F), (0x7F, 0x7F)),
    "XDigit": ((0x30, 0x39), (0x41, 0x46), (0x61, 0x66)),
    "Space": ((0x20, 0x20), (0x09, 0x0D)),
    "L1": ((0x00, 0xFF),),
    "all": ((0x00, 0x10FFFF),),
}

# Predefined classes: letter -> (ranges, negated).
_SHORTHANDS: Final[dict[str, Ranges]] = {
    "d": ((0x30, 0x39),),
    "w": ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)),
    "s": ((0x20, 0x20), (0x09, 0x0D)),
    "h": (
        (0x20, 0x20),
        (0x09, 0x09),
        (0xA0, 0xA0),
        (0x1680, 0x1680),
        (0x180E, 0x180E),
        (0x2000, 0x200A),
        (0x202F, 0x202F),
        (0x205F, 0x205F),
        (0x3000, 0x3000),
    ),
    "v": ((0x0A, 0x0D), (0x85, 0x85), (0x2028, 0x2029)),
}

_JAVA_PROPS: Final[dict[str, str]] = {
    "javaLowerCase": r"\p{Lowercase}",
    "javaUpperCase": r"\p{Uppercase}",
    "javaTitleCase": r"\p{Lt}",
    "javaAlphabetic": r"\p{Alphabetic}",
    "javaLetter": r"\p{L}",
    "javaDigit": r"\p{Nd}",
    "javaLetterOrDigit": r"\p{L}\p{Nd}",
    "javaSpaceChar": r"\p{Z}",
    "javaWhitespace": r"\t-\r\x1c-\x1f\p{Zs}\p{Zl}\p{Zp}",
    "javaMirrored": r"\p{Bidi_Mirrored}",
    "javaISOControl": r"\x00-\x1f\x7f-\x9f",
    "LD": r"\p{L}\p{Nd}",
}

_SIMPLE_ESCAPES: Final = {"t": 0x09, "n": 0x0A, "r": 0x0D, "f": 0x0C, "a": 0x07, "e": 0x1B}
_PASS_ESCAPES: Final = frozenset("AbBG")
_FLAGS_KEPT: Final = frozenset("imsx")
_FLAGS_DROPPED: Final = frozenset("u")


class JavaRegexError(ValueError):
    """The pattern uses Java syntax this translator does not know."""


def _lit(cp: int) -> str:
    ch = chr(cp)
    if ch.isascii() and (ch.isalnum() or ch == "_"):
        return ch
    if 0x21 <= cp <= 0x7E:
        return "\\" + ch
    if cp <= 0xFF:
        return f"\\x{cp:02x}"
    if cp <= 0xFFFF:
        return f"\\u{cp:04x}"
    return f"\\U{cp:08x}"


def _ranges(ranges: Ranges) -> str:
    return "".join(_lit(lo) if lo == hi else f"{_lit(lo)}-{_lit(hi)}" for lo, hi in ranges)


@dataclass(frozen=True)
class _Set:
    """A set of characters, as the inside of a VERSION1 class."""

    body: str
    negated: bool = False

    def in_class(self) -> str:
        return f"[^{self.body}]" if self.negated else self.body

    def alone(self) -> str:
        return f"[^{self.body}]" if self.negated else f"[{self.body}]"


def _property(name: str, negated: bool) -> _Set:
    if name in _POSIX:
        return _Set(_ranges(_POSIX[name]), negated)
    if name in _JAVA_PROPS:
        return _Set(_JAVA_PROPS[name], negated)
    key, sep, value = name.partition("=")
    if sep:
        kind = {"general_category": "gc", "gc": "gc", "script": "sc", "sc": "sc"}.get(key)
        kind = kind or {"block": "blk", "blk": "blk"}.get(key)
        if kind is None:
            raise JavaRegexError(f"unknown property kind {key!r}")
        return _Set(f"\\p{{{kind}={value}}}", negated)
    if name.startswith("In"):
        return _Set(f"\\p{{blk={name[2:]}}}", negated)
    if name.startswith("Is"):
        rest = name[2:]
        if rest in _POSIX or rest in _JAVA_PROPS:
            return _property(rest, negated)
        return _Set(f"\\p{{{rest}}}", negated)
    return _Set(f"\\p{{{name}}}", negated)


class _Translator:
    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.dotall = False

    def peek(self, offset: int = 0) -> str | None:
        j = self.i + offset
        return self.p[j] if j < len(self.p) else None

    def take(self) -> str:
        ch = self.peek()
        if ch is None:
            raise JavaRegexError(f"unexpected end of pattern {self.p!r}")
        self.i += 1
        return ch

    def fail(self, what: str) -> JavaRegexError:
        return JavaRegexError(f"{what} at {self.i} in {self.p!r}")

    # -- outside classes ------------------------------------------------------------

    def run(self) -> str:
        out: list[str] = []
        while self.peek() is not None:
            ch = self.take()
            if ch == "\\":
                out.append(self.escape_outside())
            elif ch == "[":
                out.append(self.klass())
            elif ch == ".":
                out.append("." if self.dotall else _Set(_ranges(_LINE_TERMINATORS), True).alone())
            elif ch == "(":
                out.append(self.group_open())
            else:
                out.append(ch)
        return "".join(out)

    def group_open(self) -> str:
        if self.peek() != "?":
            return "("
        rest = self.p[self.i + 1 :]
        for prefix in (":", "=", "!", "<=", "<!", ">"):
            if rest.startswith(prefix):
                self.i += 1 + len(prefix)
                return "(?" + prefix
        if rest.startswith("<"):
            end = rest.find(">")
            if end < 0:
                raise self.fail("unterminated group name")
            self.i += 1 + end + 1
            return f"(?P<{rest[1:end]}>"
        # Inline flags: (?idmsux-idmsux) or (?idmsux-idmsux:
        j = 0
        while j < len(rest) and (rest[j].isalpha() or rest[j] == "-"):
            j += 1
        if j >= len(rest) or rest[j] not in ":)":
            raise self.fail("unknown group construct")
        flags, close = rest[:j], rest[j]
        unknown = set(flags) - _FLAGS_KEPT - _FLAGS_DROPPED - {"-"}
        if unknown:
            raise self.fail(f"unsupported inline flags {''.join(sorted(unknown))!r}")
        on = flags.split("-", 1)[0]
        if "s" in on:
            self.dotall = True
        kept = "".join(c for c in flags if c not in _FLAGS_DROPPED).rstrip("-")
        self.i += 1 + j + 1
        if kept in ("", "-"):
            return "(?:" if close == ":" else ""
        return f"(?{kept}{close}"

    def escape_outside(self) -> str:
        ch = self.take()
        if ch in _SHORTHANDS or ch.lower() in _SHORTHANDS:
            return _Set(_ranges(_SHORTHANDS[ch.lower()]), ch.isupper()).alone()
        if ch in "pP":
            return self.property(ch == "P").alone()
        if ch == "R":
            terms = _ranges(((0x0A, 0x0D), (0x85, 0x85), (0x2028, 0x2029)))
            return f"(?:\\r\\n|[{terms}])"
        if ch == "z":
            return r"\Z"
        if ch == "Z":
            return f"(?=(?:\\r\\n|[{_ranges(_LINE_TERMINATORS)}])?\\Z)"
        if ch in _PASS_ESCAPES:
            return "\\" + ch
        if ch == "Q":
            end = self.p.find("\\E", self.i)
            text = self.p[self.i :] if end < 0 else self.p[self.i : end]
            self.i = len(self.p) if end < 0 else end + 2
            return "".join(_lit(ord(c)) for c in text)
        if ch == "k":
            if self.peek() != "<":
                raise self.fail("bad named back-reference")
            end = self.p.find(">", self.i)
            name = self.p[self.i + 1 : end]
            self.i = end + 1
            return f"(?P={name})"
        if ch.isdigit() and ch != "0":
            return "\\" + ch
        return _lit(self.char_escape(ch))

    # -- escapes that denote one character ------------------------------------------

    def char_escape(self, ch: str) -> int:
        if ch in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[ch]
        if ch == "x":
            if self.peek() == "{":
                end = self.p.find("}", self.i)
                digits = self.p[self.i + 1 : end]
                self.i = end + 1
                return int(digits, 16)
            return int(self.take() + self.take(), 16)
        if ch == "u":
            return int("".join(self.take() for _ in range(4)), 16)
        if ch == "0":
            digits = ""
            while len(digits) < 3 and (self.peek() or "x") in "01234567":
                digits += self.take()
            if not digits:
                raise self.fail("bad octal escape")
            if len(digits) == 3 and digits[0] > "3":
                digits, self.i = digits[:2], self.i - 1
            return int(digits, 8)
        if ch == "c":
            return ord(self.take()) ^ 0x40
        if ch.isascii() and ch.isalnum():
            raise self.fail(f"unknown escape \\{ch}")
        return ord(ch)

    def property(self, negated: bool) -> _Set:
        if self.peek() == "{":
            end = self.p.find("}", self.i)
            if end < 0:
                raise self.fail("unterminated property")
            name = self.p[self.i + 1 : end]
            self.i = end + 1
        else:
            name = self.take()
        return _property(name, negated)

    # -- classes --------------------------------------------------------------------

    def klass(self) -> str:
        """A class, the `[` already taken; returns a VERSION1 set."""
        negated = False
        if self.peek() == "^":
            self.take()
            negated = True
        operands: list[str] = []
        union: list[str] = []
        first = True
        while True:
            ch = self.peek()
            if ch is None:
                raise self.fail("unterminated character class")
            if ch == "]" and not first:
                self.take()
                break
            first = False
            if ch == "[":
                self.take()
                union.append(self.klass())
            elif self.p.startswith("&&", self.i):
                self.i += 2
                operands.append("".join(union))
                union = []
            else:
                union.append(self.class_atom())
        operands.append("".join(union))
        if len(operands) == 1:
            body = operands[0]
        else:
            body = "[" + "&&".join(f"[{o}]" for o in operands if o) + "]"
        return f"[^{body}]" if negated else f"[{body}]"

    def class_atom(self) -> str:
        ch = self.take()
        if ch == "\\":
            esc = self.take()
            if esc.lower() in _SHORTHANDS:
                return _Set(_ranges(_SHORTHANDS[esc.lower()]), esc.isupper()).in_class()
            if esc in "pP":
                return self.property(esc == "P").in_class()
            if esc == "Q":
                end = self.p.find("\\E", self.i)
                text = self.p[self.i : end if end >= 0 else len(self.p)]
                self.i = len(self.p) if end < 0 else end + 2
                return "".join(_lit(ord(c)) for c in text)
            lo = self.char_escape(esc)
        else:
            lo = ord(ch)
        if self.peek() == "-" and self.peek(1) not in (None, "]", "["):
            self.take()
            upper = self.take()
            hi = self.char_escape(self.take()) if upper == "\\" else ord(upper)
            if hi < lo:
                raise self.fail("illegal character range")
            return f"{_lit(lo)}-{_lit(hi)}"
        return _lit(lo)


def translate(pattern: str) -> str:
    """The `regex` VERSION1 spelling of the Java `pattern`."""
    return _Translator(pattern).run()


@functools.cache
def compile_java(pattern: str) -> regex.Pattern[str]:
    """Compile a Java pattern; use `.fullmatch` to test a value as Java's `matches()` does."""
    try:
        return regex.compile(translate(pattern), regex.VERSION1)
    except regex.error as exc:
        raise JavaRegexError(f"{pattern!r}: {exc}") from exc
