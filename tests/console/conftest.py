"""Browser fixtures: Playwright driving the system's Chromium headless (Playwright cannot
download browsers here). Without Chromium these tests skip with how to get it; in CI
(``CI=true``) they fail instead, so they always run there."""

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, sync_playwright

from producers import Producer
from producers.api import create_app
from simulator.server import ThreadedServer

DOCS_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
HOW = (
    "browser tests need Chromium: `apt-get install -y chromium` (Debian/Ubuntu), "
    "or point GENQ_CHROMIUM at a Chromium or Chrome binary"
)


def chromium_path() -> str | None:
    given = os.environ.get("GENQ_CHROMIUM")
    if given:
        return given
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Chromium for this package's tests only: Playwright's sync API keeps an event loop
    running in the main thread until it stops, which later tests' own loops cannot share."""
    path = chromium_path()
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the browser tests: {HOW}")
        pytest.skip(HOW)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=path, headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context; a dialog (which an injected script would open) fails."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    dialogs: list[str] = []
    opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    yield opened
    context.close()
    assert dialogs == [], f"a page ran a script: {dialogs}"


@dataclass(frozen=True)
class Live:
    url: str
    app: FastAPI


@pytest.fixture
def live(producer: Producer) -> Iterator[Live]:
    """The API, console included, on a free port in this process."""
    app = create_app(producer)
    with ThreadedServer(app) as server:
        yield Live(server.url, app)


@pytest.fixture
def shot(tmp_path: Path) -> Callable[[Page, str], None]:
    """Save a screenshot of the page as <name>.png: in the test's own folder, or in
    docs/console/ (the README's pictures) when GENQ_REFRESH_SCREENSHOTS=1."""
    shots = DOCS_SHOTS if os.environ.get("GENQ_REFRESH_SCREENSHOTS") == "1" else tmp_path

    def save(page: Page, name: str) -> None:
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    return save


def sign_in(page: Page, base: str, key: str) -> None:
    page.goto(f"{base}/console/sign-in")
    page.get_by_label("Admin key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/console")
