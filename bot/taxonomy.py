"""Task categories: the model and the default taxonomy of DESIGN.md."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_CEILING = 1000


@dataclass(frozen=True)
class Category:
    id: str
    label: str
    keywords: tuple[str, ...]
    # Counts above this are stored but flagged 待核实 (implausible).
    ceiling: float = DEFAULT_CEILING
    # Optional deadline override for problems of this category (hours).
    deadline_hours: float | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)


def _c(cid: str, label: str, words: str) -> Category:
    return Category(cid, label, tuple(words.split()))


DEFAULT_CATEGORIES: tuple[Category, ...] = (
    _c("ads", "小广告清理", "小广告 牛皮癣 野广告 乱贴乱画 涂鸦"),
    _c("demolition", "违建拆除", "拆除 违建 违章搭建 私搭乱建 遮阳棚"),
    _c("hazard", "隐患排查", "隐患 消防 安全检查 灭火器 燃气"),
    _c("mediation", "矛盾调解", "调解 纠纷 矛盾 调处"),
    _c("volunteer", "志愿服务", "志愿 义务劳动"),
    _c("visit", "入户走访", "入户 走访 慰问 探访 上门"),
    _c("persuasion", "文明劝导", "劝导 劝阻 纠正 不文明"),
    _c("order", "市容秩序", "占道经营 乱停 停放 非机动车 共享单车 流动摊贩 门前三包 摆放"),
    _c("patrol", "巡查巡逻", "巡查 巡逻 巡防 夜查"),
    _c("publicity", "宣传发动", "宣传 发放 张贴 横幅 展板 问卷 倡议书 手册 海报"),
    _c("sanitation", "环境卫生", "清扫 打扫 保洁 垃圾 死角 杂物 清洁 烟头 楼道 大扫除 清运"),
    _c("greening", "绿化管护", "绿化 修剪 补植 补栽 植树 浇水 除草 杂草 树木 苗木 花草"),
)
