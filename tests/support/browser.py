"""Opening the bot's chat page in the headless browser (tests of the emulator's pages)."""

from __future__ import annotations


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
