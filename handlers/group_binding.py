"""Group chats (AI bot): "绑定 3号网格" ties the group it is said in to a grid."""

from __future__ import annotations

from bot.context import Context
from bot.router import Router, command
from bot.events import TextMessage
from bot.chat_groups import TABLE, chat_grid

router = Router("groups")


def _may_bind(ctx: Context, grid_id: str) -> bool:
    p = ctx.person
    if p.role == "admin":
        return True
    if p.role == "grid_leader":
        return p.grid == grid_id
    grid = ctx.config.grid(grid_id)
    return p.role == "leader" and (not p.scope or grid_id in p.scope or (grid is not None and grid.community in p.scope))


@router.on(TextMessage, filter=command(r"^(?:绑定|绑定网格)\s*[::]?\s*(?P<target>.*)$"))
async def on_bind(event: TextMessage, ctx: Context, target: str) -> None:
    cfg = ctx.config
    if not event.chat_id:
        ctx.reply("请在网格群里@我发送“绑定 1号网格”,把这个群对应到网格。")
        return
    target = target.strip()
    grid = next((g for g in cfg.grids if target in (g.name, g.id)), None)
    if grid is None:
        names = "、".join(g.name for g in cfg.grids)
        ctx.reply(f"没有找到网格“{target or '(未填写)'}”。请写成“绑定 1号网格”,可选:{names}。")
        return
    if not _may_bind(ctx, grid.id):
        ctx.reply(f"只有管理员或{grid.name}的网格长可以绑定本群。")
        return
    configured = next((g for g in cfg.grids if g.chat_id == event.chat_id), None)
    if configured is not None:
        ctx.reply(f"本群已在配置文件中对应{configured.name},如需更改请修改配置文件。")
        return
    if grid.chat_id:
        ctx.reply(f"{grid.name}已在配置文件中对应另一个群,如需更改请修改配置文件。")
        return
    if chat_grid(cfg, ctx.store, event.chat_id) == grid.id:
        ctx.reply(f"本群已对应{grid.name},无需重复绑定。")
        return
    # One group per grid: a grid bound elsewhere moves here.
    stale = [d for d in ctx.store.docs(TABLE, ["main"]) if d.get("grid") == grid.id and d["id"] != event.chat_id]
    await ctx.store.put_many(
        [(TABLE, {**d, "grid": None}, None) for d in stale]
        + [(TABLE, {"id": event.chat_id, "grid": grid.id, "by": ctx.person.userid,
                    "at": event.create_time, "msgid": event.key}, None)])
    ctx.reply(f"已将本群绑定为{grid.name}的网格群。没有所属网格的领导在本群登记的问题,将归入{grid.name}。")
