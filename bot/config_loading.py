"""Reading the config file: TOML parsing, secrets from the environment, cross-checks between
sections, and the errors, which name file, line and field (Problem, ConfigError).

The typed model itself is bot.config; the Chinese wording of each error (field names, expected
values, suggestions) is bot.config_messages. The headline above the list is error_report's, so
check-config, the start and the hot reload all say the same.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path

from pydantic import ValidationError

from bot.config_store import DSN_ENV
from bot.config import Config
from bot.config_platform import aes_key_message
from bot.config_values import show_value
from bot.config_messages import (GLOSSES, field_label, listing, nearest, os_error_zh,
                                 pydantic_message, toml_message, wide_message, wide_punctuation)

# --- errors ----------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    field: str  # as the admin reads it: "bot.nmae", "人员 lisi(李四)的 grid"
    message: str
    loc: tuple = dataclass_field(default=(), compare=False)  # the model path, ("people", 3, "grid")

    def __str__(self) -> str:
        # file:line stays ASCII so editors and terminals can jump to it.
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}:{self.message}" if self.field else f"{where}: {self.message}"


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def error_report(e: ConfigError) -> str:
    """What check-config prints, the start refuses with and admins get on a refused reload."""
    return f"配置文件有 {len(e.problems)} 处错误,请按提示修改:\n{e}"


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
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError([Problem(name, None, "", f"无法读取配置文件:{os_error_zh(e)}")]) from e
    try:
        # utf-8-sig: Windows Notepad saves UTF-8 with a byte-order mark.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ConfigError([Problem(name, line, "", "文件不是 UTF-8 编码(常见于记事本保存为 ANSI 或 GBK),"
                                   "请用 UTF-8 编码重新保存")]) from None
    return parse_config(text, name=name, source=path.resolve(), env=env)


_LINE_KEY = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*[=\uff1d]")  # "key =", also with a full-width equals sign


def _toml_problems(text: str, name: str, e: tomllib.TOMLDecodeError) -> list[Problem]:
    """Full-width quotes and punctuation named as such, on every line that has them (tomllib
    stops at the first); any other syntax error in Chinese at tomllib's line."""
    lines = text.splitlines()
    wide = wide_punctuation(text)
    if wide:
        out = []
        for n, chars in sorted(wide.items()):
            key = _LINE_KEY.match(lines[n - 1]) if n <= len(lines) else None
            out.append(Problem(name, n, key.group(1) if key else "", wide_message(chars)))
        return out
    m = re.search(r"line (\d+)", str(e))
    n = int(m.group(1)) if m else _repeated_key_line(lines) if "overwrite" in str(e) else None
    key = _LINE_KEY.match(lines[n - 1]) if n and n <= len(lines) else None
    return [Problem(name, n, key.group(1) if key else "", toml_message(str(e)))]


def _repeated_key_line(lines: list[str]) -> int | None:
    # tomllib places a key written twice at "end of document"; the admin needs the line.
    seen: set[str] = set()
    for n, raw in enumerate(lines, start=1):
        if _HEADER.match(raw):
            seen = set()
        elif k := _KEY.match(raw):
            if k.group(1) in seen:
                return n
            seen.add(k.group(1))
    return None


def parse_config(text: str, name: str = "config.toml", source: Path | None = None,
                 env: dict[str, str] | None = None) -> Config:
    text = text.removeprefix("\ufeff")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(_toml_problems(text, name, e)) from None
    env = os.environ if env is None else env
    wecom = data.get("wecom")
    if isinstance(wecom, dict):
        for var, key in _ENV_OVERRIDES.items():
            if env.get(var):
                wecom[key] = env[var]
    if env.get(DSN_ENV):
        store = data.get("store")
        if not isinstance(store, dict):
            store = data["store"] = {}
        store["dsn"] = env[DSN_ENV]
    aibot = data.get("aibot")
    if any(env.get(var) for var in _AIBOT_ENV):
        if not isinstance(aibot, dict):
            aibot = data["aibot"] = {}
        for var, key in _AIBOT_ENV.items():
            if env.get(var):
                aibot[key] = env[var]
    lines = locate_lines(text)

    def problem(loc: tuple, message: str) -> Problem:
        return Problem(name, _line_for(lines, loc), field_label(loc, data), message, loc)

    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        problems = [problem(tuple(err["loc"]), pydantic_message(err)) for err in e.errors()]
        raise ConfigError(_in_file_order(problems)) from None
    problems = [problem(loc, msg) for loc, msg in _cross_check(cfg, lines)]
    if problems:
        raise ConfigError(_in_file_order(problems))
    return cfg.model_copy(update={"source": source})


def _in_file_order(problems: list[Problem]) -> list[Problem]:
    # Read top to bottom, as the admin fixes them; problems without a line come first.
    return sorted(problems, key=lambda p: p.line or 0)


_KINDS = {"communities": "社区", "grids": "网格", "people": "人员", "categories": "类别", "schedules": "定时任务"}


def _duplicates(items: list, attr: str, section: str, lines: dict[tuple, int]):
    first: dict = {}
    for i, it in enumerate(items):
        v = getattr(it, attr)
        if v in first:
            at = lines.get((section, first[v], attr))
            where = f"第 {at} 行" if at else "前面"
            yield (section, i, attr), f"{attr} {show_value(v)} 与{where}的{_KINDS[section]}重复,不能相同"
        first.setdefault(v, i)


def _unknown(kind: str, value: str, known: dict[str, str]) -> str:
    """ "网格 "g9" 不存在,已有的网格:g1(1号网格)、g2(2号网格)", with the nearest id first."""
    near = nearest(value, list(known))
    hint = f"是否应为 {near}?" if near else ""
    have = listing([f"{k}({v})" if v and v != k else k for k, v in known.items()]) or "(还没有)"
    return f"{kind} {show_value(value)} 不存在,{hint}已有的{kind}:{have}"


def _cross_check(cfg: Config, lines: dict[tuple, int]):
    for section, attr in (("communities", "id"), ("grids", "id"), ("people", "userid"),
                          ("categories", "id"), ("schedules", "name")):
        yield from _duplicates(getattr(cfg, section), attr, section, lines)
    communities = {c.id: c.name for c in cfg.communities}
    grids = {g.id: g.name for g in cfg.grids}
    categories = {c.id: c.label for c in cfg.category_list}
    for i, g in enumerate(cfg.grids):
        if g.community and communities and g.community not in communities:
            yield ("grids", i, "community"), _unknown("社区", g.community, communities)
        for field in ("targets", "monthly_targets"):
            for cat in getattr(g, field):
                if cat not in categories:
                    yield ("grids", i, field, cat), _unknown("类别", cat, categories)
        if g.robot_webhook and not g.robot_webhook.startswith(("http://", "https://")):
            yield ("grids", i, "robot_webhook"), ("应为完整的网址,以 https:// 开头"
                                                  "(在群机器人的资料页复制 Webhook 地址)")
        fence = g.geofence
        if fence and not fence.polygon and None in (fence.lat, fence.lng, fence.radius_m):
            yield ("grids", i, "geofence"), "请填写中心点 lat、lng 和半径 radius_m(米),或者填写多边形 polygon"
    for i, p in enumerate(cfg.people):
        if p.role in ("member", "grid_leader") and not p.grid:
            example = f",如 grid = {show_value(next(iter(grids)))}" if grids else ""
            yield ("people", i, "grid"), f"{GLOSSES[p.role]}必须填写所属网格{example}"
        elif p.grid and p.grid not in grids:
            yield ("people", i, "grid"), _unknown("网格", p.grid, grids)
        for s in p.scope:
            if s not in grids and s not in communities:
                near = nearest(s, [*communities, *grids])
                yield ("people", i, "scope"), (
                    f"分管范围里的 {show_value(s)} 既不是社区也不是网格," + (f"是否应为 {near}?" if near else "")
                    + 
                    f"已有的社区:{listing(list(communities)) or '(还没有)'};"
                    f"已有的网格:{listing(list(grids)) or '(还没有)'}")
    chats: dict[str, str] = {}
    for i, g in enumerate(cfg.grids):
        if not g.chat_id:
            continue
        if g.chat_id in chats:
            other = chats[g.chat_id]
            yield ("grids", i, "chat_id"), f"这个群已对应网格 {other}({grids[other]}),一个群只能对应一个网格"
        chats.setdefault(g.chat_id, g.id)
    if cfg.aibot.enabled and cfg.aibot.mode == "websocket":
        yield from _check_websocket(cfg)
    elif cfg.aibot.enabled:
        if not cfg.aibot.token.get_secret_value():
            yield ("aibot", "token"), "启用智能机器人(enabled = true)时必须填写"
        if len(cfg.aibot.encoding_aes_key.get_secret_value()) != 43:
            yield ("aibot", "encoding_aes_key"), aes_key_message(len(cfg.aibot.encoding_aes_key.get_secret_value()))
        if cfg.aibot.path in ("/wecom/callback", "/"):
            taken = "应用回调" if cfg.aibot.path == "/wecom/callback" else "聊天页面"
            yield ("aibot", "path"), f"不能用 {show_value(cfg.aibot.path)},它已被{taken}占用,请保持默认的 \"/wecom/aibot\""
    if cfg.emulator.enabled_in_live and not cfg.emulator.admin_token:
        yield ("emulator", "enabled_in_live"), "正式环境里开放聊天页面,必须同时设置访问口令 admin_token"
    # The default names the default taxonomy's 入户走访; only a category the admin wrote must exist.
    if "coverage_category" in cfg.monthly.model_fields_set and cfg.monthly.coverage_category not in categories:
        yield ("monthly", "coverage_category"), _unknown("类别", cfg.monthly.coverage_category, categories)
    for i, c in enumerate(cfg.calendar.campaigns):
        if c.end < c.start:
            yield ("calendar", "campaigns", i, "end"), f"结束日期 {c.end} 早于开始日期 {c.start}"


def _check_websocket(cfg: Config):
    a = cfg.aibot
    need = "长连接模式必填"
    if not a.bot_id:
        yield ("aibot", "bot_id"), f"{need}(机器人的 Bot ID,见管理后台 API 凭证)"
    elif not re.fullmatch(r"[A-Za-z0-9_-]+", a.bot_id):
        yield ("aibot", "bot_id"), "Bot ID 只能包含字母、数字、下划线和连字符,请从管理后台复制"
    if not a.secret.get_secret_value():
        yield ("aibot", "secret"), f"{need}(长连接的 Secret,也可用环境变量 GRIDBOT_AIBOT_SECRET)"
    if not a.ws_url.startswith(("wss://", "ws://")):
        yield ("aibot", "ws_url"), "必须以 wss:// 或 ws:// 开头(私有部署请填写自己的长连接网关地址)"


def default_config_path() -> Path:
    p = Path("config.toml")
    return p if p.exists() else Path("config.example.toml")
