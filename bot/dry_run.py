"""A transport that prints instead of sending (gridbot jobs run --dry-run)."""

from __future__ import annotations

from typing import Callable

from bot.outgoing import Outgoing
from bot.transport import Transport


class DryRunTransport(Transport):
    """Prints what would be sent instead of sending (gridbot jobs run --dry-run)."""

    def __init__(self, out: Callable[[str], None] = print):
        super().__init__(client=None, robot_url=lambda g: g)  # type: ignore[arg-type]
        self.out = out
        self.pace.configure(0, 0)  # printing is not calling WeCom

    async def _deliver(self, msg: Outgoing) -> None:
        if isinstance(msg.content, dict):  # a card (its text version) or a card's update
            body = msg.alt_text or str(msg.content)
        else:
            body = msg.content if isinstance(msg.content, str) else f"<{len(msg.content)} bytes {msg.filename}>"
        who = f"@{' @'.join(msg.mentioned)} " if msg.mentioned else ""
        self.out(f"[{msg.channel} → {msg.target} · {msg.msgtype}] {who}\n{body}\n")
