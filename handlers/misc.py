"""Voice, links, files, videos, app events and taps on cards no one else knows: stored like
everything, answered with a hint."""

from __future__ import annotations

from bot.context import Context
from bot.router import Router
from bot.events import AppEvent, CardAction, OtherMessage, VoiceMessage
from bot.replies import GREETING, OTHER_HINT, VOICE_HINT
from bot.usage import help_text

router = Router("misc")


@router.on(VoiceMessage)
async def on_voice(event: VoiceMessage, ctx: Context) -> None:
    ctx.reply(VOICE_HINT)


@router.on(OtherMessage)
async def on_other(event: OtherMessage, ctx: Context) -> None:
    ctx.reply(OTHER_HINT)


# enter_agent: the app's chat opened; enter_chat: the AI bot's single chat opened.
@router.on(AppEvent, filter=lambda e, ctx: e.event in ("enter_agent", "enter_chat"))
async def on_enter(event: AppEvent, ctx: Context) -> None:
    key = f"greet:{ctx.person.userid}:{ctx.sent_on.isoformat()}"
    if ctx.store.get("greetings", key) is not None:
        return  # once a day is friendly; every tap is noise
    await ctx.store.put("greetings", {"id": key})
    ctx.reply(GREETING.format(name=ctx.person.name, bot=ctx.config.bot.name, help=help_text(ctx.config)))


@router.on(CardAction)
async def on_unknown_card(event: CardAction, ctx: Context) -> None:
    # A card no handler knows (an old version's, or one whose record is gone): say so, never nothing.
    ctx.reply("这张卡片已无法操作,请按消息里的文字说明回复,或发送“帮助”查看用法。")
    ctx.transport.update_card(ctx.person.userid, event.response_code, "已失效")
