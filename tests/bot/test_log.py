"""The log an admin reads: times in the bot's timezone, whatever the server's."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta


def test_log_lines_carry_the_bots_timezone_on_a_utc_server(tmp_path):
    script = f'''
from pathlib import Path
from zoneinfo import ZoneInfo
from loguru import logger
from bot.log import setup_logging
setup_logging(Path({str(tmp_path)!r}) / "logs", console=False, tz=ZoneInfo("Asia/Shanghai"))
logger.info("已启动")
logger.complete()
from datetime import datetime
print(datetime.now(ZoneInfo("Asia/Shanghai")).isoformat())
'''
    env = {**os.environ, "TZ": "UTC"}
    # "Now" as the child sees it: under faketime each process starts its own fake clock.
    child_now = subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=60,
                               capture_output=True, text=True).stdout.strip()
    line = (tmp_path / "logs" / "bot.log").read_text(encoding="utf-8").splitlines()[0]
    stamp, _, rest = line.partition(" | ")
    at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f %z")
    assert at.utcoffset() == timedelta(hours=8)
    assert abs(at - datetime.fromisoformat(child_now)) < timedelta(minutes=1)
    assert rest.endswith("已启动")
