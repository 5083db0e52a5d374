"""Parse and evaluate Prometheus Alertmanager label matchers.

The grammar follows Alertmanager's classic matcher parser (``pkg/labels``):
``name op value`` where the value may be double-quoted with the OpenMetrics
escapes ``\\"``, ``\\\\`` and ``\\n``, and a brace list ``{a="b", c=~"d"}``
holds several matchers. Label names may also be double-quoted, as in
Alertmanager's UTF-8 parser.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["MatchType", "Matcher", "MatcherError", "parse_matcher", "parse_matchers"]

# Go's regexp \s is exactly these; str.strip() would also eat \v and Unicode spaces.
_WS = " \t\n\f\r"
_SKIP_WS = re.compile(f"[{_WS}]*")
_CLASSIC_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# An unquoted name runs until whitespace, an operator character or a quote, so that
# a bad name such as "foo.bar" is reported whole instead of as an unknown operator.
_NAME_TOKEN = re.compile(f'[^{_WS}=!~"]*')
# Go's RE2 accepts a leading "(?i)" inside our anchoring group; Python rejects
# global flags that are not at the very start, so they are folded into a scoped group.
_LEADING_FLAGS = re.compile(r"\(\?([ims]+)\)")
_ESCAPES = {"n": "\n", '"': '"', "\\": "\\"}


class MatchType(enum.StrEnum):
    """A matcher operator."""

    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


_REGEX_TYPES = frozenset({MatchType.REGEX, MatchType.NOT_REGEX})
_NEGATED_TYPES = frozenset({MatchType.NOT_EQUAL, MatchType.NOT_REGEX})
# Longest first: "=~" must win over "=".
_OPERATORS = (MatchType.REGEX, MatchType.NOT_REGEX, MatchType.NOT_EQUAL, MatchType.EQUAL)


class MatcherError(ValueError):
    """A matcher string that cannot be parsed or compiled."""

    def __init__(self, text: str, problem: str) -> None:
        # Both parts stay in args so the exception pickles and compares cleanly.
        super().__init__(text, problem)
        self.text = text
        self.problem = problem

    def __str__(self) -> str:
        return f"invalid matcher {self.text!r}: {self.problem}"


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher; ``regex`` is set for the two regex operators."""

    name: str
    type: MatchType
    value: str
    regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.type not in _REGEX_TYPES:
            return
        try:
            # Compiling the bare value first makes error positions refer to what the
            # user wrote, and rejects values such as "a)|(b" that escape the anchors.
            re.compile(self.value)
            compiled = re.compile(_anchored(self.value))
        except re.error as err:
            raise MatcherError(str(self), f"bad regular expression: {err}") from err
        object.__setattr__(self, "regex", compiled)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this matcher; a missing label counts as ""."""
        actual = labels.get(self.name, "")
        hit = actual == self.value if self.regex is None else self.regex.match(actual) is not None
        return hit != (self.type in _NEGATED_TYPES)

    def __str__(self) -> str:
        name = self.name if _CLASSIC_NAME.fullmatch(self.name) else _quote(self.name)
        return f"{name}{self.type}{_quote(self.value)}"


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher such as ``severity=~"critical|page"``."""
    if not text.strip(_WS):
        raise MatcherError(text, "empty matcher")
    name, pos = _parse_name(text)
    match_type, pos = _parse_operator(text, pos)
    value = _parse_value(text, pos)
    try:
        return Matcher(name=name, type=match_type, value=value)
    except MatcherError as err:
        raise MatcherError(text, err.problem) from err.__cause__


def parse_matchers(text: str) -> list[Matcher]:
    """Parse a brace list ``{a="b", c!="d",}`` or a bare comma-separated list."""
    parts = _split_outside_quotes(_strip_braces(text))
    # A trailing comma, or "{}", leaves one blank last part; drop it.
    if not parts[-1].strip(_WS):
        parts.pop()
    if any(not part.strip(_WS) for part in parts):
        raise MatcherError(text, "empty matcher between commas")
    return [parse_matcher(part) for part in parts]


def _anchored(value: str) -> str:
    # \A and \Z rather than ^ and $: Python's $ also matches before a trailing
    # newline, Go's does not.
    flags = _LEADING_FLAGS.match(value)
    if flags:
        return rf"\A(?{flags.group(1)}:{value[flags.end() :]})\Z"
    return rf"\A(?:{value})\Z"


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f'"{escaped}"'


def _unescape_until_quote(text: str, start: int) -> tuple[str, int]:
    """Unescape ``text`` from ``start`` to the first unescaped quote; return it and that index."""
    out: list[str] = []
    i = start
    while i < len(text) and text[i] != '"':
        if text[i] == "\\" and i + 1 < len(text):
            # Alertmanager keeps an unknown escape such as \d literally, which
            # is what lets users write regexes like "\d+" without doubling.
            out.append(_ESCAPES.get(text[i + 1], text[i : i + 2]))
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out), i


def _skip_ws(text: str, pos: int) -> int:
    found = _SKIP_WS.match(text, pos)
    return found.end() if found else pos


def _parse_name(text: str) -> tuple[str, int]:
    pos = _skip_ws(text, 0)
    if text.startswith('"', pos):
        name, end = _unescape_until_quote(text, pos + 1)
        if end == len(text):
            raise MatcherError(text, "unterminated quoted label name")
        pos = end + 1
    else:
        token = _NAME_TOKEN.match(text, pos)
        name = token.group() if token else ""
        pos += len(name)
        if name and not _CLASSIC_NAME.fullmatch(name):
            raise MatcherError(
                text, f"invalid label name {name!r}: must match [a-zA-Z_][a-zA-Z0-9_]* or be double-quoted"
            )
    if not name:
        raise MatcherError(text, "empty label name")
    return name, pos


def _parse_operator(text: str, pos: int) -> tuple[MatchType, int]:
    pos = _skip_ws(text, pos)
    for op in _OPERATORS:
        if text.startswith(op, pos):
            return op, pos + len(op)
    expected = "expected one of =, !=, =~, !~"
    if pos >= len(text):
        raise MatcherError(text, f"missing operator after label name; {expected}")
    raise MatcherError(text, f"unknown operator at {text[pos:]!r}; {expected}")


def _parse_value(text: str, pos: int) -> str:
    raw = text[pos:].strip(_WS)
    if not raw.startswith('"'):
        value, end = _unescape_until_quote(raw, 0)
        if end != len(raw):
            raise MatcherError(text, "unescaped double quote in unquoted value")
        return value
    value, end = _unescape_until_quote(raw, 1)
    if end == len(raw):
        raise MatcherError(text, "unterminated quoted value")
    if end + 1 != len(raw):
        raise MatcherError(text, f"trailing garbage {raw[end + 1 :]!r} after quoted value")
    return value


def _strip_braces(text: str) -> str:
    body = text.strip(_WS)
    if not body:
        # Alertmanager reads "" as "no matchers"; for a remediation rule that means
        # "every alert", so demand the explicit "{}" instead.
        raise MatcherError(text, "empty matcher list; write {} to match every alert")
    if body.startswith("{"):
        if not body.endswith("}") or len(body) == 1:
            raise MatcherError(text, "missing closing brace")
        return body[1:-1]
    if body.endswith("}"):
        raise MatcherError(text, "closing brace without opening brace")
    return body


def _split_outside_quotes(text: str) -> list[str]:
    """Split on commas that are not inside a double-quoted string."""
    parts: list[str] = []
    current: list[str] = []
    in_quotes = False
    chars = iter(text)
    for ch in chars:
        if ch == "," and not in_quotes:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
        if ch == "\\":
            # An escaped character, notably \", never opens or closes a quote.
            current.append(next(chars, ""))
        elif ch == '"':
            in_quotes = not in_quotes
    parts.append("".join(current))
    return parts
