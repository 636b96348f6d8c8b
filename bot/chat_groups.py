"""Which grid a group chat belongs to: `[[grids]] chat_id` in the config, else a binding an admin
made by saying "绑定 3号网格" in that group (kept in the store, so it survives restarts)."""

from __future__ import annotations

from bot.config import Config
from bot.store import Store

TABLE = "chats"


def chat_grid(cfg: Config, store: Store, chat_id: str) -> str | None:
    if not chat_id:
        return None
    for g in cfg.grids:
        if g.chat_id == chat_id:
            return g.id
    doc = store.get(TABLE, chat_id)
    if doc is not None and cfg.grid(doc.get("grid")) is not None:
        return doc["grid"]
    return None


def bindings(cfg: Config, store: Store | None) -> dict[str, tuple[str, str]]:
    """grid id → (chat id, "配置文件" or "群内绑定"), for the config overview."""
    out = {g.id: (g.chat_id, "配置文件") for g in cfg.grids if g.chat_id}
    if store is not None:
        for doc in store.docs(TABLE, ["main"]):
            gid = doc.get("grid")
            if cfg.grid(gid) is not None and gid not in out and chat_grid(cfg, store, doc["id"]) == gid:
                out[gid] = (doc["id"], "群内绑定")
    return out
