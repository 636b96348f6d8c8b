"""The digest's chart: work by category per grid, and check-in rate per grid, as one PNG.

Matplotlib's object API with the Agg canvas (no pyplot, no global backend switch), so charts
can render in a worker thread. Chinese labels need a CJK font: "WenQuanYi Micro Hei" from
Debian's fonts-wqy-microhei, configured once.
"""

from __future__ import annotations

import io
import threading

import matplotlib
from loguru import logger
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bot.clock import zh_date
from bot.fonts import find_cjk_font
from bot.config import Config
from schedules.weekdata import GridWeek, WeekData, ordered_units

OK_COLOR, LOW_COLOR = "#4a90d9", "#d9534f"
_lock = threading.Lock()
_configured: str | None = None


def configure_fonts() -> str:
    """Register the first installed CJK font file and put it first in the sans-serif list;
    returns its family name ("" when the machine has none)."""
    global _configured
    with _lock:
        if _configured is not None:
            return _configured
        found = find_cjk_font()
        family = ""
        if found is None:
            logger.warning("没有找到中文字体(请安装 fonts-wqy-microhei),图表中的汉字将显示为方框 / no CJK font")
        else:
            family, path = found
            font_manager.fontManager.addfont(path)
        rc = matplotlib.rcParams
        rc["font.family"] = "sans-serif"
        rc["font.sans-serif"] = ([family] if family else []) + [f for f in rc["font.sans-serif"] if f != family]
        rc["axes.unicode_minus"] = False  # the CJK font has no U+2212 minus sign
        _configured = family
        return family


def render_chart(cfg: Config, data: WeekData, grids: list[GridWeek], title: str) -> bytes:
    """PNG bytes: stacked quantities by category per grid above check-in rates per grid."""
    configure_fonts()
    grids = [g for g in grids if g.configured]
    names = [g.name for g in grids] or ["(无网格)"]
    n = len(names)
    width = min(30.0, max(9.0, 0.55 * n + 3))
    rotate = 45 if n > 8 else 0
    # Fixed margins in inches instead of a layout engine: constrained layout costs a second
    # draw and about half the rendering time at 40 grids.
    longest = max(len(s) for s in names)
    label_in = (0.11 * longest * 0.75 + 0.25) if rotate else 0.35
    height = 9.5 + label_in
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    fig.suptitle(f"{title}({zh_date(data.monday)}—{zh_date(data.sunday)})", fontsize=15, y=1 - 0.25 / height)
    left, right, top_m, gap_title = 0.9, 0.3, 0.8, 0.45
    plot_h = height - top_m - 2 * (label_in + 0.2) - gap_title

    def axes(bottom_in: float, h: float):
        return fig.add_axes((left / width, bottom_in / height, (width - left - right) / width, h / height))

    bottom = axes(label_in + 0.2, plot_h * 0.4)
    top = axes(label_in + 0.2 + plot_h * 0.4 + gap_title + label_in + 0.2, plot_h * 0.6)
    x = list(range(n))

    keys = ordered_units(cfg, [g.totals for g in grids])
    cmap = matplotlib.colormaps["tab20"]
    base = [0.0] * n
    for i, (cat, unit) in enumerate(keys):
        vals = [g.totals.get((cat, unit), 0) for g in grids]
        top.bar(x, vals, bottom=base, color=cmap(i % 20), label=f"{cfg.category_label(cat)}({unit})",
                width=0.7)
        base = [b + v for b, v in zip(base, vals)]
    top.set_title("各网格分类工作量", fontsize=12)
    top.set_ylabel("数量")
    if keys:
        top.legend(fontsize=8, ncols=min(4, len(keys)), loc="upper right", framealpha=0.8)
        top.set_ylim(0, max(base) * (1.25 + 0.06 * ((len(keys) - 1) // 4)) or 1)
    else:
        top.text(0.5, 0.5, "本周暂无上报数据", ha="center", va="center", transform=top.transAxes,
                 fontsize=14, color="#888888")
    top.set_xticks(x, names, rotation=rotate, ha="right" if rotate else "center", fontsize=9)

    threshold = cfg.digest.checkin_threshold
    rates = [g.rate if g.rate is not None else 0 for g in grids]
    colors = [LOW_COLOR if g.rate is not None and g.rate < threshold else OK_COLOR for g in grids]
    bars = bottom.bar(x, [r * 100 for r in rates], color=colors, width=0.7)
    bottom.axhline(threshold * 100, color="#e6a23c", linestyle="--", linewidth=1.2,
                   label=f"达标线 {threshold * 100:.0f}%")
    for b, g in zip(bars, grids):
        label = "—" if g.rate is None else f"{g.rate * 100:.0f}%"
        bottom.annotate(label, (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                        fontsize=8, xytext=(0, 2), textcoords="offset points")
    bottom.set_title("各网格打卡率", fontsize=12)
    bottom.set_ylabel("打卡率(%)")
    bottom.set_ylim(0, 115)
    bottom.legend(fontsize=8, loc="upper right")
    bottom.set_xticks(x, names, rotation=rotate, ha="right" if rotate else "center", fontsize=9)
    for ax in (top, bottom):
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        if not grids:
            ax.set_xlim(-1, 1)

    buf = io.BytesIO()
    # Fast zlib level: the default spends more time compressing than drawing.
    fig.savefig(buf, format="png", pil_kwargs={"compress_level": 3})
    return buf.getvalue()
