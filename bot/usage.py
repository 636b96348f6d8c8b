"""Texts that show a person how to use the bot, built from the configured categories (the help,
the two examples in a hint, a report's items as reply lines). Several handlers use them."""

from __future__ import annotations

from bot.config import Config
from bot.records import category_lines, items_totals


def examples(cfg: Config) -> tuple[str, str]:
    cats = cfg.category_list
    first = cats[0].keywords[0] if cats else "小广告"
    second = cats[5].label if len(cats) > 5 else first
    return f"清理{first}15处", f"{second}12户"


def item_lines(cfg: Config, items: list[dict]) -> list[str]:
    """One line per category, its units side by side: "· 隐患排查 12家、3处"."""
    return [f"· {label} {qty}" for label, qty in category_lines(cfg, items_totals(items))]


def help_text(cfg: Config) -> str:
    ex1, ex2 = examples(cfg)
    labels = "、".join(c.label for c in cfg.category_list)
    return (
        "【网格助手用法】\n"
        f"1. 工作上报:直接发送,如“{ex1},{ex2}”;补报写“补报 昨天 {ex2}”\n"
        "2. 拍照打卡:在现场拍照发送,可再发送位置\n"
        "3. 问题登记:“问题:幸福路3号楼下堆放建筑垃圾”并附照片;整改后发“整改 #P12 已清理”和整改后照片,"
        "经网格长核查后销号;登记有误发“撤回 #P12 原因”\n"
        "   网格长核查:点核查卡片上的按钮,或回复“核查 #P12 通过”“驳回 #P12 原因”\n"
        "4. 撤回上一条:“撤回”或“撤回 #R12”;更正:“更正 #R12 清理小广告12处”\n"
        "5. 查看本周:“本周”;本月积分和排名:“我的积分”,计分办法:“积分规则”;请假:“请假到周五”,销假:“销假”\n"
        f"可识别的工作类别:{labels}"
    )
