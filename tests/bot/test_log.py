"""The log an admin reads: times in the bot's timezone, whatever the server's."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo


def test_log_lines_carry_the_bots_timezone_on_a_utc_server(tmp_path):
    script = f'''
from zoneinfo import ZoneInfo
from pathlib import Path
from loguru import logger
from bot.log import setup_logging
setup_logging(Path({str(tmp_path)!r}) / "logs", console=False, tz=ZoneInfo("Asia/Shanghai"))
logger.info("已启动")
logger.complete()
'''
    env = {**os.environ, "TZ": "UTC"}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=60)
    line = (tmp_path / "logs" / "bot.log").read_text(encoding="utf-8").splitlines()[0]
    stamp, _, rest = line.partition(" | ")
    at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f %z")
    assert at.utcoffset() == timedelta(hours=8)
    assert abs(at - datetime.now(ZoneInfo("Asia/Shanghai"))) < timedelta(minutes=1)
    assert rest.endswith("已启动")
