"""A real headless browser (Debian's chromium, driven by playwright) on the bot's chat page."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from tests.support.browser import open_page

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


@pytest.fixture
async def page(browser, harness):
    p = await open_page(browser, harness)
    yield p
    errors = list(p.errors)
    await p.context.close()
    assert not errors, f"JavaScript errors on the chat page: {errors}"
