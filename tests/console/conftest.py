"""Fixtures of the console's browser tests: Debian's Chromium driven by Playwright, pages that fail on any script
error, CSP violation or request to another origin.

Nothing downloads a browser: Playwright's Python package drives the `chromium` binary from apt (`make test`
installs it). Without that binary the tests fail and say how to install it; they never skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Request, Route, async_playwright

from api.gateway.routes.console import GENERATED, SECURITY_HEADERS, UI_DIR

CHROMIUM_NAMES = ("chromium", "chromium-browser")
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def chromium_path() -> str:
    """CHROMIUM_PATH, or `chromium` on PATH; a clear failure when there is none."""
    found = os.environ.get("CHROMIUM_PATH") or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    if not found:
        pytest.fail(
            "Chromium is not installed, and the console's browser tests need it: `apt-get install -y chromium` "
            "(Debian's package; `make test` installs it as root), or set CHROMIUM_PATH to a Chromium binary"
        )
    return found


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the session; closed (and its processes gone) at the end, whatever happened."""
    args = ["--disable-dev-shm-usage", "--disable-gpu"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium's sandbox refuses to run as root (CI runs as root)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=chromium_path(), args=args, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class PageWatch:
    """What a page did that a safe page never does: script errors, CSP violations, third-party requests."""

    origin: str
    errors: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        text = message.text
        if "Content Security Policy" in text or "Trusted" in text:
            self.violations.append(text)
        elif message.type == "error" and "Failed to load resource" not in text:
            self.errors.append(text)

    def on_request(self, request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.foreign.append(request.url)

    @property
    def blocked(self) -> list[str]:
        """The requests to other origins that the page's CSP refused (the browser never sent them)."""
        return [url for url in self.foreign if any(url in violation for violation in self.violations)]

    @property
    def sent_elsewhere(self) -> list[str]:
        return [url for url in self.foreign if url not in self.blocked]

    def assert_clean(self) -> None:
        assert not self.errors, f"script errors: {self.errors}"
        assert not self.violations, f"CSP / Trusted Types violations: {self.violations}"
        assert not self.foreign, f"requests to other origins (sent, or refused by the CSP): {self.foreign}"
        assert not self.dialogs, f"dialogs opened: {self.dialogs}"


OpenPage = Callable[..., Awaitable[tuple[Page, PageWatch]]]


@pytest.fixture
async def open_page(browser: Browser) -> AsyncIterator[OpenPage]:
    """`page, watch = await open_page(origin, viewport=LAPTOP)`: a page in a fresh context (its own session
    storage), watched; every context is closed at the end of the test."""
    contexts: list[BrowserContext] = []

    async def new(origin: str, viewport: dict[str, int] | None = None, **options: object) -> tuple[Page, PageWatch]:
        context = await browser.new_context(viewport=viewport or LAPTOP, **options)  # type: ignore[arg-type]
        contexts.append(context)
        page = await context.new_page()
        watch = PageWatch(origin)
        page.on("console", watch.on_console)
        page.on("pageerror", lambda error: watch.errors.append(str(error)))
        page.on("request", watch.on_request)

        async def dismiss(dialog: object) -> None:
            watch.dialogs.append(getattr(dialog, "message", "?"))
            await dialog.dismiss()  # type: ignore[attr-defined]

        page.on("dialog", dismiss)
        return page, watch

    yield new
    for context in contexts:
        await context.close()


async def fulfill_ui(route: Route, path: str) -> bool:
    """Answer a request for the console's own files (`/ui/…`) as the gateway serves them; False for any other."""
    if not path.startswith("/ui/"):
        return False
    name = path.removeprefix("/ui/") or "index.html"
    kind = {"js": "text/javascript", "css": "text/css", "html": "text/html", "svg": "image/svg+xml"}
    body = GENERATED[name][1]() if name in GENERATED else (UI_DIR / name).read_text()
    await route.fulfill(body=body, content_type=kind[name.rsplit(".", 1)[1]], headers=dict(SECURITY_HEADERS))
    return True


async def open_stubbed_task(
    open_page: OpenPage, origin: str, session_id: str, gateway: Callable[[Route], Awaitable[None]]
) -> tuple[Page, PageWatch]:
    """The task page of `session_id`, signed in, every request to `origin` answered by `gateway`."""
    page, watch = await open_page(origin)
    await page.route(f"{origin}/**", gateway)
    await page.goto(f"{origin}/ui/")
    await page.evaluate("sessionStorage.setItem('orchestrator.apiKey', 'k')")
    await page.goto(f"{origin}/ui/#/tasks/{session_id}")
    return page, watch
