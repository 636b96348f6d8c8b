"""`gridbot export [--week YYYY-Www | --month YYYY-MM] [--out DIR]`: a week's ledger, chart and
photos, or a month's ledger (with its 积分明细) and chart, written from a read-only view of the
running bot's data."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, time, timedelta
from pathlib import Path

from bot.clock import Clock, week_bounds, zh_date
from bot.config import Config
from bot.features import Command
from bot.months import month_bounds, month_label, parse_month
from bot.scoring import fmt_points
from bot.store import Store, atomic_write
from schedules.archive import archive_stem, write_photo_zip
from schedules.week_titles import digest_title, previous_week, week_label
from schedules.weekdata import scope_name


def _arguments(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group()
    which.add_argument("--week", help="YYYY-Www,默认上周 / default: last week")
    which.add_argument("--month", help="YYYY-MM,导出月度台账和图表 / a month's ledger and chart")
    p.add_argument("--out", help="输出目录,默认 数据目录/exports / default: data_dir/exports")


def _run(args: argparse.Namespace) -> int:
    from bot.cli import load_or_exit, open_store
    cfg = load_or_exit(args.config)
    if args.month:
        return export_month_command(cfg, open_store(cfg), args.month, args.out)
    return export_command(cfg, open_store(cfg), args.week, args.out)


COMMAND = Command("export", "导出周台账或月度台账 / export a week's or a month's ledger", _arguments, _run)


def chart_filename(cfg: Config, week: str, scope: list[str] | None = None) -> str:
    return f"{scope_name(cfg, scope)}{week_label(week)}工作图表.png"


def export_command(cfg: Config, store: Store, week: str | None, out_dir: str | Path | None, *,
                   now: datetime | None = None) -> int:
    # matplotlib and openpyxl take about half a second to import: loaded when an export runs,
    # not whenever the bot or any other gridbot command starts (the package loads this module).
    from schedules.chart import render_chart
    from schedules.ledger import collect_for_ledger, ledger_filename, ledger_from_data

    now = now or Clock(cfg.tz).now()
    chosen = bool(week)
    if not week:
        week = previous_week(now.date())
    try:
        monday, sunday = week_bounds(week)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    week = week.upper()
    if not chosen:
        print(f"未指定 --week,导出上周:{week}({zh_date(monday)}—{zh_date(sunday)})。"
              f"其他周请用 --week,例如 --week {previous_week(monday)}")
    # Beside the bot's data by default, not wherever the admin happened to stand.
    out = Path(out_dir) if out_dir else cfg.data_path / "exports"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"无法创建输出目录 / cannot create {out}: {e.strerror}", file=sys.stderr)
        return 2
    data = collect_for_ledger(cfg, store, week, now)
    grids = list(data.grids.values())
    xlsx_path = out / ledger_filename(cfg, week)
    png_path = out / chart_filename(cfg, week)
    zip_path = out / f"{archive_stem(cfg, week)}.zip"
    try:
        atomic_write(xlsx_path, ledger_from_data(cfg, data))
        atomic_write(png_path, render_chart(cfg, data, grids, digest_title(cfg, week, None)))
        photos, missing = write_photo_zip(cfg, data, zip_path)
    except OSError as e:
        print(f"导出失败 / export failed: {e}", file=sys.stderr)
        return 1
    reports = sum(len(g.reports) for g in grids)
    checkins = sum(len(g.checkins) for g in grids)
    print(f"已导出 {week}({zh_date(monday)}—{zh_date(sunday)}):")
    print(f"  台账 {xlsx_path}(上报 {reports} 条,打卡 {checkins} 次,问题 {len(data.problems)} 项)")
    print(f"  图表 {png_path}")
    print(f"  照片 {zip_path}({photos} 张" + (f",{missing} 张文件缺失" if missing else "") + ")")
    return 0


def export_month_command(cfg: Config, store: Store, month: str, out_dir: str | Path | None, *,
                         now: datetime | None = None) -> int:
    """The month's ledger and chart for the whole street: what the street's leader gets."""
    from schedules.month_chart import render_month_chart
    from schedules.month_data import collect_month
    from schedules.month_ledger import month_ledger, month_ledger_filename
    from schedules.month_text import bulletin_title

    try:
        month = parse_month(month)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    now = now or Clock(cfg.tz).now()
    first, last = month_bounds(month)
    if first > now.date():
        print(f"{month_label(month)}还没有开始,没有可导出的数据。", file=sys.stderr)
        return 2
    out = Path(out_dir) if out_dir else cfg.data_path / "exports"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"无法创建输出目录 / cannot create {out}: {e.strerror}", file=sys.stderr)
        return 2
    # A finished month as of its end; the running month as of now.
    end = datetime.combine(last + timedelta(days=1), time(0), cfg.tz)
    data = collect_month(cfg, store, month, as_of=min(now, end))
    title = bulletin_title(cfg, month, None)
    xlsx_path = out / month_ledger_filename(cfg, month)
    png_path = out / f"{title.removesuffix('工作通报')}工作图表.png"
    try:
        atomic_write(xlsx_path, month_ledger(cfg, data))
        atomic_write(png_path, render_month_chart(cfg, data, data.grid_list(), title))
    except OSError as e:
        print(f"导出失败 / export failed: {e}", file=sys.stderr)
        return 1
    entries = data.standings.entries
    running = "" if data.complete else f",本月尚未结束,数据截至{zh_date(now)} {now:%H:%M}"
    print(f"已导出 {month_label(month)}({zh_date(first)}—{zh_date(last)}{running}):")
    print(f"  台账 {xlsx_path}(积分明细 {len(entries)} 条,合计 {fmt_points(sum(e.points for e in entries))} 分)")
    print(f"  图表 {png_path}")
    return 0
