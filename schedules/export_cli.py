"""`gridbot export [--week YYYY-Www] [--out DIR]`: a week's ledger, chart and photos, written
from a read-only view of the running bot's data."""

from __future__ import annotations

import argparse

from bot.features import Command


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--week")
    p.add_argument("--out", default=".")


def _run(args: argparse.Namespace) -> int:
    from bot.cli import load_or_exit, open_store
    from schedules.export import export_command
    cfg = load_or_exit(args.config)
    return export_command(cfg, open_store(cfg), args.week, args.out)


COMMAND = Command("export", "导出周台账 / export a week's ledger", _arguments, _run)
