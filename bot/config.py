"""The TOML config: typed, documented models and errors that name file, line and field.

Each field's comment says what it means; config.example.toml repeats that in Chinese for admins.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from bot.crontab import CronError, cron_trigger
from bot.taxonomy import DEFAULT_CATEGORIES, DEFAULT_CEILING, Category

PUBLIC_API_BASE = "https://qyapi.weixin.qq.com/cgi-bin/"
KNOWN_JOBS = (
    "daily_reminder",
    "checkin_nudge",
    "escalation",
    "weekly_tally",
    "overdue_problems",
    "weekly_digest",
)
Role = Literal["member", "grid_leader", "leader", "admin"]


class _Model(BaseModel):
    # Unknown keys are typos more often than not: refuse them with their line.
    model_config = ConfigDict(extra="forbid", frozen=True)


class BotSection(_Model):
    name: str = "网格助手"  # how the bot signs its messages
    street: str = ""  # the street office this deployment belongs to (for digests)
    timezone: str = "Asia/Shanghai"  # applied to every cron trigger and every "today"
    data_dir: Path = Path("data")  # relative paths resolve against the config file's folder
    log_level: str = "INFO"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"未知时区 / unknown timezone {v!r}") from e
        return v


class ServerSection(_Model):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(1_048_576, ge=1024)  # callback bodies larger than this get 413
    public_url: str = ""  # how WeCom reaches this server (for the README's go-live check)


class WecomSection(_Model):
    mode: Literal["emulator", "live"] = "emulator"
    corp_id: str
    agent_id: int
    secret: SecretStr
    token: SecretStr
    encoding_aes_key: SecretStr
    api_base: str = PUBLIC_API_BASE  # 政务微信 and private deployments have their own host

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_len(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) != 43:
            raise ValueError("EncodingAESKey 必须是 43 个字符 / must be 43 characters")
        return v

    @field_validator("api_base")
    @classmethod
    def _slash(cls, v: str) -> str:
        return v if v.endswith("/") else v + "/"


class AibotSection(_Model):
    # WeCom's 智能机器人: added to grid groups, it hears every message that @-mentions it.
    enabled: bool = False
    bot_id: str = ""  # aibotid, shown in the admin console; callbacks for another bot are refused
    token: SecretStr = SecretStr("")
    encoding_aes_key: SecretStr = SecretStr("")
    path: str = "/wecom/aibot"  # the callback URL's path on this server
    # How long the callback waits for the answer before replying with an unfinished stream,
    # which WeCom then refreshes (it allows a few seconds per callback).
    reply_wait_seconds: float = Field(1.5, ge=0, le=4)
    # WeCom refreshes an unfinished stream for up to 6 minutes; an answer not taken by then
    # goes to the one-shot response_url (valid 1 hour), else as an app message.
    stream_seconds: float = Field(330, gt=0, le=360)

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("必须以 / 开头 / must start with /")
        return v


class EmulatorSection(_Model):
    # The chat page and emulator API bind with the server; in live mode they stay off
    # unless enabled explicitly with a token.
    enabled_in_live: bool = False
    admin_token: SecretStr | None = None


class Geofence(_Model):
    # GCJ-02 coordinates, as picked on 高德/腾讯 maps and sent by WeCom's location messages.
    lat: float | None = Field(None, ge=-90, le=90)
    lng: float | None = Field(None, ge=-180, le=180)
    radius_m: float | None = Field(None, gt=0)
    polygon: list[tuple[float, float]] | None = None  # [[lat, lng], ...]


class Community(_Model):
    id: str
    name: str


class Grid(_Model):
    id: str
    name: str
    community: str = ""
    robot_webhook: str = ""
    chat_id: str = ""  # the grid group's chatid, as the AI bot sees it (or say "绑定 1号网格" in the group)
    households: int | None = Field(None, ge=0)
    geofence: Geofence | None = None
    targets: dict[str, float] = Field(default_factory=dict)  # weekly target per category id


class Person(_Model):
    userid: str
    name: str
    role: Role = "member"
    grid: str | None = None
    scope: list[str] = Field(default_factory=list)  # community or grid ids a leader oversees
    mobile: str = ""


class CategoryEntry(_Model):
    id: str
    label: str
    keywords: list[str] = Field(min_length=1)
    ceiling: float = Field(DEFAULT_CEILING, gt=0)
    deadline_hours: float | None = Field(None, gt=0)


class Schedule(_Model):
    name: str
    job: Literal[KNOWN_JOBS]  # type: ignore[valid-type]
    cron: str  # 5-field crontab (0 or 7 = Sunday), in the bot's timezone
    enabled: bool = True


class CheckinSection(_Model):
    max_photo_age_hours: float = Field(24, gt=0)
    window_start: time = time(6, 0)
    window_end: time = time(20, 0)
    duplicate_distance: int = Field(6, ge=0, le=64)  # Hamming distance of perceptual hashes
    duplicate_days: int = Field(90, ge=1)
    location_minutes: int = Field(10, ge=1)


class ReportsSection(_Model):
    late_days: int = Field(7, ge=0)  # how far back 补报 may go
    repeat_minutes: int = Field(10, ge=0)  # the same text again within this is flagged


class ProblemsSection(_Model):
    deadline_hours: float = Field(48, gt=0)
    photo_minutes: int = Field(10, ge=1)


class Campaign(_Model):
    name: str
    start: date
    end: date


class CalendarSection(_Model):
    extra_workdays: list[date] = Field(default_factory=list)
    extra_holidays: list[date] = Field(default_factory=list)
    campaigns: list[Campaign] = Field(default_factory=list)  # 迎检: every day a workday


class DigestSection(_Model):
    checkin_threshold: float = Field(0.8, ge=0, le=1)
    missing_days: int = Field(3, ge=1)


class RemindersSection(_Model):
    focus: str = ""  # the day's focus, added to the morning reminder
    nudge_deadline: str = "20:00"


class Config(_Model):
    bot: BotSection = BotSection()
    server: ServerSection = ServerSection()
    wecom: WecomSection
    aibot: AibotSection = AibotSection()
    emulator: EmulatorSection = EmulatorSection()
    communities: list[Community] = Field(default_factory=list)
    grids: list[Grid] = Field(default_factory=list)
    people: list[Person] = Field(default_factory=list)
    categories: list[CategoryEntry] = Field(default_factory=list)
    schedules: list[Schedule] = Field(default_factory=list)
    checkin: CheckinSection = CheckinSection()
    reports: ReportsSection = ReportsSection()
    problems: ProblemsSection = ProblemsSection()
    calendar: CalendarSection = CalendarSection()
    digest: DigestSection = DigestSection()
    reminders: RemindersSection = RemindersSection()

    # Set by load_config, not by the file.
    source: Path | None = Field(None, exclude=True)

    # -- lookups used everywhere -------------------------------------------------
    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.bot.timezone)

    @property
    def data_path(self) -> Path:
        p = self.bot.data_dir
        if not p.is_absolute() and self.source is not None:
            p = self.source.parent / p
        return p

    def secret_values(self) -> list[str]:
        """Every secret the config holds, for the log's mask."""
        w, a = self.wecom, self.aibot
        out = [w.secret, w.token, w.encoding_aes_key, a.token, a.encoding_aes_key, self.emulator.admin_token]
        return [s.get_secret_value() for s in out if s is not None]

    def person(self, userid: str) -> Person | None:
        # Looked up on every message. The index remembers which list it was built from, since
        # model_copy(update={"people": ...}) copies it along with everything else.
        people = self.people
        cached = self.__dict__.get("_people_index")
        if cached is None or cached[0] is not people:
            cached = (people, {p.userid: p for p in people})
            self.__dict__["_people_index"] = cached
        return cached[1].get(userid)

    def grid(self, grid_id: str | None) -> Grid | None:
        return next((g for g in self.grids if g.id == grid_id), None) if grid_id else None

    def grid_members(self, grid_id: str) -> list[Person]:
        return [p for p in self.people if p.grid == grid_id and p.role in ("member", "grid_leader")]

    def grid_leaders(self, grid_id: str) -> list[Person]:
        return [p for p in self.people if p.grid == grid_id and p.role == "grid_leader"]

    def community_name(self, cid: str) -> str:
        for c in self.communities:
            if c.id == cid:
                return c.name
        return cid

    def people_with_role(self, *roles: str) -> list[Person]:
        return [p for p in self.people if p.role in roles]

    def _category_lookups(self) -> tuple:
        # Read on every report. Built once per category list, remembering which list it came
        # from (as `person` does), so one parser and one set of lookups serve every message.
        entries = self.categories
        cached = self.__dict__.get("_category_index")
        if cached is None or cached[0] is not entries:
            cats = DEFAULT_CATEGORIES if not entries else tuple(
                Category(c.id, c.label, tuple(c.keywords), c.ceiling, c.deadline_hours)
                for c in entries)
            labels: dict[str, str] = {}
            order: dict[str, int] = {}
            ceilings: dict[str, float] = {}
            for i, c in enumerate(cats):
                labels.setdefault(c.id, c.label)
                order[c.id] = i  # the last wins, as in {c.id: i for ...}
                ceilings[c.id] = c.ceiling
            cached = (entries, cats, labels, order, ceilings)
            self.__dict__["_category_index"] = cached
        return cached

    @property
    def category_list(self) -> tuple[Category, ...]:
        return self._category_lookups()[1]

    def category_label(self, cid: str) -> str:
        return self._category_lookups()[2].get(cid, cid)

    @property
    def category_order(self) -> dict[str, int]:
        """Category id → position in the configured order (read-only)."""
        return self._category_lookups()[3]

    @property
    def category_ceilings(self) -> dict[str, float]:
        """Category id → ceiling, as {c.id: c.ceiling for c in category_list} (read-only)."""
        return self._category_lookups()[4]


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
    if cfg.aibot.enabled:
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


def default_config_path() -> Path:
    p = Path("config.toml")
    return p if p.exists() else Path("config.example.toml")
