"""Headless Chromium (the distribution's ``chromium`` + ``chromedriver``) driven by Selenium, for tests that look
at a page as a reader would. Without the browser a test is skipped, except under CI (CI=true), where it fails."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1600")


def _tools() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    message = "headless Chromium needs the Debian packages chromium and chromium-driver (.ci/run installs them)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def chromium(profile: Path) -> Iterator[object]:
    """A headless Chromium session with a fresh profile in ``profile``, logging the network (performance log)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _tools()
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in (*CHROMIUM_ARGS, f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def requested_urls(driver) -> list[str]:
    """Every URL the page asked for since the last call (Chrome's performance log, Network.requestWillBeSent)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def all_images_loaded(driver) -> list[int]:
    """naturalWidth of every <img> of the page (0: it did not load), after the page finished loading."""
    return driver.execute_script(
        "return Array.from(document.images).map(i => (i.complete ? i.naturalWidth : 0));")
