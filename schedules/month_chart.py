"""The 月通报's chart: the months of the year so far, check-in rate and points per member, one
line per grid (a scope of up to ten grids, or of one community) or per community (more), with the scope's total as
a dashed black line; and, in a month with a campaign period (迎检), the rate of every day of it.

Rates are pooled (check-in days over expected days), points are per member, both as the
bulletin computes them. Matplotlib's object API on the Agg canvas, safe in a worker thread;
fonts as the weekly chart sets them (schedules.chart.configure_fonts).
"""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bot.attendance import rate_of
from bot.config import Config
from bot.months import zh_month
from schedules.chart import configure_fonts
from schedules.month_data import GridMonth, MonthData, day_rates, has_records
from schedules.weekdata import communities_of

MAX_GRID_LINES = 10  # more grids than this are drawn by community (when there are several)
TOTAL_COLOR, LOW_COLOR, OK_COLOR, LINE_COLOR = "#222222", "#d9534f", "#4a90d9", "#e6a23c"


def _groups(cfg: Config, grids: list[GridMonth]) -> list[tuple[str, list[str]]]:
    """(name, grid ids) of each line: the grids, or their communities when there are more grids
    than MAX_GRID_LINES."""
    groups = [(name, [g.id for g in cgrids]) for _, name, cgrids in communities_of(cfg, grids)]
    if len(grids) <= MAX_GRID_LINES or len(groups) < 2:
        # A community's own scope is read grid by grid: one community line would say nothing.
        groups = [(g.name, [g.id]) for g in grids]
    return groups


def series(cfg: Config, data: MonthData, grids: list[GridMonth]) -> tuple[list[str], list[tuple[str, list, list]]]:
    """(months shown, [(name, rates per month, points per member per month)]): a line per grid or
    per community, then the scope's total when there is more than one line."""
    months = [m for m, point in sorted(data.history.items()) if has_records(point) or m == data.month]
    first = next((i for i, m in enumerate(months) if has_records(data.history[m])), len(months) - 1)
    months = months[first:]
    groups = _groups(cfg, grids)
    if len(groups) > 1:
        groups.append(("合计", [g.id for g in grids]))

    def line(ids: list[str]) -> tuple[list, list]:
        rates, points = [], []
        for m in months:
            pts = [data.history[m][i] for i in ids if i in data.history[m]]
            rates.append(rate_of(sum(p.checkin_days for p in pts), sum(p.expected_days for p in pts)))
            members = sum(p.members for p in pts)
            points.append(sum(p.points for p in pts) / members if members else None)
        return rates, points

    lines = [(name, *line(ids)) for name, ids in groups]
    total = lines.pop() if len(lines) > 1 else None
    if len(lines) > MAX_GRID_LINES:
        # A district's hundred communities would be a hundred lines no one can tell apart: the
        # best and the worst by this month's rate are drawn, the scope's total among them.
        half = MAX_GRID_LINES // 2
        ranked = sorted(lines, key=lambda ln: (ln[1][-1] is None, -(ln[1][-1] or 0.0)))
        lines = ranked[:half] + ranked[-half:]
    return months, lines + ([total] if total else [])


def _span(values: list[float], floor: float | None = None, ceiling: float | None = None) -> tuple[float, float]:
    """Axis limits around the values with a margin (at least 10 units tall), within floor/ceiling."""
    if not values:
        return (floor or 0.0, ceiling or 1.0)
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.15, 5.0)
    lo, hi = lo - pad, hi + pad
    if floor is not None:
        lo = max(floor, lo)
    if ceiling is not None:
        hi = min(ceiling + pad, hi)
    return lo, hi


def _label_last(ax, x: list[int], values: list[float | None], colors: list[str], fmt, height: float) -> None:
    """Each line's last value beside its last point, nudged apart so no two labels overlap."""
    if not x:
        return
    # By value only: two lines ending on the same value must not compare their colours (a name
    # and an RGBA tuple cannot be ordered).
    labels = sorted(((v, c) for v, c in zip(values, colors) if v is not None), key=lambda vc: vc[0])
    gap = height * 0.045
    placed: list[float] = []
    for v, _ in labels:
        placed.append(max(v, placed[-1] + gap) if placed else v)
    # Many lines ending close together would stack their labels off the top of the axes: the
    # stack is moved down into it, still a gap apart.
    top = ax.get_ylim()[1] - gap / 2
    if placed and placed[-1] > top:
        placed[-1] = top
        for i in range(len(placed) - 2, -1, -1):
            placed[i] = min(placed[i], placed[i + 1] - gap)
    for (v, color), y in zip(labels, placed):
        ax.annotate(fmt(v), (x[-1], v), xytext=(x[-1] + 0.06, y), textcoords="data", va="center",
                    fontsize=8, color=color)


def render_month_chart(cfg: Config, data: MonthData, grids: list[GridMonth], title: str) -> bytes:
    configure_fonts()
    months, lines = series(cfg, data, grids)
    campaign = [(c, days) for c, days in data.campaigns]
    width = 12.0
    top_h = 4.2
    camp_h = 2.6 if campaign else 0.0
    legend_h = 0.5 + 0.28 * ((len(lines) + 3) // 4)
    height = 0.9 + top_h + legend_h + camp_h
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    fig.suptitle(f"{title} · 月度走势", fontsize=15, y=1 - 0.25 / height)
    groups = _groups(cfg, grids)
    if len(groups) > MAX_GRID_LINES:
        kind = "网格" if len(groups) == len(grids) else "社区"
        fig.text(0.5, 1 - 0.68 / height, f"共{len(groups)}个{kind},图中为本月打卡率最高和最低各"
                 f"{MAX_GRID_LINES // 2}个{kind}及合计", ha="center", fontsize=9, color="#666666")
    bottom = (legend_h + camp_h) / height
    plot_h = (top_h - 0.6) / height
    rate_ax = fig.add_axes((0.07, bottom + 0.3 / height, 0.40, plot_h))
    pts_ax = fig.add_axes((0.56, bottom + 0.3 / height, 0.40, plot_h))
    x = list(range(len(months)))
    labels = [zh_month(m) for m in months]
    handles = []
    for i, (name, rates, points) in enumerate(lines):
        total = name == "合计" and i == len(lines) - 1
        style = dict(color=TOTAL_COLOR, linestyle="--", linewidth=2.2) if total else dict(linewidth=1.6)
        h, = rate_ax.plot([x[j] for j, r in enumerate(rates) if r is not None],
                          [r * 100 for r in rates if r is not None], marker="o", markersize=4, label=name, **style)
        style["color"] = h.get_color()
        pts_ax.plot([x[j] for j, p in enumerate(points) if p is not None], [p for p in points if p is not None],
                    marker="o", markersize=4, **style)
        handles.append(h)
    threshold = cfg.digest.checkin_threshold * 100
    rate_vals = [r * 100 for _, rs, _ in lines for r in rs if r is not None]
    pts_vals = [p for _, _, ps in lines for p in ps if p is not None]
    # Zoomed to the figures (the threshold line kept in view), so grids a few points apart do not
    # draw as one line; the month reported on is labelled beside each line, labels kept apart.
    lo, hi = _span(rate_vals + [threshold], floor=0.0, ceiling=100.0)
    rate_ax.set_ylim(lo, hi)
    plo, phi = _span(pts_vals, floor=0.0 if min(pts_vals, default=0) >= 0 else None)
    pts_ax.set_ylim(plo, phi)
    colors = [h.get_color() for h in handles]
    _label_last(rate_ax, x, [(rs[-1] * 100 if rs and rs[-1] is not None else None) for _, rs, _ in lines], colors,
                lambda v: f"{v:.0f}%", hi - lo)
    _label_last(pts_ax, x, [(ps[-1] if ps else None) for _, _, ps in lines], colors,
                lambda v: f"{v:.1f}".removesuffix(".0"), phi - plo)
    rate_ax.axhline(threshold, color=LINE_COLOR, linestyle=":", linewidth=1.2)
    rate_ax.set_title(f"打卡率(%,点线为达标线 {threshold:.0f}%)", fontsize=11)
    pts_ax.set_title("人均积分(分)", fontsize=11)
    for ax in (rate_ax, pts_ax):
        ax.set_xticks(x, labels, fontsize=9)
        ax.set_xlim(-0.5, max(0.5, len(x) - 0.5))
        ax.grid(axis="y", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    if lines and len(months) == 1:
        for ax in (rate_ax, pts_ax):
            ax.text(0.5, 0.04, "本年度首月,暂无往月数据", transform=ax.transAxes, ha="center", fontsize=9,
                    color="#888888")
    fig.legend(handles=handles, loc="lower center", ncol=min(4, max(1, len(handles))), fontsize=9, frameon=False,
               bbox_to_anchor=(0.5, (camp_h + 0.05) / height))

    if campaign:
        ax = fig.add_axes((0.07, 0.45 / height, 0.89, (camp_h - 0.95) / height))
        days = [d for _, ds in campaign for d in ds]
        rates = day_rates(data, grids, days)
        vals = [n / e * 100 if e else 0 for _, n, e in rates]
        colors = [LOW_COLOR if e and n / e * 100 < threshold else OK_COLOR for _, n, e in rates]
        bars = ax.bar(range(len(days)), vals, color=colors, width=0.7)
        for b, (_, n, e) in zip(bars, rates):
            ax.annotate("—" if not e else f"{n / e * 100:.0f}%", (b.get_x() + b.get_width() / 2, b.get_height()),
                        ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
        ax.axhline(threshold, color=LINE_COLOR, linestyle=":", linewidth=1.2)
        ax.set_xticks(range(len(days)), [f"{d.month}/{d.day}" for d in days], fontsize=8)
        ax.set_ylim(0, 115)
        names = "、".join(c.name for c, _ in campaign)
        ax.set_title(f"迎检期间每日打卡率({names},每天均为工作日)", fontsize=11)
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)

    buf = io.BytesIO()
    fig.savefig(buf, format="png", pil_kwargs={"compress_level": 3})
    return buf.getvalue()
