"""Table-driven tests for what a label cannot do through a template: change a PromQL query, choose a URL's host,
read a secret outside step inputs, or pass a word for a boolean."""

from __future__ import annotations

import gc
import tracemalloc
import urllib.parse
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from autoremedy.actions.registry import default_registry
from autoremedy.config.template_checks import input_escapes, unquoted_alert_values
from autoremedy.decide.planning import Templating, plan_for
from autoremedy.decide.templating import promql_escape, promql_re, promql_str, render_text, secret_references
from autoremedy.decide.urls import UrlPolicy, is_link_local, literal_authority, same_origin, url_refusal
from autoremedy.models.flags import StrictFlag
from autoremedy.models.playbooks import Playbook
from autoremedy.models.rules import Rule

# -- PromQL -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        pytest.param("web", "web", id="plain"),
        pytest.param('x"} > 1e12 or vector(1) #', 'x\\"} > 1e12 or vector(1) #', id="the-attack"),
        pytest.param("back\\slash", "back\\\\slash", id="backslash"),
        pytest.param("o'brien", "o\\x27brien", id="single-quote"),
        pytest.param("x`} or vector(1) #", "x\\x60} or vector(1) #", id="backtick"),
        pytest.param("a\nb\rc\td", "a\\nb\\rc\\td", id="newline-cr-tab"),
        pytest.param("\x00\x07\x1b", "\\x00\\a\\x1b", id="control"),
        pytest.param("\x85\u2028", "\\u0085\\u2028", id="unicode-control"),
        pytest.param("ünïcode ✓", "ünïcode ✓", id="printable-unicode-kept"),
    ],
)
def test_promql_escape_is_go_string_content(value: str, escaped: str) -> None:
    assert promql_escape(value) == escaped


def test_promql_filters() -> None:
    assert promql_str('a"b') == '"a\\"b"'
    assert promql_re("a.b(c)*") == '"a\\\\.b\\\\(c\\\\)\\\\*"'  # RE2 escapes, then string escapes
    assert promql_re("x-y_z/1") == '"x-y_z/1"'  # only RE2 metacharacters, as Go's regexp.QuoteMeta


QUERY_CASES = [
    pytest.param('up{job="{{ alert.labels.job }}"}', 'up{job="x\\"} or vector(1) #"}', id="escaped-in-quotes"),
    pytest.param("up{job={{ alert.labels.job | promql_str }}}", 'up{job="x\\"} or vector(1) #"}', id="promql_str"),
    pytest.param('up{job="{{ alert.labels.job | safe }}"}', 'up{job="x\\"} or vector(1) #"}', id="safe-no-bypass"),
    pytest.param(
        'up{job="{{ alert.labels.job | promql_str | upper }}"}',
        'up{job="\\"X\\\\\\"} OR VECTOR(1) #\\""}',
        id="re-escaped",
    ),
    pytest.param("up{job=`{{ alert.labels.raw }}`}", "up{job=`x\\x60} or vector(1) #`}", id="backtick-cannot-close"),
    pytest.param("up > {{ params.threshold }}", "up > 5", id="a-number-is-not-quoted"),
    pytest.param("up{% if true %} == 1{% endif %}", "up == 1", id="template-text-kept"),
]


@pytest.mark.parametrize(("template", "expected"), QUERY_CASES)
def test_promql_inputs_are_escaped_and_others_are_not(template: str, expected: str) -> None:
    labels = {"job": 'x"} or vector(1) #', "raw": "x`} or vector(1) #"}
    context = {"alert": {"labels": labels}, "params": {"threshold": 5}}
    assert render_text(template, context, where="q", escape="promql") == expected
    assert render_text("{{ alert.labels.job }}", context, where="q") == 'x"} or vector(1) #'


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        pytest.param("[alert.labels.job]", ['x"} or vector(1) #'], id="list"),
        pytest.param('alert.labels.job.split("-")', ['x"} or vector(1) #'], id="split"),
        pytest.param("(alert.labels.job,)", ('x"} or vector(1) #',), id="tuple"),
        pytest.param("alert.labels", {"job": 'x"} or vector(1) #'}, id="map"),
        pytest.param("none", None, id="none"),
    ],
)
def test_values_that_are_not_strings_are_escaped_as_their_text(expression: str, value: object) -> None:
    context = {"alert": {"labels": {"job": 'x"} or vector(1) #'}}}
    rendered = render_text(f'up{{job="{{{{ {expression} }}}}"}}', context, where="q", escape="promql")
    assert rendered == f'up{{job="{promql_escape(str(value))}"}}'


def _playbook(steps: list[dict[str, Any]], target: str = "t") -> Playbook:
    return Playbook.model_validate({"name": "pb", "target": target, "steps": steps})


RULE = Rule.model_validate({"name": "r", "matchers": [], "playbook": "pb"})
ALERT = {"status": "firing", "labels": {"job": 'x"}', "path": "@169.254.169.254/"}, "annotations": {}}
ESCAPES = input_escapes(default_registry().input_models())


def test_the_actions_declare_their_escapes() -> None:
    assert ESCAPES["prometheus.verify"] == {"query": "promql"}
    assert ESCAPES["prometheus.query"] == {"query": "promql"}
    assert ESCAPES["http.request"] == {"url": "url"}


def test_plan_escapes_only_the_declared_input() -> None:
    steps = [
        {"action": "prometheus.verify", "with": {"query": 'up{job="{{ alert.labels.job }}"}'}},
        {"action": "log", "with": {"message": "{{ alert.labels.job }}"}},
    ]
    plan = plan_for(RULE, _playbook(steps), ALERT, dry_run=False, templating=Templating(escapes=ESCAPES))
    assert plan.error is None
    assert plan.steps[0].inputs["query"] == 'up{job="x\\"}"}'
    assert plan.steps[1].inputs["message"] == 'x"}'


# -- secrets --------------------------------------------------------------------------------------------------------


def test_secret_renders_in_step_inputs_only() -> None:
    templating = Templating(secrets={"TOKEN": "s3cret-value"})
    step = {"action": "log", "with": {"message": 'Bearer {{ secret("TOKEN") }}'}}
    plan = plan_for(RULE, _playbook([step]), ALERT, dry_run=False, templating=templating)
    assert plan.steps[0].inputs["message"] == "Bearer s3cret-value"
    in_target = plan_for(RULE, _playbook([step], target='{{ secret("TOKEN") }}'), ALERT, dry_run=False)
    assert in_target.error is not None and "target" in in_target.error


def test_a_missing_secret_is_a_plan_error_that_names_it() -> None:
    step = {"action": "log", "with": {"message": '{{ secret("NOPE") }}'}}
    plan = plan_for(RULE, _playbook([step]), ALERT, dry_run=False, templating=Templating())
    assert plan.error is not None and "secret 'NOPE' is not configured" in plan.error


def test_secret_references() -> None:
    source = '{{ secret("A") }} {{ secret(alert.labels.x) }} {{ "secret" }} {{ other("B") }}'
    assert list(secret_references(source)) == ["A", None]


@pytest.mark.parametrize(
    "source",
    [
        "{% set s = secret %}{{ s(alert.labels.n) }}",
        "{% with s = secret %}{{ s(alert.labels.n) }}{% endwith %}",
        "{{ (secret,)[0](alert.labels.n) }}",
        '{{ [secret] | map(attribute="x") | list }}',
    ],
)
def test_secret_passed_on_is_not_a_literal_reference(source: str) -> None:
    assert None in list(secret_references(source))


# -- URLs -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "authority"),
    [
        pytest.param("https://api.example.com/v1/{{ x }}", "api.example.com", id="literal-host-then-path"),
        pytest.param("https://api.example.com{{ x }}", "api.example.com", id="template-right-after-host"),
        pytest.param("https://API.example.com:8443/x", "api.example.com:8443", id="port-and-case"),
        pytest.param("https://u:p@api.example.com/", "api.example.com", id="userinfo-dropped"),
        pytest.param("https://{{ host }}/x", None, id="templated-host"),
        pytest.param("{{ params.url }}", None, id="whole-url-templated"),
        pytest.param("https://api-{{ env }}.example.com/", "api-", id="partly-templated-host"),
    ],
)
def test_literal_authority(template: str, authority: str | None) -> None:
    assert literal_authority(template) == authority


POLICY = UrlPolicy(
    allowed_hosts=("*.hooks.example.com", "api-prod.example.com", "alt.example.com:8443", "fd00:*:1", "[fd00::9]:8443")
)

URL_CASES = [
    pytest.param("https://api.example.com{{ p }}", "https://api.example.com/v1/x", None, id="literal-host-ok"),
    pytest.param(
        "https://api.example.com{{ p }}",
        "https://api.example.com@169.254.169.254/latest/",
        "carries credentials",
        id="issue-attack-userinfo",
    ),
    pytest.param("https://api.example.com{{ p }}", "https://api.example.com.evil.net/", "matches no", id="suffix"),
    pytest.param("https://api.example.com{{ p }}", "https://api.example.com:22/", "matches no", id="port-added"),
    pytest.param("https://api.example.com/{{ p }}", "https://evil.net/", "is not api.example.com", id="finished"),
    pytest.param("https://{{ h }}/x", "https://a.hooks.example.com/x", None, id="allowed-glob"),
    pytest.param("https://{{ h }}/x", "https://A.Hooks.Example.com/x", None, id="allowed-glob-any-case"),
    pytest.param("https://{{ h }}/x", "https://hooks.example.com.evil.net/x", "matches no", id="glob-suffix"),
    pytest.param("https://api-{{ e }}.example.com/", "https://api-prod.example.com/", None, id="partly-allowed"),
    pytest.param("https://api-{{ e }}.example.com/", "https://api-x.example.com/", "matches no", id="partly-other"),
    pytest.param("{{ u }}", "https://internal.corp/", "matches no http.allowed_hosts", id="whole-url"),
    # A label may build an allowed host; it may not append a port to it (another service on that host).
    pytest.param("https://{{ h }}/x", "https://a.hooks.example.com:8443/x", "port 8443", id="glob-port-appended"),
    pytest.param("https://api-{{ e }}.example.com/", "https://api-prod.example.com:22/", "port 22", id="partly-port"),
    pytest.param("http://{{ s }}.hooks.example.com:8080/", "http://a.hooks.example.com:8080/", None, id="port-written"),
    pytest.param(
        "http://{{ s }}.hooks.example.com:8080/",
        "http://a.hooks.example.com:9000/#.hooks.example.com:8080/",
        "port 9000",
        id="port-written-other-port",
    ),
    pytest.param("https://{{ h }}:{{ p }}/", "https://a.hooks.example.com:2375/", "port 2375", id="port-built"),
    # A port written further on (in a query's URL) is not written after the host a tag builds with its scheme.
    pytest.param(
        "{{ base }}/notify?callback=https://autoremedy.example.net:8443/done",
        "https://a.hooks.example.com:8443/notify?callback=https://autoremedy.example.net:8443/done",
        "port 8443",
        id="port-written-in-a-later-url",
    ),
    pytest.param(
        "{{ base }}://x:2375/", "https://a.hooks.example.com:2375/?q=x://x:2375/", "port 2375", id="scheme-built"
    ),
    pytest.param(
        "https://{{ u }}@api.example.com:2375/",
        "https://a.hooks.example.com:2375/#@api.example.com:2375/",
        "port 2375",
        id="port-of-the-host-after-userinfo",
    ),
    pytest.param("https://{{ h }}/", "https://alt.example.com:8443/", None, id="port-in-pattern"),
    pytest.param("https://{{ h }}/", "https://alt.example.com:8444/", "port 8444", id="other-port-than-pattern"),
    pytest.param("http://[{{ h }}]:8080/", "http://[fd00::5]:8080/", "matches no", id="ipv6-not-allowed"),
    # An unbracketed IPv6 pattern is an address, not a host and a port: `fd00:*:1` is not `fd00:*` on port 1.
    pytest.param("http://[{{ h }}]/", "http://[fd00::7]:1/", "matches no", id="ipv6-pattern-is-no-port"),
    pytest.param("http://[{{ h }}]/", "http://[fd00::5:1]/", None, id="ipv6-pattern-glob"),
    pytest.param("http://[{{ h }}]/", "http://[fd00::9]:8443/", None, id="bracketed-ipv6-pattern-port"),
    pytest.param("http://169.254.169.254/latest/", "http://169.254.169.254/latest/", "link-local", id="metadata"),
    pytest.param("http://{{ h }}/", "http://[fd00:ec2::254]/", "link-local", id="metadata-v6"),
    pytest.param("http://{{ h }}/", "http://[::ffff:169.254.169.254]/", "link-local", id="mapped-metadata"),
    pytest.param("http://{{ h }}/", "http://[fe80::1]/", "link-local", id="ipv6-link-local"),
    pytest.param("http://{{ h }}/", "http://metadata.google.internal/", "metadata", id="gcp-metadata-name"),
    pytest.param(
        "https://{{ h }}/x", "https://evil.net\\.hooks.example.com/x", "backslash", id="backslash-ends-the-host"
    ),
    pytest.param(
        "https://api-prod.example.com{{ p }}", "https://api-prod.example.com\\@evil.net/", "@", id="backslash-at"
    ),
    pytest.param("ftp://x/{{ p }}", "ftp://x/y", "http:// or https://", id="scheme"),
]


@pytest.mark.parametrize(("template", "rendered", "refusal"), URL_CASES)
def test_url_refusal(template: str, rendered: str, refusal: str | None) -> None:
    found = url_refusal(template, rendered, POLICY)
    if refusal is None:
        assert found is None
    else:
        assert found is not None and refusal in found


def test_long_urls_built_from_labels_are_not_kept_after_their_check() -> None:
    # URL checks are remembered for speed; a label-built URL can be as long as every label of an alert, so the
    # token holder could otherwise pin thousands of such URLs in memory for the daemon's lifetime.
    template, value = "https://hooks.example.com/x?q={{ labels.blob }}", "a" * 64 * 1024
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(100):  # 6.4 MB of distinct URLs
            assert url_refusal(template, f"https://hooks.example.com/x?q={index}{value}", POLICY) is None
        urllib.parse.clear_cache()  # the standard library's own (128 URLs): ours is what is measured
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 1024 * 1024


def test_link_local_can_be_allowed() -> None:
    policy = UrlPolicy(allow_link_local=True)
    assert url_refusal("http://169.254.169.254/x", "http://169.254.169.254/x", policy) is None


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("169.254.1.1", True),
        ("fd00:ec2::254", True),
        ("[fe80::1%eth0]", True),
        ("10.0.0.1", False),
        ("x", False),
        ("::ffff:169.254.169.254", True),
        ("64:ff9b::a9fe:a9fe", True),  # NAT64 to 169.254.169.254
        ("2002:a9fe:a9fe::1", True),  # 6to4 for 169.254.169.254
        ("64:ff9b::808:808", False),
    ],
)
def test_is_link_local(address: str, expected: bool) -> None:
    assert is_link_local(address) is expected


@pytest.mark.parametrize(
    ("other", "same"),
    [
        ("https://h/b", True),
        ("http://h/b", False),
        ("https://h:8443/b", False),
        ("https://x/b", False),
        ("https://u@h/b", False),
    ],
)
def test_same_origin(other: str, same: bool) -> None:
    assert same_origin("https://h/a", other) is same


def test_a_refused_url_gives_the_step_a_refusal_not_the_plan_an_error() -> None:
    step = {"action": "http.request", "with": {"url": "https://api.example.com{{ alert.labels.path }}"}}
    plan = plan_for(RULE, _playbook([step]), ALERT, dry_run=False, templating=Templating(escapes=ESCAPES))
    assert plan.error is None
    assert plan.steps[0].refusal is not None and "carries credentials" in plan.steps[0].refusal


# -- validate: alert data outside a quoted PromQL string -------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "found"),
    [
        pytest.param('up{job="{{ alert.labels.job }}"}', [], id="double-quoted"),
        pytest.param("up{job={{ alert.labels.job | promql_str }}}", [], id="filtered"),
        pytest.param("up{job=~{{ alert.labels.job | promql_re }}}", [], id="regex-filtered"),
        pytest.param('up{job="a\\"{{ alert.labels.job }}"}', [], id="escaped-quote-before"),
        pytest.param("up > {{ params.threshold }}", [(0, " params.threshold ", "")], id="bare-params"),
        pytest.param("up{job={{ alert.labels.job }}}", [(0, " alert.labels.job ", "")], id="bare-label"),
        pytest.param('up{job="x"} == {{ alert.labels.v }}', [(0, " alert.labels.v ", "")], id="after-a-string"),
        pytest.param("up{job=`{{ alert.labels.job }}`}", [(0, " alert.labels.job ", "`")], id="raw-string"),
        pytest.param("up{job='{{ alert.labels.job }}'}", [(0, " alert.labels.job ", "'")], id="single-quoted"),
        pytest.param(
            'up{job="{{ alert.labels.job | promql_str }}"}', [(0, " alert.labels.job | promql_str ", '"')], id="twice"
        ),
        pytest.param("up\n  > {{ params.x }}", [(1, " params.x ", "")], id="second-line"),
        pytest.param("up > {{ rule.name }}", [], id="not-alert-data"),
        pytest.param('up{job=~"{{ alert.labels.job }}"}', [(0, " alert.labels.job ", "=~")], id="regex-matcher"),
        pytest.param('up{job!~ "{{ alert.labels.job }}"}', [(0, " alert.labels.job ", "=~")], id="negative-regex"),
        pytest.param('up{a=~"x", job="{{ alert.labels.job }}"}', [], id="regex-then-equality"),
        pytest.param('up{job=~"a|{{ rule.name }}|{{ alert.labels.j }}"}', [(0, " alert.labels.j ", "=~")], id="later"),
    ],
)
def test_unquoted_alert_values(source: str, found: list[tuple[int, str, str]]) -> None:
    assert list(unquoted_alert_values(source)) == found


# -- strict booleans -------------------------------------------------------------------------------------------------


class _Flag(BaseModel):
    force: StrictFlag = False


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("true", True), ("false", False), ("True", True), ("False", False)],
)
def test_strict_flag_accepts(value: object, expected: bool) -> None:
    assert _Flag.model_validate({"force": value}).force is expected


@pytest.mark.parametrize("value", ["yes", "no", "on", "1", "0", "y", 1, 0, "", None, "TRUE!"])
def test_strict_flag_refuses(value: object) -> None:
    with pytest.raises(ValidationError, match="must be true or false"):
        _Flag.model_validate({"force": value})
