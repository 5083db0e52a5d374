"""The browser suite's parts: Debian's Chromium driven through Debian's chromedriver by selenium, a real autoremedy
process, and the recording receiver on a thread of its own (the tests are synchronous: selenium blocks).

Screenshots go to a temp dir during every run; with AUTOREMEDY_CONSOLE_SCREENSHOTS=<dir> (scripts/
console-screenshots.sh sets docs/console) they are written there as well, to refresh the ones the docs show.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.daemon import write_daemon_config
from tests.support.procs import ManagedProcess
from tests.support.receiver import RecordingReceiver

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS_ENV = "AUTOREMEDY_CONSOLE_SCREENSHOTS"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests may run as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-proxy-server",
    "--window-size=1280,1000",
)
T = TypeVar("T")


@contextmanager
def chromium(profile: Path) -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile; quit (with chromedriver) even when the test failed."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    # Both paths given: selenium's driver manager never looks for (or downloads) a browser or a driver.
    os.environ["SE_OFFLINE"] = "true"
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER, log_output=os.devnull))
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()


def wait_until(predicate: Callable[[], T | None], *, timeout: float = 20.0, message: str) -> T:
    """Poll until predicate returns something truthy (a page being replaced, by a live update or a navigation,
    counts as not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
        except (StaleElementReferenceException, NoSuchElementException):
            result = None
        except WebDriverException as exc:  # Chromium's wording for a node a live update just replaced
            if "does not belong to the document" not in str(exc):
                raise
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (not true within {timeout}s)")
        time.sleep(0.05)


class ThreadedReceiver:
    """The recording receiver (tests/support/receiver.py) on an event loop in a thread of its own."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="receiver", daemon=True)
        self.receiver = RecordingReceiver()

    def _call(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=30)

    def start(self) -> ThreadedReceiver:
        self._thread.start()
        self._call(self.receiver.start())
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self.receiver.stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    def set_response(self, path: str, status: int, body: str) -> None:
        self._loop.call_soon_threadsafe(self.receiver.set_response, path, status, body)

    @property
    def url(self) -> str:
        return self.receiver.url

    def requests_to(self, path: str) -> list[Any]:
        return list(self.receiver.requests_to(path))


class DaemonUnderTest:
    """autoremedy as a process on a free port, with its config written into the test's directory."""

    def __init__(self, root: Path, *, rules: list[dict[str, Any]], playbooks: list[dict[str, Any]], **config: Any):
        self.config_path = write_daemon_config(root, rules=rules, playbooks=playbooks, **config)
        listen = yaml.safe_load(self.config_path.read_text())["server"]["listen"]
        self.url = f"http://{listen}"
        self.proc = ManagedProcess(
            [sys.executable, "-m", "autoremedy", "--config", str(self.config_path), "serve"],
            log_dir=root / "logs",
            name="autoremedy",
            base_url=self.url,
        )

    def start(self) -> DaemonUnderTest:
        self.proc.start()
        try:
            asyncio.run(self.proc.wait_http_ok(f"{self.url}/readyz", deadline_s=30))
        except BaseException:
            self.proc.stop()
            raise
        return self

    def stop(self) -> None:
        self.proc.stop()

    def post_alerts(self, payload: dict[str, Any], token: str) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/api/v1/alerts",
            data=json.dumps(payload).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body: dict[str, Any] = json.loads(response.read())
            return body


class Screenshots:
    """Screenshots of the console's pages, light and dark, into the run's temp dir (and the docs when asked)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.docs = Path(os.environ[SCREENSHOTS_ENV]) if os.environ.get(SCREENSHOTS_ENV) else None
        self.taken: list[Path] = []

    def take(self, driver: WebDriver, name: str) -> None:
        for scheme in ("light", "dark"):
            driver.execute_cdp_cmd(
                "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]}
            )
            png = driver.get_screenshot_as_png()
            for directory in filter(None, (self.directory, self.docs)):
                directory.mkdir(parents=True, exist_ok=True)
                path = directory / f"{name}-{scheme}.png"
                path.write_bytes(png)
                self.taken.append(path)
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
