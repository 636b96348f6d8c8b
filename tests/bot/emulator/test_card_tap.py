"""A grid leader checks a fix on the chat page: the before/after picture and the card appear in
his chat, one tap sends WeCom's card event through the encrypted callback, and the card greys
out with the decision — in a real browser."""

from __future__ import annotations

from playwright.async_api import expect

from tests.support.problem_flow import register, submit_fix

WAIT = 10_000


async def test_tapping_pass_on_the_card_closes_the_problem(page, harness):
    await register(harness, before_seed=31)
    harness.clock.advance(hours=3)
    await submit_fix(harness, "P1", "lisi", seed=32)
    await page.locator("#people-list .person", has_text="张三").click()
    card = page.locator("#messages .bubble.card").last
    await expect(card.locator(".card-title")).to_have_text("#P1 整改待核查", timeout=WAIT)
    await expect(card.locator(".card-desc")).to_have_text("1号网格 · 李四 11月25日 12:30提交")
    await expect(card.locator(".card-kv dd").nth(2)).to_have_text("拍摄于11月25日 12:28")
    # The before/after picture came just before the card.
    await expect(page.locator("#messages .row.in img.thumb")).to_have_count(1)
    async with page.expect_response("**/emulator/ui/card") as answer:
        await card.get_by_role("button", name="通过").click()
    assert (await answer.value).status == 200
    await expect(card.locator(".card-done")).to_have_text("已通过", timeout=WAIT)
    await expect(page.locator("#messages .row.in .bubble").last).to_have_text(
        "#P1 核查通过,已销号,用时3小时。", timeout=WAIT)
    await harness.settle()
    p = harness.store.get("problems", "P1")
    assert p["status"] == "closed" and p["closed_by"] == "zhangsan" and p["history"][-1]["via"] == "card"


async def test_rejecting_on_the_card_sends_the_reason_picked(page, harness):
    await register(harness)
    await submit_fix(harness, "P1", "wangwu", seed=33)
    await page.locator("#people-list .person", has_text="张三").click()
    card = page.locator("#messages .bubble.card").last
    await card.locator("select").select_option(label="照片看不清", timeout=WAIT)
    await card.get_by_role("button", name="驳回").click()
    await expect(card.locator(".card-done")).to_have_text("已驳回", timeout=WAIT)
    await harness.settle()
    p = harness.store.get("problems", "P1")
    assert p["status"] == "open" and p["history"][-1]["note"] == "照片看不清"
    assert harness.last_reply("wangwu").startswith("【整改被驳回】#P1")
