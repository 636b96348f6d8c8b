"""The TOML config as typed, documented models, and the lookups every module reads from it.

Each field's comment says what it means; config.example.toml repeats that in Chinese for admins.
Reading the file and wording its errors (file:line: field) is bot.config_loading.
"""

from __future__ import annotations

import difflib
from datetime import date, time
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import Field, field_validator

from bot.config_oversight import LadderSection, ReviewSection
from bot.config_platform import AibotSection, EmulatorSection, TransportSection, WecomSection
from bot.config_store import StoreSection
from bot.config_values import Section as _Model
from bot.config_values import show_value, time_of_day
from bot.cron_words import cron_problem
from bot.report_vocab import Vocabulary, build_vocabulary
from bot.taxonomy import DEFAULT_CATEGORIES, DEFAULT_CEILING, Category

KNOWN_JOBS = (
    "daily_reminder",
    "checkin_nudge",
    "escalation",
    "weekly_tally",
    "overdue_problems",
    "weekly_digest",
    "monthly_bulletin",
    "ladder",
)
Role = Literal["member", "grid_leader", "leader", "admin"]
# Ids and names people and messages refer to: an empty one would be listed as "" everywhere
# (and an empty keyword would match every report).
Text = Annotated[str, Field(min_length=1)]
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


class BotSection(_Model):
    name: str = "网格助手"  # how the bot signs its messages
    street: str = ""  # the street office this deployment belongs to (for digests)
    timezone: str = "Asia/Shanghai"  # applied to every cron trigger and every "today"
    data_dir: Path = Path("data")  # relative paths resolve against the config file's folder
    log_level: str = "INFO"  # one of LOG_LEVELS, any case

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            near = difflib.get_close_matches(v, sorted(available_timezones()), n=1, cutoff=0.85)
            hint = f'是否应为 "{near[0]}"?' if near else '中国大陆请填 "Asia/Shanghai"'
            raise ValueError(f"未知的时区 {show_value(v)},{hint}") from e
        return v

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        # loguru refuses an unknown level only when logging starts: better here, with the line.
        if v.upper() not in LOG_LEVELS:
            raise ValueError(f"日志级别 {show_value(v)} 无效,可选:{'、'.join(LOG_LEVELS)}(一般用 INFO)")
        return v.upper()


class ServerSection(_Model):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(1_048_576, ge=1024)  # callback bodies larger than this get 413
    # A request's headers, and a callback's body, must arrive within this; slower clients are cut off.
    read_timeout_seconds: float = Field(10.0, gt=0, le=300)
    # Inbound connections open at once; 0 = as many as the open-file limit allows, less 128 kept
    # for the journal, the store and calls to WeCom.
    max_connections: int = Field(0, ge=0)
    public_url: str = ""  # how WeCom reaches this server (for the README's go-live check)


class Geofence(_Model):
    # GCJ-02 coordinates, as picked on 高德/腾讯 maps and sent by WeCom's location messages.
    lat: float | None = Field(None, ge=-90, le=90)
    lng: float | None = Field(None, ge=-180, le=180)
    radius_m: float | None = Field(None, gt=0)
    polygon: list[tuple[float, float]] | None = None  # [[lat, lng], ...]


class Community(_Model):
    id: Text
    name: Text


class Grid(_Model):
    id: Text
    name: Text
    community: str = ""
    robot_webhook: str = ""
    chat_id: str = ""  # the grid group's chatid, as the AI bot sees it (or say "绑定 1号网格" in the group)
    households: int | None = Field(None, ge=0)
    geofence: Geofence | None = None
    targets: dict[str, float] = Field(default_factory=dict)  # weekly target per category id
    # Monthly target per category id (目标分解到月), shown as done / target and % in the 月通报.
    monthly_targets: dict[str, float] = Field(default_factory=dict)


class Person(_Model):
    userid: Text
    name: Text
    role: Role = "member"
    grid: str | None = None
    scope: list[str] = Field(default_factory=list)  # community or grid ids a leader oversees
    mobile: str = ""


class CategoryEntry(_Model):
    id: Text
    label: Text
    keywords: list[Text] = Field(min_length=1)
    ceiling: float = Field(DEFAULT_CEILING, gt=0)
    deadline_hours: float | None = Field(None, gt=0)


class ParsingSection(_Model):
    # Units counted besides the built-in ones: ["位", "方"], or {form = unit} as { "立方" = "方" }.
    extra_units: list[str] | dict[str, str] = Field(default_factory=list)
    # A variant → its standard form (a unit or a keyword), replaced before parsing: { "牛皮藓" = "牛皮癣" }.
    synonyms: dict[str, str] = Field(default_factory=dict)

    @field_validator("extra_units", "synonyms")
    @classmethod
    def _words(cls, v):
        for word in (list(v.items()) if isinstance(v, dict) else [(u, u) for u in v]):
            for w in word:
                if not w.strip():
                    raise ValueError("不能为空 / must not be empty")
                if any(c.isdigit() for c in w):
                    raise ValueError(f"不能含数字 / must not contain digits: {w!r}")
        return v


class Schedule(_Model):
    name: Text
    job: Literal[KNOWN_JOBS]  # type: ignore[valid-type]
    cron: str  # 5-field crontab (0 or 7 = Sunday), in the bot's timezone
    enabled: bool = True

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        # Here rather than in the cross-checks, so a bad cron is listed with the other errors.
        if (why := cron_problem(v)) is not None:
            raise ValueError(why)
        return v


class CheckinSection(_Model):
    max_photo_age_hours: float = Field(24, gt=0)
    window_start: time = time(6, 0)
    window_end: time = time(20, 0)
    duplicate_distance: int = Field(6, ge=0, le=64)  # Hamming distance of perceptual hashes
    duplicate_days: int = Field(90, ge=1)
    location_minutes: int = Field(10, ge=1)

    @field_validator("window_start", "window_end", mode="before")
    @classmethod
    def _times(cls, v: object) -> time:
        return time_of_day(v)


class ReportsSection(_Model):
    late_days: int = Field(7, ge=0)  # how far back 补报 may go
    repeat_minutes: int = Field(10, ge=0)  # the same text again within this is flagged


class ProblemsSection(_Model):
    deadline_hours: float = Field(48, gt=0)
    photo_minutes: int = Field(10, ge=1)
    # A problem recurs (反弹) when one of the same category was registered at the same place in
    # the last `recurrence_days`: within `recurrence_distance_m` when both have a location, else
    # a similar place in their texts (bot.problem_places.similar_place). A place with
    # `hot_spot_count` problems or more in that window is a hot spot in the digest.
    recurrence_days: int = Field(30, ge=1)
    recurrence_distance_m: float = Field(50, gt=0)
    hot_spot_count: int = Field(2, ge=2)


class Campaign(_Model):
    name: Text
    start: date
    end: date


class CalendarSection(_Model):
    extra_workdays: list[date] = Field(default_factory=list)
    extra_holidays: list[date] = Field(default_factory=list)
    campaigns: list[Campaign] = Field(default_factory=list)  # 迎检: every day a workday


class DigestSection(_Model):
    checkin_threshold: float = Field(0.8, ge=0, le=1)
    missing_days: int = Field(3, ge=1)


class ScoringSection(_Model):
    # Points (积分) per record, computed from the records and never typed in (bot.scoring).
    # Admins may change any weight; 0 switches a rule off.
    checkin_day: float = Field(1, ge=-100, le=100)  # each expected workday with a counted check-in
    report: float = Field(1, ge=-100, le=100)  # each counted report (active, not waiting for 核实)
    problem_found: float = Field(2, ge=-100, le=100)  # each problem registered, to the one who found it
    problem_closed_on_time: float = Field(3, ge=-100, le=100)  # closed by its deadline, to who closed it
    fix_rejected: float = Field(-1, ge=-100, le=100)  # a closed problem reopened (重开), to who closed it
    overdue_day: float = Field(-1, ge=-100, le=100)  # each whole day a problem stays open past its deadline, to its grid
    bad_photo: float = Field(-3, ge=-100, le=100)  # a check-in photo found duplicate or stale
    wrong_count: float = Field(-2, ge=-100, le=100)  # a report flagged implausible, then corrected or withdrawn by someone else


class MonthlySection(_Model):
    # The monthly bulletin (月通报): honours lists and coverage.
    red_list: int = Field(3, ge=0, le=20)  # grids and people on the 红榜 (at most half of those ranked)
    black_list: int = Field(3, ge=0, le=20)  # grids on the 黑榜 (at most half, never one on the 红榜)
    black_list_people: bool = False  # also name people on the 黑榜: a local policy, off by default
    # Household coverage (入户走访覆盖率) = distinct households visited / the grid's households,
    # from this category's reports counted in 户 or 家.
    coverage_category: str = "visit"


class RemindersSection(_Model):
    focus: str = ""  # the day's focus, added to the morning reminder
    nudge_deadline: str = "20:00"  # written into the nudge ("请于20:00前拍照打卡"), as HH:MM

    @field_validator("nudge_deadline", mode="before")
    @classmethod
    def _deadline(cls, v: object) -> str:
        return f"{time_of_day(v):%H:%M}"


class Config(_Model):
    bot: BotSection = BotSection()
    server: ServerSection = ServerSection()
    store: StoreSection = StoreSection()
    wecom: WecomSection
    aibot: AibotSection = AibotSection()
    emulator: EmulatorSection = EmulatorSection()
    transport: TransportSection = TransportSection()
    communities: list[Community] = Field(default_factory=list)
    grids: list[Grid] = Field(default_factory=list)
    people: list[Person] = Field(default_factory=list)
    categories: list[CategoryEntry] = Field(default_factory=list)
    parsing: ParsingSection = ParsingSection()
    schedules: list[Schedule] = Field(default_factory=list)
    checkin: CheckinSection = CheckinSection()
    reports: ReportsSection = ReportsSection()
    problems: ProblemsSection = ProblemsSection()
    review: ReviewSection = ReviewSection()
    ladder: LadderSection = LadderSection()
    calendar: CalendarSection = CalendarSection()
    digest: DigestSection = DigestSection()
    reminders: RemindersSection = RemindersSection()
    scoring: ScoringSection = ScoringSection()
    monthly: MonthlySection = MonthlySection()

    # Set by load_config (bot.config_loading), not by the file.
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
        out = [w.secret, w.token, w.encoding_aes_key, a.token, a.encoding_aes_key, a.secret,
               self.emulator.admin_token]
        return [s.get_secret_value() for s in out if s is not None] + self.store.secret_values()

    def person(self, userid: str) -> Person | None:
        # Looked up on every message. The index remembers which list it was built from, since
        # model_copy(update={"people": ...}) copies it along with everything else.
        people = self.people
        cached = self.__dict__.get("_people_index")
        if cached is None or cached[0] is not people:
            cached = (people, {p.userid: p for p in people})
            self.__dict__["_people_index"] = cached
        return cached[1].get(userid)

    def _grid_lookups(self) -> tuple:
        # Asked per grid by every daily job: a scan of everyone per grid is O(grids × people),
        # seconds for a district. Built once per people and grids lists, as `person` does.
        people, grids = self.people, self.grids
        cached = self.__dict__.get("_grid_index")
        if cached is None or cached[0] is not people or cached[1] is not grids:
            members: dict[str, list[Person]] = {}
            leaders: dict[str, list[Person]] = {}
            for p in people:
                if p.role in ("member", "grid_leader"):
                    members.setdefault(p.grid, []).append(p)
                if p.role == "grid_leader":
                    leaders.setdefault(p.grid, []).append(p)
            by_id: dict[str, Grid] = {}
            for g in grids:
                by_id.setdefault(g.id, g)  # the first of a repeated id, as a scan finds it
            cached = (people, grids, by_id, members, leaders)
            self.__dict__["_grid_index"] = cached
        return cached

    def grid(self, grid_id: str | None) -> Grid | None:
        return self._grid_lookups()[2].get(grid_id) if grid_id else None

    def grid_members(self, grid_id: str) -> list[Person]:
        return list(self._grid_lookups()[3].get(grid_id, ()))

    def grid_leaders(self, grid_id: str) -> list[Person]:
        return list(self._grid_lookups()[4].get(grid_id, ()))

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
    def report_vocabulary(self) -> Vocabulary:
        """The report parser's words (categories, units, synonyms): one object per loaded config,
        so the compiled parser is found again by identity and a reload brings a new one."""
        cats, parsing = self.category_list, self.parsing
        cached = self.__dict__.get("_vocabulary")
        if cached is None or cached[0] is not cats or cached[1] is not parsing:
            cached = (cats, parsing, build_vocabulary(cats, parsing.extra_units, parsing.synonyms))
            self.__dict__["_vocabulary"] = cached
        return cached[2]

    @property
    def category_ceilings(self) -> dict[str, float]:
        """Category id → ceiling, as {c.id: c.ceiling for c in category_list} (read-only)."""
        return self._category_lookups()[4]
