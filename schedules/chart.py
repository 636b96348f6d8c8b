"""The digest's chart: work by category per grid, and check-in rate per grid, as one PNG.

Work is a table, not stacked bars: quantities of different units (处, 户, 份) cannot be added,
each column is shaded on its own scale (clipped at its 90th percentile, so one outlier does not
wash out every other grid) and labelled with the number. Grids are rows, so 40 grids and 12
categories stay readable, and no legend is needed. A scope of more than MAX_ROWS grids (a big
street, a district) is drawn by community, pooled as the digest pools them; more communities
than that, as the best and the worst by check-in rate, the rest left to the ledger.

Matplotlib's object API with the Agg canvas (no pyplot, no global backend switch), so charts
can render in a worker thread. Chinese labels need a CJK font: "WenQuanYi Micro Hei" from
Debian's fonts-wqy-microhei, configured once.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from functools import lru_cache

import matplotlib
from loguru import logger
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import ScaledTranslation, Transform
from PIL import Image, ImageDraw, ImageFont

from bot.clock import zh_date
from bot.fonts import find_cjk_font
from bot.config import Config
from bot.attendance import Totals
from schedules.weekdata import GridWeek, WeekData, communities_of, ordered_units, rollup

OK_COLOR, LOW_COLOR = "#4a90d9", "#d9534f"
_lock = threading.Lock()
_configured: str | None = None
_font_file: str | None = None


def configure_fonts() -> str:
    """Register the first installed CJK font file and put it first in the sans-serif list;
    returns its family name ("" when the machine has none)."""
    global _configured, _font_file
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
            _font_file = path
        rc = matplotlib.rcParams
        rc["font.family"] = "sans-serif"
        rc["font.sans-serif"] = ([family] if family else []) + [f for f in rc["font.sans-serif"] if f != family]
        rc["axes.unicode_minus"] = False  # the CJK font has no U+2212 minus sign
        _configured = family
        return family


MAX_COLUMNS = 12  # (category, unit) columns drawn; the rest are named in a note
# Rows a chart can show and still be read (a 20-inch-tall image at 60). More grids than this are
# drawn as their communities; more communities than this, as the best and the worst of them.
MAX_ROWS = 60
SCALE_QUANTILES = (0.1, 0.9)  # a column's colour scale spans these, so one outlier cannot wash it out


@dataclass
class Workload:
    """The chart's work panel: one column per (category, unit), never two units in one column,
    and each column coloured on its own scale (a 处 is not an 户)."""
    columns: list[tuple[str, str]]
    values: list[list[float]]  # [grid][column]
    shades: list[list[float]]  # 0..1, per column, between its 10th and 90th percentiles (clipped)
    left_out: list[tuple[str, str]]


@dataclass
class Row:
    """One row of the chart: a grid, a community (its grids pooled), or the gap between the best
    and the worst when not every row fits."""
    name: str
    totals: Totals
    rate: float | None
    gap: bool = False


def chart_rows(cfg: Config, grids: list[GridWeek]) -> tuple[list[Row], str]:
    """The rows to draw and what they are ("网格" or "社区"); see MAX_ROWS."""
    grids = [g for g in grids if g.configured]
    by_grid = [Row(g.name, g.totals, g.rate) for g in grids]
    communities = communities_of(cfg, grids)
    if len(grids) <= MAX_ROWS or len(communities) < 2:
        rows, kind = by_grid, "网格"
    else:
        rows, kind = [], "社区"
        for _, name, cgrids in communities:
            r = rollup(name, cgrids)
            rows.append(Row(f"{name}({len(cgrids)}个网格)", r.totals, r.rate))
    if len(rows) > MAX_ROWS:
        # Ranked as the digest ranks (a row nobody was expected in sorts last); the middle is in
        # the ledger.
        ranked = sorted(rows, key=lambda r: (r.rate is None, -(r.rate or 0.0)))
        half = MAX_ROWS // 2
        rest = len(ranked) - 2 * half
        rows = ranked[:half] + [Row(f"……其余{rest}个{kind}", {}, None, gap=True)] + ranked[-half:]
    return rows, kind


def workload(cfg: Config, grids: list) -> Workload:
    keys = ordered_units(cfg, [g.totals for g in grids])
    columns, left_out = keys[:MAX_COLUMNS], keys[MAX_COLUMNS:]
    values = [[g.totals.get(k, 0.0) for k in columns] for g in grids]
    shades = [[0.0] * len(columns) for _ in grids]
    for j in range(len(columns)):
        col = sorted(v[j] for v in values if v[j] > 0)
        if not col:
            continue
        lo_q, hi_q = SCALE_QUANTILES
        lo = col[int(lo_q * (len(col) - 1))] if len(col) > 2 else 0.0
        hi = col[int(hi_q * (len(col) - 1) + 0.5)]
        for i, row in enumerate(values):
            if row[j] > 0:
                # Any work at all shows (0.15); then the grid's place between the column's usual
                # low and high, so the differences between ordinary grids stay visible.
                shades[i][j] = 0.15 + 0.85 * min(1.0, max(0.0, (row[j] - lo) / (hi - lo))) if hi > lo else 1.0
    return Workload(columns, values, shades, left_out)


def _qty(v: float) -> str:
    if v >= 10000:
        return f"{v / 10000:.1f}万"
    return f"{v:g}" if v != int(v) else str(int(v))


def render_chart(cfg: Config, data: WeekData, grids: list[GridWeek], title: str) -> bytes:
    """PNG bytes: a table of work by category per grid (each cell shaded on its column's own
    scale and labelled with the number), beside each grid's check-in rate as a bar."""
    configure_fonts()
    grids, kind = chart_rows(cfg, grids)
    n = max(1, len(grids))
    work = workload(cfg, grids)
    ncol = max(1, len(work.columns))
    # A third of an inch per grid for a street of 40; taller rows when there are few grids.
    row_in = max(0.32, min(0.7, 5.0 / n))
    names_in = 0.9 + 0.14 * max((len(g.name) for g in grids), default=4)
    table_in = 0.95 * ncol
    rates_in = 3.2
    width = max(8.0, names_in + table_in + 0.4 + rates_in + 0.3)
    head_in, foot_in = 1.55, 0.75
    height = head_in + row_in * n + foot_in
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    fig.suptitle(f"{title}({zh_date(data.monday)}—{zh_date(data.sunday)})", fontsize=15,
                 y=1 - 0.3 / height)
    plot_h = row_in * n

    def axes(left_in: float, w_in: float):
        return fig.add_axes((left_in / width, (height - head_in - plot_h) / height, w_in / width, plot_h / height))

    table = axes(names_in, table_in)
    rates = axes(names_in + table_in + 0.4, rates_in)
    y = list(range(n))
    names = [g.name for g in grids] or ["(无网格)"]
    ranked = any(g.gap for g in grids)
    texts: list[_Label] = []  # drawn over the finished image (_finish)

    # --- work by category ---------------------------------------------------------------
    cmap = matplotlib.colormaps["Blues"]
    if work.columns:
        table.imshow([[0.03 + 0.77 * s for s in row] for row in work.shades] or [[0.0]], cmap=cmap,
                     vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        small = 8 if ncol <= 8 else 7
        for i, row in enumerate(work.values):
            for j, v in enumerate(row):
                if v:
                    dark = work.shades[i][j] > 0.6
                    texts.append(_Label(table.transData, j, i, _qty(v), small,
                                           "white" if dark else "#1f2d3d", "mm"))
        labels = [f"{cfg.category_label(c)}\n({u})" for c, u in work.columns]
        transform, va, ha = table.get_xaxis_text2_transform(matplotlib.rcParams["xtick.major.pad"])
        texts += [_Label(transform, j, 1, label, 8, "black", "md") for j, label in enumerate(labels)]
    else:
        table.text(0.5, 0.5, "本周暂无上报数据", ha="center", va="center", transform=table.transAxes,
                   fontsize=13, color="#888888")
    # The table's labels are drawn where tick labels would be (the same transforms, so the same
    # places), with no ticks: a tick is two lines and two texts.
    table.set_xticks([])
    table.set_yticks([])
    transform, va, ha = table.get_yaxis_text1_transform(matplotlib.rcParams["ytick.major.pad"])
    texts += [_Label(transform, 0, i, name, 9, "black", "rm") for i, name in zip(y, names)]
    table.set_ylim(n - 0.5, -0.5)
    table.set_xlim(-0.5, ncol - 0.5)
    which = f"打卡率最高和最低各{(n - 1) // 2}个{kind}的" if ranked else f"各{kind}"
    # y given: the pad already clears the column labels, and matplotlib's search for where the
    # title would clear them measures every tick label again (a tenth of the chart's time).
    table.set_title(f"{which}分类工作量(颜色按各类别分别比较)", fontsize=11, pad=34, y=1.0)
    table.tick_params(length=0)
    for side in table.spines.values():
        side.set_visible(False)
    if work.left_out:
        more = "、".join(f"{cfg.category_label(c)}({u})" for c, u in work.left_out)
        fig.text(names_in / width, 0.25 / height, f"另有:{more}(见台账)", fontsize=8, color="#666666")

    # --- check-in rate ------------------------------------------------------------------
    threshold = cfg.digest.checkin_threshold
    vals = [(g.rate or 0) * 100 for g in grids] or [0]
    colors = [LOW_COLOR if g.rate is not None and g.rate < threshold else OK_COLOR for g in grids] or [OK_COLOR]
    bars = rates.barh(y, vals, color=colors, height=0.7)
    rates.axvline(threshold * 100, color="#e6a23c", linestyle="--", linewidth=1.2)
    # Three points right of the bar's end.
    beside = rates.transData + ScaledTranslation(3 / 72, 0, fig.dpi_scale_trans)
    for b, g in zip(bars, grids):
        if g.gap:
            continue
        label = "—" if g.rate is None else f"{g.rate * 100:.0f}%"
        texts.append(_Label(beside, b.get_width(), b.get_y() + b.get_height() / 2, label, 8, "black", "lm"))
    rates.set_xlim(0, 118)
    rates.set_ylim(n - 0.5, -0.5)
    rates.set_yticks([])
    rates.xaxis.tick_top()
    rates.set_title(f"打卡率(虚线为达标线 {threshold * 100:.0f}%)", fontsize=11, pad=34, y=1.0)
    rates.spines[["bottom", "right", "left"]].set_visible(False)
    rates.grid(axis="x", alpha=0.3)
    rates.set_axisbelow(True)
    for ax in (table.xaxis, table.yaxis, rates.xaxis, rates.yaxis):
        # No axis titles: placed, their empty labels are not fitted around the tick labels again.
        ax.set_label_coords(0, 0)

    return _finish(fig, texts)


@dataclass
class _Label:
    """A label (a cell's number, a bar's rate, a row's name, a column's heading) drawn by Pillow onto
    the finished image: a matplotlib text costs 1.5–2.5 ms to lay out and draw, and a district's
    hundred charts have seventeen thousand of them (more than half the charts' time); Pillow draws
    one in a tenth of a millisecond, in the same font at the same size."""
    transform: Transform  # from (x, y) to the figure's pixels, origin bottom left
    x: float
    y: float
    text: str
    points: float
    color: str
    anchor: str  # Pillow's: "mm" centred, "lm"/"rm" left/right end, vertically centred; "md" above


@lru_cache(maxsize=8)
def _pil_font(path: str | None, pixels: float) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Basic layout: digits and Chinese need no shaping, and raqm costs four times as much.
    return (ImageFont.truetype(path, pixels, layout_engine=ImageFont.Layout.BASIC) if path
            else ImageFont.load_default(pixels))


def _finish(fig: Figure, labels: list[_Label]) -> bytes:
    """The figure drawn by Agg, the labels drawn over it, as PNG bytes."""
    canvas = fig.canvas
    canvas.draw()
    w, h = canvas.get_width_height()
    img = Image.frombuffer("RGBA", (w, h), canvas.buffer_rgba(), "raw", "RGBA", 0, 1).convert("RGB")
    draw = ImageDraw.Draw(img)
    for n in labels:
        x, y = n.transform.transform((n.x, n.y))
        draw.text((x, h - y), n.text, fill=n.color, anchor=n.anchor, align="center",
                  font=_pil_font(_font_file, n.points * fig.dpi / 72))
    buf = io.BytesIO()
    # Fast zlib level: the default spends more time compressing than drawing.
    img.save(buf, format="PNG", compress_level=3)
    return buf.getvalue()
