"""Table-driven tests for Alertmanager-compatible matcher parsing and matching."""

from __future__ import annotations

import dataclasses

import pytest

from autoremedy.decide.matchers import (
    Matcher,
    MatcherError,
    MatchType,
    parse_matcher,
    parse_matchers,
)

EQ, NE, RE, NRE = MatchType.EQUAL, MatchType.NOT_EQUAL, MatchType.REGEX, MatchType.NOT_REGEX

# (matcher text, alert labels, expected result)
MATCH_CASES = [
    pytest.param('job="api"', {"job": "api"}, True, id="equal-hit"),
    pytest.param('job="api"', {"job": "web"}, False, id="equal-miss"),
    pytest.param('job="api"', {"job": "API"}, False, id="equal-is-case-sensitive"),
    pytest.param('job!="api"', {"job": "web"}, True, id="not-equal-hit"),
    pytest.param('job!="api"', {"job": "api"}, False, id="not-equal-miss"),
    pytest.param('job=~"a.i"', {"job": "api"}, True, id="regex-hit"),
    pytest.param('job=~"a.i"', {"job": "web"}, False, id="regex-miss"),
    pytest.param('job!~"a.i"', {"job": "web"}, True, id="not-regex-hit"),
    pytest.param('job!~"a.i"', {"job": "api"}, False, id="not-regex-miss"),
    # A missing label is the empty string, exactly as in Alertmanager.
    pytest.param('foo=""', {}, True, id="missing-equals-empty"),
    pytest.param('foo=""', {"foo": "x"}, False, id="present-not-empty"),
    pytest.param('foo=~".*"', {}, True, id="missing-matches-dot-star"),
    pytest.param('foo=~".+"', {}, False, id="missing-fails-dot-plus"),
    pytest.param('foo!=""', {}, False, id="not-empty-rejects-missing"),
    pytest.param('foo!=""', {"foo": ""}, False, id="not-empty-rejects-empty"),
    pytest.param('foo!=""', {"foo": "x"}, True, id="not-empty-accepts-present"),
    pytest.param('foo!="bar"', {}, True, id="not-equal-accepts-missing"),
    pytest.param('foo!~"bar"', {}, True, id="not-regex-accepts-missing"),
    # Anchoring: the whole value must match, never a substring.
    pytest.param('job=~"web|api"', {"job": "api"}, True, id="anchor-alternation-hit"),
    pytest.param('job=~"web|api"', {"job": "api-1"}, False, id="anchor-alternation-suffix"),
    pytest.param('job=~"web|api"', {"job": "my-web"}, False, id="anchor-alternation-prefix"),
    pytest.param('job=~"api"', {"job": "xapix"}, False, id="anchor-no-substring"),
    pytest.param('job=~"api"', {"job": "api\n"}, False, id="anchor-no-trailing-newline"),
    pytest.param('job!~"web|api"', {"job": "api-1"}, True, id="anchor-negated"),
    pytest.param('path=~"/v1/.*/health"', {"path": "/v1/x/y/health"}, True, id="dot-star-fragment-hit"),
    pytest.param('path=~"/v1/.*/health"', {"path": "/v1/x/healthz"}, False, id="dot-star-fragment-end"),
    pytest.param('path=~".*api.*"', {"path": "my-api-1"}, True, id="dot-star-both-sides"),
    pytest.param('sev=~"(?i)crit"', {"sev": "CRIT"}, True, id="leading-inline-flag"),
    pytest.param('sev=~"(?i)crit"', {"sev": "CRITICAL"}, False, id="leading-inline-flag-anchored"),
    pytest.param(r'code=~"5\d\d"', {"code": "503"}, True, id="unknown-escape-kept-for-regex"),
    pytest.param('"service.name"="api"', {"service.name": "api"}, True, id="quoted-utf8-name"),
]


@pytest.mark.parametrize(("text", "labels", "expected"), MATCH_CASES)
def test_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


# (matcher text, expected name, type, value)
PARSE_CASES = [
    pytest.param('a="b"', "a", EQ, "b", id="equal"),
    pytest.param('a!="b"', "a", NE, "b", id="not-equal"),
    pytest.param('a=~"b"', "a", RE, "b", id="regex"),
    pytest.param('a!~"b"', "a", NRE, "b", id="not-regex"),
    pytest.param('a=""', "a", EQ, "", id="quoted-empty"),
    pytest.param("a=", "a", EQ, "", id="unquoted-empty"),
    pytest.param('a="x=y"', "a", EQ, "x=y", id="quoted-equals"),
    pytest.param('a="x,y"', "a", EQ, "x,y", id="quoted-comma"),
    pytest.param(r'a="say \"hi\""', "a", EQ, 'say "hi"', id="quoted-escaped-quote"),
    pytest.param(r'a="C:\\dir"', "a", EQ, "C:\\dir", id="quoted-escaped-backslash"),
    pytest.param(r'a="one\ntwo"', "a", EQ, "one\ntwo", id="quoted-escaped-newline"),
    pytest.param('a="  two  spaces "', "a", EQ, "  two  spaces ", id="quoted-spaces-kept"),
    pytest.param('a="héllo 🚀 日本"', "a", EQ, "héllo 🚀 日本", id="quoted-unicode"),
    pytest.param("a=bar", "a", EQ, "bar", id="unquoted"),
    pytest.param("a=~web|api", "a", RE, "web|api", id="unquoted-regex"),
    pytest.param("a = some value ", "a", EQ, "some value", id="unquoted-trimmed-inner-space-kept"),
    pytest.param("a==b", "a", EQ, "=b", id="second-equals-is-value"),
    pytest.param('  a  !=  "b"  ', "a", NE, "b", id="whitespace-everywhere"),
    pytest.param('\ta=~"b"\n', "a", RE, "b", id="tab-and-newline"),
    pytest.param('_a1_="b"', "_a1_", EQ, "b", id="underscore-digits-name"),
    pytest.param('"k8s.pod/name"="b"', "k8s.pod/name", EQ, "b", id="quoted-name"),
    pytest.param(r'"a\"b"="c"', 'a"b', EQ, "c", id="quoted-name-escape"),
]


@pytest.mark.parametrize(("text", "name", "match_type", "value"), PARSE_CASES)
def test_parse_matcher(text: str, name: str, match_type: MatchType, value: str) -> None:
    assert parse_matcher(text) == Matcher(name=name, type=match_type, value=value)


# (text, expected (name, type, value) triples)
LIST_CASES = [
    pytest.param("{}", [], id="empty-braces"),
    pytest.param(" { } ", [], id="empty-braces-spaced"),
    pytest.param('{a="b"}', [("a", EQ, "b")], id="one"),
    pytest.param('{a="b", c=~"d,e"}', [("a", EQ, "b"), ("c", RE, "d,e")], id="comma-in-quotes"),
    pytest.param('{a="b",c!="d",}', [("a", EQ, "b"), ("c", NE, "d")], id="trailing-comma"),
    pytest.param('{ a = "b" , c !~ "d" , }', [("a", EQ, "b"), ("c", NRE, "d")], id="spaced"),
    pytest.param(r'{q="x\",y", z="w"}', [("q", EQ, 'x",y'), ("z", EQ, "w")], id="escaped-quote-then-comma"),
    pytest.param('a="b"', [("a", EQ, "b")], id="single-without-braces"),
    pytest.param("a=b, c=d", [("a", EQ, "b"), ("c", EQ, "d")], id="bare-list-like-alertmanager"),
]


@pytest.mark.parametrize(("text", "expected"), LIST_CASES)
def test_parse_matchers(text: str, expected: list[tuple[str, MatchType, str]]) -> None:
    got = [(m.name, m.type, m.value) for m in parse_matchers(text)]
    assert got == expected


# (text, fragment the error message must contain)
REJECT_CASES = [
    pytest.param("", "empty matcher", id="empty"),
    pytest.param("   ", "empty matcher", id="blank"),
    pytest.param("foo", "missing operator", id="no-operator"),
    pytest.param("foo  ", "missing operator", id="no-operator-trailing-space"),
    pytest.param("foo~bar", "unknown operator", id="tilde-alone"),
    pytest.param("foo<bar", "invalid label name", id="less-than-glued-to-name"),
    pytest.param("foo bar", "unknown operator", id="space-instead-of-operator"),
    pytest.param('="bar"', "empty label name", id="no-name"),
    pytest.param('""="bar"', "empty label name", id="empty-quoted-name"),
    pytest.param('1abc="x"', "invalid label name '1abc'", id="name-starts-with-digit"),
    pytest.param('foo.bar="x"', "invalid label name 'foo.bar'", id="dotted-name-unquoted"),
    pytest.param('foo-bar="x"', "invalid label name", id="dashed-name-unquoted"),
    pytest.param('foo="bar', "unterminated quoted value", id="unterminated-value"),
    pytest.param('foo="bar\\"', "unterminated quoted value", id="escaped-closing-quote"),
    pytest.param('"foo="bar"', "unknown operator", id="quoted-name-swallows-operator"),
    pytest.param('"foo', "unterminated quoted label name", id="unterminated-name"),
    pytest.param('foo="bar"baz', "trailing garbage 'baz'", id="garbage-after-value"),
    pytest.param('foo="a" "b"', "trailing garbage", id="second-quoted-string"),
    pytest.param('foo=ab"c', "unescaped double quote", id="quote-inside-unquoted"),
    pytest.param('foo=~"(["', "bad regular expression", id="bad-regex"),
    pytest.param('foo!~"a)|(b"', "bad regular expression", id="regex-escaping-anchors"),
    pytest.param('foo=~"*"', "bad regular expression", id="nothing-to-repeat"),
]


@pytest.mark.parametrize(("text", "fragment"), REJECT_CASES)
def test_parse_matcher_rejects(text: str, fragment: str) -> None:
    with pytest.raises(MatcherError) as caught:
        parse_matcher(text)
    message = str(caught.value)
    assert fragment in message
    assert message.startswith(f"invalid matcher {text!r}: ")


def test_bad_regex_message_matches_brief_example() -> None:
    with pytest.raises(MatcherError, match=r"""^invalid matcher 'foo=~"\(\["': bad regular expression: """):
        parse_matcher('foo=~"(["')


# (text, fragment the error message must contain)
LIST_REJECT_CASES = [
    pytest.param("", "empty matcher list", id="empty"),
    pytest.param('{a="b"', "missing closing brace", id="no-close-brace"),
    pytest.param("{", "missing closing brace", id="lone-open-brace"),
    pytest.param('a="b"}', "closing brace without opening brace", id="no-open-brace"),
    pytest.param('{a="b",,c="d"}', "empty matcher between commas", id="double-comma"),
    pytest.param("{,}", "empty matcher between commas", id="only-comma"),
    pytest.param('{a="b", c}', "missing operator", id="bad-member"),
    pytest.param('{a="b, c="d"}', "trailing garbage", id="unbalanced-quote-in-list"),
    pytest.param("{a=~x(}", "bad regular expression", id="bad-regex-member"),
]


@pytest.mark.parametrize(("text", "fragment"), LIST_REJECT_CASES)
def test_parse_matchers_rejects(text: str, fragment: str) -> None:
    with pytest.raises(MatcherError, match=fragment):
        parse_matchers(text)


# (text, canonical string form)
STR_CASES = [
    pytest.param("a=b", 'a="b"', id="unquoted-gets-quoted"),
    pytest.param('a !~ "x|y"', 'a!~"x|y"', id="spaces-dropped"),
    pytest.param(r'a="q\"b\\c\nd"', r'a="q\"b\\c\nd"', id="escapes-restored"),
    pytest.param(r'a=~"\d+"', r'a=~"\\d+"', id="lone-backslash-doubled"),
    pytest.param('"k.v"="x"', '"k.v"="x"', id="utf8-name-stays-quoted"),
    pytest.param('"plain"="x"', 'plain="x"', id="classic-name-unquoted"),
    pytest.param('a="é 🚀"', 'a="é 🚀"', id="unicode-kept"),
]


@pytest.mark.parametrize(("text", "canonical"), STR_CASES)
def test_str_is_canonical_and_round_trips(text: str, canonical: str) -> None:
    matcher = parse_matcher(text)
    assert str(matcher) == canonical
    again = parse_matcher(str(matcher))
    assert again == matcher
    assert (again.regex is None) == (matcher.regex is None)


def test_direct_construction_compiles_and_validates_regex() -> None:
    assert Matcher(name="a", type=RE, value="x|y").matches({"a": "y"})
    with pytest.raises(MatcherError, match="bad regular expression"):
        Matcher(name="a", type=NRE, value="(")


def test_regex_field_is_not_part_of_equality_or_repr() -> None:
    matcher = parse_matcher('a=~"b"')
    assert matcher.regex is not None
    assert "regex" not in repr(matcher)
    assert matcher == Matcher(name="a", type=RE, value="b")
    assert hash(matcher) == hash(Matcher(name="a", type=RE, value="b"))
    assert parse_matcher('a="b"').regex is None


def test_matcher_is_frozen_and_error_is_value_error() -> None:
    matcher = parse_matcher('a="b"')
    with pytest.raises(dataclasses.FrozenInstanceError):
        matcher.value = "c"  # type: ignore[misc]
    with pytest.raises(ValueError, match="empty matcher"):
        parse_matcher("")
