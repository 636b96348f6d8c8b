"""Reading the config file: TOML parsing, secrets from the environment, cross-checks between
sections, and the errors, which name file, line and field (Problem, ConfigError).

The typed model itself is bot.config. The wording of each config error lives here: Problem's
format, the Chinese names of pydantic's error types, the read/syntax and cross-check messages
(only the headline above the list is bot.cli's and bot.config_watch.error_text's).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from bot.config import Config
from bot.crontab import CronError, cron_trigger

# --- errors ----------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


_PYDANTIC_ZH = {
    "missing": "缺少必填项",
    "extra_forbidden": "未知字段",
    "literal_error": "取值无效",
    "greater_than": "数值太小",
    "greater_than_equal": "数值太小",
    "less_than_equal": "数值太大",
    "too_short": "不能为空",
}


def _zh_for(err_type: str) -> str:
    if err_type in _PYDANTIC_ZH:
        return _PYDANTIC_ZH[err_type]
    if err_type.endswith(("_type", "_parsing")):
        return "类型错误"
    return "取值无效"


def _field_name(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")


def locate_lines(text: str) -> dict[tuple, int]:
    """Map field paths such as ("schedules", 3, "cron") to 1-based line numbers.

    tomllib keeps no positions, so this walks the headers and keys the way TOML nests them;
    inline tables and multi-line arrays map to the line where their key starts.
    """
    lines: dict[tuple, int] = {}
    counts: dict[tuple, int] = {}
    current: tuple = ()
    for n, raw in enumerate(text.splitlines(), start=1):
        m = _HEADER.match(raw)
        if m:
            parts = tuple(p.strip().strip("\"'") for p in m.group(2).split("."))
            path: list = []
            for i, part in enumerate(parts):
                path.append(part)
                arr = tuple(path)
                if arr in counts and i < len(parts) - 1:
                    path.append(counts[arr] - 1)
            if m.group(1) == "[[":
                key = tuple(path)
                counts[key] = counts.get(key, 0) + 1
                path.append(counts[key] - 1)
            current = tuple(path)
            lines.setdefault(current, n)
            continue
        k = _KEY.match(raw)
        if k:
            lines.setdefault(current + (k.group(1),), n)
    return lines


def _line_for(lines: dict[tuple, int], loc: tuple) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


_ENV_OVERRIDES = {
    "GRIDBOT_WECOM_SECRET": "secret",
    "GRIDBOT_WECOM_TOKEN": "token",
    "GRIDBOT_WECOM_ENCODING_AES_KEY": "encoding_aes_key",
    "GRIDBOT_WECOM_CORP_ID": "corp_id",
}
_AIBOT_ENV = {
    "GRIDBOT_AIBOT_TOKEN": "token",
    "GRIDBOT_AIBOT_ENCODING_AES_KEY": "encoding_aes_key",
    "GRIDBOT_AIBOT_BOT_ID": "bot_id",
    "GRIDBOT_AIBOT_SECRET": "secret",
}


def load_config(path: str | Path, env: dict[str, str] | None = None) -> Config:
    """Read and validate a config file; raise ConfigError listing every problem found."""
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([Problem(name, None, "", f"无法读取配置文件 / cannot read: {e.strerror}")]) from e
    return parse_config(text, name=name, source=path.resolve(), env=env)


def parse_config(text: str, name: str = "config.toml", source: Path | None = None,
                 env: dict[str, str] | None = None) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise ConfigError(
            [Problem(name, int(m.group(1)) if m else None, "", f"TOML 语法错误 / TOML syntax error: {e}")]
        ) from e
    env = os.environ if env is None else env
    wecom = data.get("wecom")
    if isinstance(wecom, dict):
        for var, key in _ENV_OVERRIDES.items():
            if env.get(var):
                wecom[key] = env[var]
    aibot = data.get("aibot")
    if any(env.get(var) for var in _AIBOT_ENV):
        if not isinstance(aibot, dict):
            aibot = data["aibot"] = {}
        for var, key in _AIBOT_ENV.items():
            if env.get(var):
                aibot[key] = env[var]
    lines = locate_lines(text)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = tuple(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(Problem(name, _line_for(lines, loc), _field_name(loc),
                                    f"{_zh_for(err['type'])} / {msg}"))
        raise ConfigError(problems) from None
    problems = [
        Problem(name, _line_for(lines, loc), _field_name(loc), msg) for loc, msg in _cross_check(cfg)
    ]
    if problems:
        raise ConfigError(problems)
    return cfg.model_copy(update={"source": source})


def _duplicates(items: list, attr: str, section: str):
    seen: set = set()
    for i, it in enumerate(items):
        v = getattr(it, attr)
        if v in seen:
            yield (section, i, attr), f"重复的 {attr} / duplicate {attr} {v!r}"
        seen.add(v)


def _cross_check(cfg: Config):
    yield from _duplicates(cfg.communities, "id", "communities")
    yield from _duplicates(cfg.grids, "id", "grids")
    yield from _duplicates(cfg.people, "userid", "people")
    yield from _duplicates(cfg.categories, "id", "categories")
    yield from _duplicates(cfg.schedules, "name", "schedules")
    community_ids = {c.id for c in cfg.communities}
    grid_ids = {g.id for g in cfg.grids}
    category_ids = {c.id for c in cfg.category_list}
    for i, g in enumerate(cfg.grids):
        if g.community and community_ids and g.community not in community_ids:
            yield ("grids", i, "community"), f"社区不存在 / unknown community {g.community!r}"
        for cat in g.targets:
            if cat not in category_ids:
                yield ("grids", i, "targets", cat), f"类别不存在 / unknown category {cat!r}"
        if g.robot_webhook and not g.robot_webhook.startswith(("http://", "https://")):
            yield ("grids", i, "robot_webhook"), "必须是完整的 http(s) 地址 / must be a full http(s) URL"
        fence = g.geofence
        if fence and not fence.polygon and None in (fence.lat, fence.lng, fence.radius_m):
            yield ("grids", i, "geofence"), "需要 lat、lng、radius_m 或 polygon / needs lat, lng, radius_m or a polygon"
    for i, p in enumerate(cfg.people):
        if p.role in ("member", "grid_leader"):
            if not p.grid:
                yield ("people", i, "grid"), f"{p.role} 必须指定网格 / {p.role} needs a grid"
            elif p.grid not in grid_ids:
                yield ("people", i, "grid"), f"网格不存在 / unknown grid {p.grid!r}"
        elif p.grid and p.grid not in grid_ids:
            yield ("people", i, "grid"), f"网格不存在 / unknown grid {p.grid!r}"
        for s in p.scope:
            if s not in grid_ids and s not in community_ids:
                yield ("people", i, "scope"), f"范围中的社区或网格不存在 / unknown community or grid {s!r}"
    for i, s in enumerate(cfg.schedules):
        try:
            cron_trigger(s.cron, cfg.tz)
        except CronError as e:
            yield ("schedules", i, "cron"), f"无效的 cron 表达式 / invalid cron expression: {e}"
    chats: dict[str, str] = {}
    for i, g in enumerate(cfg.grids):
        if not g.chat_id:
            continue
        if g.chat_id in chats:
            yield ("grids", i, "chat_id"), f"该群已对应 {chats[g.chat_id]} / chat already bound to grid {chats[g.chat_id]!r}"
        chats.setdefault(g.chat_id, g.id)
    if cfg.aibot.enabled and cfg.aibot.mode == "websocket":
        yield from _check_websocket(cfg)
    elif cfg.aibot.enabled:
        if not cfg.aibot.token.get_secret_value():
            yield ("aibot", "token"), "启用智能机器人时必填 / required when the AI bot is enabled"
        if len(cfg.aibot.encoding_aes_key.get_secret_value()) != 43:
            yield ("aibot", "encoding_aes_key"), "EncodingAESKey 必须是 43 个字符 / must be 43 characters"
        if cfg.aibot.path in ("/wecom/callback", "/"):
            yield ("aibot", "path"), "不能与应用回调或聊天页面同路径 / must differ from the app callback and the chat page"
    if cfg.emulator.enabled_in_live and not cfg.emulator.admin_token:
        yield ("emulator", "enabled_in_live"), "需要同时设置 admin_token / needs admin_token"
    for i, c in enumerate(cfg.calendar.campaigns):
        if c.end < c.start:
            yield ("calendar", "campaigns", i, "end"), "结束日期早于开始日期 / end before start"


def _check_websocket(cfg: Config):
    a = cfg.aibot
    need = "长连接模式必填 / required in websocket mode"
    if not a.bot_id:
        yield ("aibot", "bot_id"), f"{need}(机器人的 Bot ID,见管理后台 API 凭证)"
    elif not re.fullmatch(r"[A-Za-z0-9_-]+", a.bot_id):
        yield ("aibot", "bot_id"), "Bot ID 只含字母和数字 / the Bot ID is letters and digits"
    if not a.secret.get_secret_value():
        yield ("aibot", "secret"), f"{need}(长连接的 Secret,也可用环境变量 GRIDBOT_AIBOT_SECRET)"
    if not a.ws_url.startswith(("wss://", "ws://")):
        yield ("aibot", "ws_url"), "必须以 wss:// 或 ws:// 开头 / must start with wss:// or ws://"


def default_config_path() -> Path:
    p = Path("config.toml")
    return p if p.exists() else Path("config.example.toml")
