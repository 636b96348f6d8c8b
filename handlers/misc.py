"""Voice, links, files, videos and app events: stored like everything, answered with a hint."""

from __future__ import annotations

from bot.context import Context
from bot.router import Router
from bot.events import AppEvent, OtherMessage, VoiceMessage
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
