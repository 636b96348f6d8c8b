"""A real headless browser (Debian's chromium, driven by playwright) on the bot's chat page."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import async_playwright

CHROMIUM = Path("/usr/bin/chromium")
# Playwright's own browser download cannot work on these machines: use the system chromium,
# with everything that would reach the network switched off.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
async def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the chat page tests need Debian's chromium "
                    "(run `make system-deps`, i.e. apt-get install -y chromium fonts-wqy-microhei)")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


async def open_page(browser, harness, *, width: int = 1280, height: int = 800, fragment: str = ""):
    """The chat page of the harness's bot, loaded and showing its first person."""
    ctx = await browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
    page = await ctx.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    origin = str(harness.client.make_url("/"))
    # The machines have no internet: the page must not load anything (CDN, fonts) from elsewhere.
    page.on("request", lambda r: r.url.startswith((origin, "data:")) or page.errors.append(f"external: {r.url}"))
    await page.goto(origin + fragment)
    await page.wait_for_selector("body[data-ready='1']", timeout=10_000)
    return page


@pytest.fixture
async def page(browser, harness):
    p = await open_page(browser, harness)
    yield p
    errors = list(p.errors)
    await p.context.close()
    assert not errors, f"JavaScript errors on the chat page: {errors}"
