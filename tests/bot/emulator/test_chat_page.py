"""The emulator's chat page in a real browser: a person picks a member, types, sends a photo or a
location, and sees the bot's replies, the group pushes and what leaders received, live."""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageDraw
from playwright.async_api import expect

from tests.support.browser import open_page

WAIT = 10_000  # ms; the bot answers in well under a second, this is only a ceiling


def jpeg(color=(70, 130, 180), size=(640, 480)) -> bytes:
    img = Image.new("RGB", size, color)
    d = ImageDraw.Draw(img)
    d.rectangle([40, 40, size[0] - 40, size[1] - 40], outline=(255, 255, 255), width=8)
    d.ellipse([size[0] // 2 - 60, size[1] // 2 - 60, size[0] // 2 + 60, size[1] // 2 + 60], fill=(240, 200, 60))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def person(page, name):
    return page.locator("#people-list .person", has_text=name)


async def say(page, text):
    box = page.locator("#input")
    await box.fill(text)
    await box.press("Enter")


async def sent(page, action):
    """Run a UI action that sends, and wait until the emulator has delivered it to the bot
    (the page shows the message as soon as the emulator logs it, a moment earlier)."""
    async with page.expect_response("**/emulator/ui/send") as info:
        await action
    response = await info.value
    assert response.status == 200, await response.text()


async def test_report_reply_appears_live(page, harness):
    await person(page, "李四").click()
    await expect(page.locator("#me-title")).to_contain_text("李四")
    await say(page, "清理小广告15处,入户走访十二户")

    mine = page.locator("#messages .row.out .bubble")
    await expect(mine.last).to_have_text("清理小广告15处,入户走访十二户", timeout=WAIT)
    reply = page.locator("#messages .row.in .bubble").last
    await expect(reply).to_contain_text("已记录", timeout=WAIT)
    await expect(reply).to_contain_text("小广告清理 15处")
    await expect(reply).to_contain_text("入户走访 12户")
    await expect(page.locator("#input")).to_have_value("")
    await expect(page.locator("#status")).not_to_have_class("status err")
    # The group beside the chat is the person's own grid.
    await expect(page.locator("#side-title")).to_have_text("1号网格群")
    # The page only showed what the bot really sent.
    assert "已记录" in harness.last_reply("lisi")

    # Something else happens meanwhile: a group push with @mentions and a leader's digest.
    harness.bot.transport.push_text("g1", "【今日打卡提醒】截至17:00,尚未打卡:@张三 @王五,请于20:00前拍照打卡。",
                                    mentioned=["zhangsan", "wangwu", "lisi"])
    harness.bot.transport.send_markdown("zhoushuji", "# 幸福社区第48周工作简报\n**一、本周工作开展情况**\n上报 23条")
    await harness.settle()
    push = page.locator("#side-messages .row .bubble").last
    await expect(push).to_contain_text("【今日打卡提醒】", timeout=WAIT)
    await expect(push.locator(".at", has_text="@张三")).to_have_count(1)
    await expect(push.locator(".at", has_text="@王五")).to_have_count(1)
    # 李四 is in the mentioned list but not in the text: @'d at the end, marked as "me".
    await expect(push.locator(".at.me")).to_have_text("@李四")
    await expect(page.locator("#side-messages .tag-me")).to_have_text("有人@我")
    await expect(page.locator(".tab[data-tab='__leaders__'] .n")).to_have_text("1")

    await page.locator("#photo-input").set_input_files(
        files=[{"name": "打卡.jpg", "mimeType": "image/jpeg", "buffer": jpeg()}])
    await expect(page.locator("#messages .row.out img.thumb")).to_have_count(1, timeout=WAIT)
    await harness.settle()
    await page.wait_for_timeout(300)
    await page.screenshot(path="/tmp/chat.png")


async def test_photo_shows_as_thumbnail_that_opens(page, harness):
    await person(page, "李四").click()
    data = jpeg()
    await sent(page, page.locator("#photo-input").set_input_files(
        files=[{"name": "现场.jpg", "mimeType": "image/jpeg", "buffer": data}]))
    thumb = page.locator("#messages .row.out img.thumb")
    await expect(thumb).to_have_count(1, timeout=WAIT)
    await expect(thumb).to_be_visible()
    # The thumbnail really loaded the bytes that were sent (not a broken image).
    await page.wait_for_function("() => { const i = document.querySelector('#messages img.thumb');"
                                 " return i && i.complete && i.naturalWidth === 640; }", timeout=WAIT)
    src = await thumb.get_attribute("src")
    got = await harness.client.get(src)
    assert await got.read() == data
    # The bot received it as a WeCom image message.
    await harness.settle()
    kinds = [d["event"]["kind"] for d in harness.store.docs("inbox") if d["event"]["sender"] == "lisi"]
    assert "image" in kinds
    await thumb.click()
    await expect(page.locator("#lightbox")).to_be_visible()
    await expect(page.locator("#lightbox-img")).to_have_attribute("src", src)
    await page.keyboard.press("Escape")
    await expect(page.locator("#lightbox")).to_be_hidden()


async def test_photo_dropped_onto_the_chat_is_sent(page, harness):
    await person(page, "王五").click()
    data = jpeg(color=(180, 90, 60))
    drop = page.evaluate("""async (b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], "拖入.jpg", { type: "image/jpeg" }));
        const chat = document.querySelector("#messages");
        chat.dispatchEvent(new DragEvent("dragenter", { dataTransfer: dt, bubbles: true, cancelable: true }));
        chat.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    }""", base64.b64encode(data).decode())
    await sent(page, drop)
    thumb = page.locator("#messages .row.out img.thumb")
    await expect(thumb).to_have_count(1, timeout=WAIT)
    got = await harness.client.get(await thumb.get_attribute("src"))
    assert await got.read() == data
    await expect(page.locator("#chat")).not_to_have_class("chat dragging")


async def test_html_in_messages_is_shown_literally(page, harness):
    await person(page, "王五").click()
    evil = '看看<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
    await say(page, evil)
    await expect(page.locator("#messages .row.out .bubble").last).to_have_text(evil, timeout=WAIT)

    # The bot's markdown (and what a leader receives) gets headings and bold, never raw HTML.
    harness.bot.transport.send_markdown(
        "wangwu", '## 本周小结\n**已完成** 3项\n<img src=x onerror="window.__pwned=3"> <b>不是粗体</b>')
    harness.bot.transport.push_text("g1", "提醒<script>window.__pwned=4</script>@王五", mentioned=["wangwu"])
    await harness.settle()
    md = page.locator("#messages .row.in .bubble.md").last
    await expect(md.locator(".h2")).to_have_text("本周小结", timeout=WAIT)
    await expect(md.locator("strong")).to_have_text("已完成")
    await expect(md).to_contain_text('<img src=x onerror="window.__pwned=3"> <b>不是粗体</b>')
    push = page.locator("#side-messages .bubble").last
    await expect(push).to_contain_text("提醒<script>window.__pwned=4</script>@王五", timeout=WAIT)
    await expect(push.locator(".at.me")).to_have_text("@王五")

    assert await page.evaluate("() => window.__pwned") is None
    assert await page.locator("img[src='x'], #messages script, #side-messages script, #messages b").count() == 0


async def test_switching_person_shows_that_persons_chat(page, harness):
    await person(page, "李四").click()
    await say(page, "清理小广告15处")
    await expect(page.locator("#messages .row.in .bubble").last).to_contain_text("已记录", timeout=WAIT)

    await person(page, "周八").click()
    await expect(page.locator("#me-title")).to_contain_text("周八")
    await expect(page.locator("#messages .row")).to_have_count(0)
    await expect(page.locator("#messages .empty")).to_contain_text("还没有消息")
    await expect(page.locator("#side-title")).to_have_text("2号网格群")
    await say(page, "入户走访8户")
    await expect(page.locator("#messages .row.in .bubble").last).to_contain_text("入户走访 8户", timeout=WAIT)
    assert "入户走访 8户" in harness.last_reply("zhouba")
    assert not any("入户走访 8户" in r for r in harness.replies("lisi"))

    # A reply for someone not on screen raises an unread badge beside their name.
    await harness.text("lisi", "劝导不文明行为5次")
    await expect(person(page, "李四").locator(".unread")).to_have_text("1", timeout=WAIT)
    await person(page, "李四").click()
    await expect(page.locator("#messages")).to_contain_text("清理小广告15处")
    await expect(page.locator("#messages")).not_to_contain_text("入户走访8户")
    await expect(page.locator("#messages .row.in .bubble").last).to_contain_text("文明劝导 5次")
    await expect(person(page, "李四").locator(".unread")).to_have_count(0)
    # The choice survives a reload (it is in the address).
    await page.reload()
    await page.wait_for_selector("body[data-ready='1']")
    await expect(page.locator("#me-title")).to_contain_text("李四")


async def test_people_are_grouped_by_grid_with_role_badges(page):
    groups = await page.locator("#people-list .group-title").all_inner_texts()
    assert [g.split("\n")[0] for g in groups] == ["1号网格", "2号网格", "街道与社区"]
    await expect(person(page, "张三").locator(".badge")).to_have_text("网格长")
    await expect(person(page, "李四").locator(".badge")).to_have_text("网格员")
    await expect(person(page, "周书记").locator(".badge")).to_have_text("领导")
    await expect(person(page, "管理员").locator(".badge")).to_have_text("管理员")
    await page.locator("#filter").fill("周")
    await expect(page.locator("#people-list .person")).to_have_count(2)


async def test_leader_messages_text_image_and_file(page, harness):
    png = io.BytesIO()
    Image.new("RGB", (320, 200), (200, 80, 80)).save(png, "PNG")
    harness.bot.transport.send_text("zhoushuji", "幸福社区第48周工作简报已生成")
    harness.bot.transport.send_image("zhoushuji", png.getvalue(), "第48周.png")
    harness.bot.transport.send_file("zhoushuji", b"PK\x03\x04 fake xlsx bytes", "幸福社区第48周台账.xlsx")
    harness.bot.transport.send_text("lisi", "不是领导消息")
    await harness.settle()
    await page.locator(".tab[data-tab='__leaders__']").click()
    side = page.locator("#side-messages")
    await expect(side.locator(".row")).to_have_count(3, timeout=WAIT)
    await expect(side.locator(".to-line").first).to_contain_text("周书记")
    await expect(side).not_to_contain_text("不是领导消息")
    await expect(side.locator("img.thumb")).to_have_count(1)
    link = side.locator("a.file")
    await expect(link).to_contain_text("幸福社区第48周台账.xlsx")
    assert await link.get_attribute("download") == "幸福社区第48周台账.xlsx"
    got = await harness.client.get(await link.get_attribute("href"))
    assert await got.read() == b"PK\x03\x04 fake xlsx bytes"
    # The leader sees the same messages in their own chat.
    await person(page, "周书记").click()
    await expect(page.locator("#messages .row.in")).to_have_count(3)


async def test_location_button_sends_a_location(page, harness):
    await person(page, "张三").click()
    await sent(page, page.locator("#loc-btn").click())
    await expect(page.locator("#messages .row.out .loc")).to_be_visible(timeout=WAIT)
    await harness.settle()
    locs = [d["event"] for d in harness.store.docs("inbox") if d["event"]["kind"] == "location"]
    assert len(locs) == 1 and locs[0]["sender"] == "zhangsan"


async def test_failed_send_shows_status_and_keeps_text(page, harness):
    await person(page, "李四").click()
    await page.route("**/emulator/ui/send", lambda route: route.fulfill(status=502, body="bad gateway"))
    await say(page, "入户走访3户")
    await expect(page.locator("#status")).to_contain_text("发送失败", timeout=WAIT)
    await expect(page.locator("#status")).to_have_class("status err")
    await expect(page.locator("#input")).to_have_value("入户走访3户")
    await page.unroute("**/emulator/ui/send")
    await page.locator("#send").click()
    await expect(page.locator("#messages .row.in .bubble").last).to_contain_text("入户走访 3户", timeout=WAIT)
    await expect(page.locator("#status")).to_have_text("")


async def test_phone_width(browser, harness):
    page = await open_page(browser, harness, width=390, height=844, fragment="#lisi")
    try:
        await expect(page.locator("#people")).not_to_be_in_viewport()
        await page.locator("#switch-person").click()
        await person(page, "王五").click()
        await expect(page.locator("#me-title")).to_contain_text("王五")
        await expect(page.locator("#people")).not_to_be_in_viewport()
        await say(page, "巡查巡逻2次")
        await expect(page.locator("#messages .row.in .bubble").last).to_contain_text("已记录", timeout=WAIT)
        # Nothing spills sideways on a phone.
        assert await page.evaluate("() => document.documentElement.scrollWidth") <= 390
        harness.bot.transport.push_text("g1", "今日打卡提醒", mentioned=["wangwu"])
        await harness.settle()
        await expect(page.locator("#mobile-unread")).to_have_text("1", timeout=WAIT)
        await page.screenshot(path="/tmp/chat-phone.png")
        await page.locator("#mobile-nav button[data-view='side']").click()
        await expect(page.locator("#side-messages")).to_contain_text("今日打卡提醒")
        await expect(page.locator("#messages")).to_be_hidden()
        await page.screenshot(path="/tmp/chat-phone-side.png")
        assert not page.errors
    finally:
        await page.context.close()


async def test_checkin_records_show_thumbnails_and_flags(page, harness):
    """The 打卡记录 tab shows each check-in's thumbnail and what the evidence checks decided."""
    data = jpeg(color=(30, 160, 90))
    for name in ("李四", "王五"):  # 王五 forwards 李四's photo
        await person(page, name).click()
        await sent(page, page.locator("#photo-input").set_input_files(
            files=[{"name": "现场.jpg", "mimeType": "image/jpeg", "buffer": data}]))
        await harness.settle()
    await page.locator('#tabs [data-tab="__checkins__"]').click()
    cards = page.locator("#checkin-cards .card")
    await expect(cards).to_have_count(2, timeout=WAIT)
    first, second = cards.nth(1), cards.nth(0)  # newest first
    await expect(first).to_contain_text("李四")
    await expect(first).to_contain_text("已计入")
    await expect(second).to_contain_text("王五")
    await expect(second).to_contain_text("未计入")
    await expect(second.locator(".flag", has_text="重复")).to_be_visible()
    # Both thumbnails are real images served from the bot's data folder.
    await page.wait_for_function("() => [...document.querySelectorAll('#checkin-cards img')]"
                                 ".every(i => i.complete && i.naturalWidth > 0)", timeout=WAIT)
    # A new check-in shows up without reloading.
    await person(page, "周八").click()
    await sent(page, page.locator("#photo-input").set_input_files(
        files=[{"name": "a.jpg", "mimeType": "image/jpeg", "buffer": jpeg(color=(200, 40, 40), size=(800, 600))}]))
    await expect(cards).to_have_count(3, timeout=WAIT)


async def test_conversation_follows_the_answer_to_a_photo(page, harness):
    """A long conversation, then a photo: the chat ends on the bot's answer, not above it."""
    await person(page, "李四").click()
    for i in range(1, 21):
        harness.bot.transport.send_text("lisi", f"第{i}条通知:请各网格员按时拍照打卡,发现问题及时上报。")
    await harness.settle()
    box = page.locator("#messages")
    await expect(box.locator(".row.in")).to_have_count(20, timeout=WAIT)
    assert await box.evaluate("b => b.scrollHeight > 2 * b.clientHeight"), "the conversation must scroll"

    await sent(page, page.locator("#photo-input").set_input_files(
        files=[{"name": "打卡.jpg", "mimeType": "image/jpeg", "buffer": jpeg()}]))
    await harness.settle()
    await expect(box.locator(".row.in")).to_have_count(21, timeout=WAIT)
    await page.wait_for_function("() => { const i = document.querySelector('#messages img.thumb');"
                                 " return i && i.complete && i.naturalWidth > 0; }", timeout=WAIT)
    answer = box.locator(".row").last
    await expect(answer).to_have_attribute("data-kind", "app_message")
    await expect(answer).to_be_in_viewport(ratio=1, timeout=WAIT)
    assert await box.evaluate("b => b.scrollHeight - b.scrollTop - b.clientHeight") < 2
    # Scrolled up to read, the reader stays there when something new arrives.
    await box.evaluate("b => { b.scrollTop = 0; }")
    await page.wait_for_timeout(100)
    harness.bot.transport.send_text("lisi", "今日打卡已完成,辛苦了。")
    await harness.settle()
    await expect(box.locator(".row.in")).to_have_count(22, timeout=WAIT)
    assert await box.evaluate("b => b.scrollTop") == 0
