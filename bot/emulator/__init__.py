"""The built-in WeCom emulator: a development feature, attached when the config asks for it
(emulator mode, or `[emulator] enabled_in_live` with an admin token)."""

from __future__ import annotations

from aiohttp import web

from bot.features import Feature


def attach_emulator(app: web.Application, runtime) -> None:
    if not runtime.with_emulator:
        return
    from bot.emulator.server import Emulator
    emu = Emulator(runtime.bot.config)
    emu.attach(app, runtime)
    if runtime.bot.config.wecom.mode == "emulator":
        runtime.api_is_local = True  # outbound calls wait until the emulator knows its address

    def listening(origin: str) -> str | None:
        emu.set_origin(origin)
        if runtime.bot.config.wecom.mode != "emulator":
            return None
        return (f"网格助手已启动(模拟器模式)。打开聊天页面: {origin}/\n"
                f"  gridbot is running with the WeCom emulator; chat page: {origin}/")
    runtime.on_listening.append(listening)


feature = Feature("emulator", hooks=(attach_emulator,))
