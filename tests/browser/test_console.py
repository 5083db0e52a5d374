"""The web console in a real headless Chromium (Debian's chromium + chromedriver, driven by selenium) against an
autoremedy process: sign-in, a run appearing and finishing live, a failed run's error, approving in the browser
(the action reaches a local receiver), a read-only session and forged requests refused, an ingest-only token
refused, and "why didn't it act?" explaining a cooldown. Screenshots of the main pages, light and dark, are taken
on the way (harness.Screenshots). One browser and one daemon for the module."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser.harness import DaemonUnderTest, Screenshots, ThreadedReceiver, chromium, wait_until

CONTROL = "browser-control-token-0123"
READER = "browser-read-token-0123"
INGEST = "browser-ingest-token-0123"
_fingerprints = itertools.count(1)


def rules() -> list[dict[str, Any]]:
    return [
        {"name": "web-restart", "matchers": ['alertname="WebDown"'], "playbook": "two-notes"},
        {"name": "broken", "matchers": ['alertname="BrokenThing"'], "playbook": "call-broken"},
        {
            "name": "held",
            "matchers": ['alertname="NeedsApproval"'],
            "playbook": "call-approved",
            "approval": "required",
        },
        {"name": "flapping", "matchers": ['alertname="Flapping"'], "playbook": "two-notes", "cooldown": "1h"},
        {"name": "verified", "matchers": ['alertname="Verified"'], "playbook": "note-and-verify"},
    ]


def playbooks(receiver_url: str) -> list[dict[str, Any]]:
    target = "app/{{ alert.labels.namespace }}/{{ alert.labels.app }}"
    return [
        {
            "name": "two-notes",
            "target": target,
            "steps": [
                {"name": "say", "action": "log", "with": {"message": "{{ alert.labels.alertname }} fired"}},
                {"name": "say again", "action": "log", "with": {"message": "still {{ alert.status }}"}},
            ],
        },
        {
            "name": "note-and-verify",
            "target": target,
            "steps": [
                {"name": "say", "action": "log", "with": {"message": "fixing {{ alert.labels.app }}"}},
                {"name": "check", "action": "alert.resolved", "with": {"within": "5m"}},
            ],
        },
        {
            "name": "call-broken",
            "target": target,
            "steps": [{"name": "call", "action": "http.request", "with": {"url": f"{receiver_url}/broken"}}],
        },
        {
            "name": "call-approved",
            "target": target,
            "steps": [
                {
                    "name": "call",
                    "action": "http.request",
                    "with": {"url": f"{receiver_url}/approved", "json": {"app": "{{ alert.labels.app }}"}},
                }
            ],
        },
    ]


def alert(alertname: str, app: str, *, namespace: str = "shop") -> dict[str, Any]:
    fingerprint = f"b{next(_fingerprints):015x}"
    labels = {"alertname": alertname, "app": app, "namespace": namespace, "severity": "critical"}
    return {
        "receiver": "autoremedy",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": f"{app} is down", "runbook_url": "https://runbooks.example/web"},
                "startsAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example/graph",
                "fingerprint": fingerprint,
            }
        ],
        "groupLabels": {"alertname": alertname},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example",
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alertname}"}}',
        "truncatedAlerts": 0,
    }


@pytest.fixture(scope="module")
def receiver() -> Iterator[ThreadedReceiver]:
    started = ThreadedReceiver().start()
    started.set_response("/broken", 400, "bad request: the widget is on fire")
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, receiver: ThreadedReceiver) -> Iterator[DaemonUnderTest]:
    tokens = [
        {"name": "oncall", "token": CONTROL, "scopes": ["read", "control"]},
        {"name": "viewer", "token": READER, "scopes": ["read"]},
        {"name": "alertmanager-only", "token": INGEST, "scopes": ["ingest"]},
    ]
    started = DaemonUnderTest(
        tmp_path_factory.mktemp("daemon"),
        rules=rules(),
        playbooks=playbooks(receiver.url),
        server={"auth": {"tokens": tokens}},
        engine={"poll_interval": "100ms", "retry_backoff": "50ms"},
    ).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Screenshots:
    return Screenshots(tmp_path_factory.mktemp("screenshots"))


def sign_in(browser: WebDriver, daemon: DaemonUnderTest, secret: str, *, user: str = "") -> None:
    browser.delete_all_cookies()
    browser.get(f"{daemon.url}/ui/login")
    browser.find_element(By.ID, "secret").send_keys(secret)
    if user:
        browser.find_element(By.ID, "user").send_keys(user)
    form = browser.find_element(By.CSS_SELECTOR, "form.login")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    def submitted() -> bool | None:
        try:
            form.is_displayed()
        except StaleElementReferenceException:
            return True  # the answer to the sign-in (a page, or a refusal) replaced the form's document
        return None

    # click() returns before the sign-in's answer arrives: a page opened now could race its redirect (and lose).
    wait_until(submitted, message="the sign-in form was answered")


def live(browser: WebDriver) -> None:
    """Wait until the page's Server-Sent Events stream is connected."""
    wait_until(
        lambda: browser.find_element(By.TAG_NAME, "html").get_attribute("data-live-state") == "open",
        message="the live-update stream connects",
    )


def row_of(browser: WebDriver, rule: str, status: str) -> dict[str, str] | None:
    """The id and text of the runs table's row of this rule in this status, read in one script (the table is
    replaced by live updates)."""
    found: dict[str, str] | None = browser.execute_script(
        """
        const [rule, status] = arguments;
        const row = [...document.querySelectorAll(`#runs tr[data-status='${status}']`)]
          .find(r => [...r.cells].some(c => c.innerText.trim() === rule));
        return row ? {id: row.getAttribute("data-run"), text: row.innerText} : null;
        """,
        rule,
        status,
    )
    return found


def post_form(browser: WebDriver, path: str, fields: dict[str, str]) -> int:
    """A POST made by script from the current page (cookies included), as a forged request would be; its status."""
    status: int = browser.execute_async_script(
        """
        const [path, fields, done] = arguments;
        fetch(path, {method: "POST", body: new URLSearchParams(fields), redirect: "manual"})
          .then(r => done(r.status), e => done(-1));
        """,
        path,
        fields,
    )
    return status


def read(browser: WebDriver, css: str, attribute: str | None = None) -> list[str]:
    """Texts (or an attribute) of the elements matching css, read in one script: a live update cannot replace
    them half-way through."""
    found: list[str] = browser.execute_script(
        """
        const [css, attribute] = arguments;
        return [...document.querySelectorAll(css)].map(e => attribute ? e.getAttribute(attribute) : e.innerText);
        """,
        css,
        attribute,
    )
    return found


def status_of_run(browser: WebDriver) -> str | None:
    found = read(browser, ".run-status", "data-status")
    return found[0] if found else None


def click(browser: WebDriver, css: str) -> None:
    """Click the element matching css, looked up afresh until the click lands (a live update may replace it)."""

    def clicked() -> bool:
        browser.find_element(By.CSS_SELECTOR, css).click()
        return True

    wait_until(clicked, message=f"{css} can be clicked")


def csrf_token(browser: WebDriver) -> str:
    return browser.find_element(By.CSS_SELECTOR, "form.signout input[name=csrf_token]").get_attribute("value") or ""


def test_sign_in_with_a_control_token(browser: WebDriver, daemon: DaemonUnderTest, shots: Screenshots) -> None:
    browser.delete_all_cookies()
    browser.get(f"{daemon.url}/ui/runs")
    assert browser.current_url.startswith(f"{daemon.url}/ui/login")
    shots.take(browser, "login")
    sign_in(browser, daemon, CONTROL)
    wait_until(lambda: browser.current_url == f"{daemon.url}/ui/runs", message="back on the runs page")
    assert "token:oncall" in browser.find_element(By.CSS_SELECTOR, "form.signout").text
    (cookie,) = browser.get_cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert browser.execute_script("return document.cookie") == ""  # HttpOnly: no script reads it


def test_an_ingest_only_token_cannot_sign_in(browser: WebDriver, daemon: DaemonUnderTest) -> None:
    sign_in(browser, daemon, INGEST)
    problem = wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, ".problem"), message="a refusal")
    assert "may only send alerts" in problem[0].text
    assert browser.get_cookies() == []
    browser.get(f"{daemon.url}/ui/runs")
    assert browser.current_url.startswith(f"{daemon.url}/ui/login")


def test_a_posted_alert_appears_live_and_succeeds_with_its_steps(
    browser: WebDriver, daemon: DaemonUnderTest, shots: Screenshots
) -> None:
    sign_in(browser, daemon, CONTROL)
    browser.get(f"{daemon.url}/ui/runs")
    live(browser)
    browser.execute_script("window.notReloaded = true")
    daemon.post_alerts(alert("WebDown", "web"), INGEST)
    row = wait_until(lambda: row_of(browser, "web-restart", "succeeded"), message="the run appears and succeeds")
    assert browser.execute_script("return window.notReloaded") is True  # the page was updated, not reloaded
    assert "2 / 2" in row["text"]
    shots.take(browser, "runs")
    click(browser, f"a[href='/ui/runs/{row['id']}']")
    wait_until(lambda: read(browser, ".timeline li.step"), message="the steps")
    assert read(browser, ".timeline li.step", "data-outcome") == ["done", "done"]
    steps = read(browser, ".timeline li.step h3")
    assert steps[0].startswith("1. say") and steps[1].startswith("2. say again")
    assert status_of_run(browser) == "succeeded"
    page = browser.find_element(By.TAG_NAME, "main").text
    assert 'alertname="WebDown"' in page and "allowed" in page  # why it matched, and the guardrail verdict
    link = browser.find_element(By.LINK_TEXT, "https://runbooks.example/web")
    assert link.get_attribute("href") == "https://runbooks.example/web"
    shots.take(browser, "run")


def resolved(firing: dict[str, Any]) -> dict[str, Any]:
    payload = copy.deepcopy(firing)
    payload["status"] = payload["alerts"][0]["status"] = "resolved"
    payload["alerts"][0]["endsAt"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return payload


def test_a_verification_passes_live_when_the_alert_resolves(browser: WebDriver, daemon: DaemonUnderTest) -> None:
    sign_in(browser, daemon, READER)
    browser.get(f"{daemon.url}/ui/runs?rule=verified")
    live(browser)
    firing = alert("Verified", "queue")
    daemon.post_alerts(firing, INGEST)
    row = wait_until(lambda: row_of(browser, "verified", "waiting"), message="the run waits for the alert to resolve")
    click(browser, f"a[href='/ui/runs/{row['id']}']")
    live(browser)
    assert read(browser, ".verifications li", "data-outcome") == ["pending"]
    daemon.post_alerts(resolved(firing), INGEST)
    wait_until(lambda: status_of_run(browser) == "succeeded", message="the run goes on when the alert resolves")
    browser.refresh()  # the verification section is not a live region
    (verification,) = read(browser, ".verifications li")
    assert verification.startswith("2. check alert.resolved") and "passed" in verification


def test_a_failed_run_shows_its_error(browser: WebDriver, daemon: DaemonUnderTest, shots: Screenshots) -> None:
    sign_in(browser, daemon, READER)
    browser.get(f"{daemon.url}/ui/runs?status=failed")
    live(browser)
    daemon.post_alerts(alert("BrokenThing", "api"), INGEST)
    row = wait_until(lambda: row_of(browser, "broken", "failed"), message="the failed run appears")
    click(browser, f"a[href='/ui/runs/{row['id']}']")
    error = wait_until(lambda: read(browser, ".step-error"), message="the step's error")
    assert "400" in error[0]
    assert read(browser, ".timeline li.step", "data-outcome") == ["failed"]
    shots.take(browser, "run-failed")


def test_approve_in_the_browser_and_the_action_reaches_the_receiver(
    browser: WebDriver, daemon: DaemonUnderTest, receiver: ThreadedReceiver, shots: Screenshots
) -> None:
    sign_in(browser, daemon, CONTROL)
    browser.get(f"{daemon.url}/ui/approvals")
    live(browser)
    daemon.post_alerts(alert("NeedsApproval", "checkout"), INGEST)
    wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, "li.card button.approve"),
        message="the held run appears with an Approve button, without a reload",
    )
    shots.take(browser, "approvals")
    assert receiver.requests_to("/approved") == []
    click(browser, "li.card button.approve")
    wait_until(lambda: status_of_run(browser) == "succeeded", message="the approved run succeeds (live on its page)")
    (request,) = wait_until(lambda: receiver.requests_to("/approved"), message="the action reached the receiver")
    assert request.json == {"app": "checkout"}
    audit = browser.find_element(By.CSS_SELECTOR, "section[aria-labelledby=h-audit]").text
    assert "approved" in audit and "token:oncall" in audit


def test_a_read_only_session_has_no_approve_button_and_its_forged_post_is_403(
    browser: WebDriver, daemon: DaemonUnderTest
) -> None:
    daemon.post_alerts(alert("NeedsApproval", "cart"), INGEST)
    sign_in(browser, daemon, READER)

    def held() -> Any:
        browser.get(f"{daemon.url}/ui/approvals")
        return browser.find_elements(By.CSS_SELECTOR, "li.card[data-run]")

    wait_until(held, message="the held run is listed")
    (run_id,) = [run for run in read(browser, "li.card[data-run]", "data-run") if run]
    assert browser.find_elements(By.CSS_SELECTOR, "button.approve, button.deny") == []
    assert "no control scope" in read(browser, "li.card")[0]
    # Same origin, its own session cookie and CSRF token: everything but the right.
    assert post_form(browser, f"/ui/runs/{run_id}/approve", {"csrf_token": csrf_token(browser)}) == 403
    browser.get(f"{daemon.url}/ui/runs/{run_id}")
    assert status_of_run(browser) == "awaiting_approval"


def test_a_post_without_the_csrf_token_or_from_another_origin_is_403(
    browser: WebDriver, daemon: DaemonUnderTest, receiver: ThreadedReceiver, shots: Screenshots
) -> None:
    sign_in(browser, daemon, CONTROL)
    browser.get(f"{daemon.url}/ui/guardrails")
    token = csrf_token(browser)
    assert post_form(browser, "/ui/pause", {"reason": "no token"}) == 403
    assert post_form(browser, "/ui/pause", {"csrf_token": "forged", "reason": "wrong token"}) == 403
    # Another origin (the receiver's port) submits a form to the console, even with a valid token.
    browser.get(f"{receiver.url}/elsewhere")
    browser.execute_script(
        """
        const [action, token] = arguments;
        const form = document.createElement("form");
        form.method = "POST"; form.action = action;
        for (const [name, value] of [["csrf_token", token], ["reason", "cross-site"]]) {
          const input = document.createElement("input");
          input.type = "hidden"; input.name = name; input.value = value; form.appendChild(input);
        }
        document.body.appendChild(form); form.submit();
        """,
        f"{daemon.url}/ui/pause",
        token,
    )
    wait_until(lambda: browser.current_url == f"{daemon.url}/ui/pause", message="the cross-origin form is sent")
    assert "Origin" in wait_until(lambda: browser.find_element(By.CSS_SELECTOR, ".problem").text, message="403 page")
    browser.get(f"{daemon.url}/ui/guardrails")
    assert "Nothing is paused." in browser.find_element(By.TAG_NAME, "main").text
    # The same form from the console itself works: pause, then resume.
    browser.find_element(By.ID, "pause-reason").send_keys("deploy in progress")
    browser.find_element(By.CSS_SELECTOR, "form.pause button").click()
    wait_until(lambda: "deploy in progress" in browser.find_element(By.TAG_NAME, "main").text, message="paused")
    assert "token:oncall" in browser.find_element(By.TAG_NAME, "main").text
    browser.find_element(By.XPATH, "//button[starts-with(normalize-space(.), 'Resume')]").click()
    wait_until(lambda: "Nothing is paused." in browser.find_element(By.TAG_NAME, "main").text, message="resumed")


def test_why_didnt_it_act_explains_a_cooldown_skip(
    browser: WebDriver, daemon: DaemonUnderTest, shots: Screenshots
) -> None:
    sign_in(browser, daemon, READER)
    first, second, unmatched = alert("Flapping", "db"), alert("Flapping", "db"), alert("NobodyCares", "x")
    daemon.post_alerts(first, INGEST)
    browser.get(f"{daemon.url}/ui/runs?rule=flapping")
    wait_until(lambda: row_of(browser, "flapping", "succeeded"), message="the first run succeeds")
    daemon.post_alerts(second, INGEST)
    daemon.post_alerts(unmatched, INGEST)
    skipped = second["alerts"][0]["fingerprint"]
    ignored = unmatched["alerts"][0]["fingerprint"]

    def decided() -> Any:
        browser.get(f"{daemon.url}/ui/alerts")
        rows = {
            row.get_attribute("data-fingerprint"): row.text
            for row in browser.find_elements(By.CSS_SELECTOR, "tr[data-fingerprint]")
        }
        done = "skipped" in rows.get(skipped, "") and "no rule matched" in rows.get(ignored, "")
        return rows if done else None

    rows = wait_until(decided, message="both alerts are decided")
    assert "skipped: cooldown" in rows[skipped] and "until" in rows[skipped]
    assert "nothing: no rule matched" in rows[ignored]
    shots.take(browser, "alerts")
    browser.find_element(By.CSS_SELECTOR, f"tr[data-fingerprint='{skipped}'] a[href^='/ui/alerts/']").click()
    story = browser.find_element(By.CSS_SELECTOR, "ol.story").text
    assert "rule flapping matched" in story and "guardrail cooldown (skip)" in story and "until" in story
    shots.take(browser, "why")
    browser.get(f"{daemon.url}/ui/guardrails")
    limits = read(browser, "section[aria-labelledby=h-limits] tbody tr")
    assert any(row.startswith("flapping\tapp/shop/db") and "UTC" in row for row in limits), limits
    shots.take(browser, "guardrails")


def test_screenshots_were_taken(shots: Screenshots) -> None:
    names = {path.name for path in shots.taken}
    for page in ("login", "runs", "run", "run-failed", "approvals", "guardrails", "alerts", "why"):
        assert {f"{page}-light.png", f"{page}-dark.png"} <= names
    assert all(Path(path).stat().st_size > 10_000 for path in shots.taken)


def test_signing_out_ends_the_live_updates_of_open_pages(browser: WebDriver, daemon: DaemonUnderTest) -> None:
    sign_in(browser, daemon, READER)
    browser.get(f"{daemon.url}/ui/runs")
    live(browser)
    first = browser.current_window_handle
    browser.switch_to.new_window("tab")
    try:
        browser.get(f"{daemon.url}/ui/alerts")
        browser.find_element(By.CSS_SELECTOR, "form.signout button").click()
        wait_until(lambda: "/ui/login" in browser.current_url, message="signed out")
    finally:
        browser.close()
        browser.switch_to.window(first)
    wait_until(
        lambda: browser.find_element(By.ID, "live-note").is_displayed(),
        message="the open page says its live updates stopped",
    )
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("data-live-state") == "closed"


def test_pages_fit_a_phone_screen(browser: WebDriver, daemon: DaemonUnderTest, shots: Screenshots) -> None:
    sign_in(browser, daemon, CONTROL)
    browser.set_window_size(390, 844)
    try:
        for path in ("/ui/runs", "/ui/alerts", "/ui/approvals", "/ui/guardrails"):
            browser.get(f"{daemon.url}{path}")
            overflow = browser.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{path} is {overflow}px wider than a phone screen"  # wide tables scroll inside
        browser.get(f"{daemon.url}/ui/runs")
        shots.take(browser, "runs-phone")
    finally:
        browser.set_window_size(1280, 1000)
